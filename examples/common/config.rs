//! Checking a run's configuration before any work: every rule names the flag, the value and
//! what it must be, in one line (`--d-model 130 must be divisible by --heads 4`). `main`
//! checks the flags before it calls `run`, prints a broken rule as `error: …` and exits with
//! status 2, as clap does for a flag it cannot parse.

use std::fmt;

/// A configuration that cannot run: one line naming the flag, its value and the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub type Checked = Result<(), ConfigError>;

/// A configuration that knows its rules. `main` calls it before `run`; tests call it directly.
pub trait Validate {
    fn validate(&self) -> Checked;
}

/// `--flag value` must be at least `min`.
pub fn at_least(flag: &str, value: usize, min: usize) -> Checked {
    if value < min {
        return Err(ConfigError(format!(
            "--{flag} {value} must be at least {min}"
        )));
    }
    Ok(())
}

/// `--flag value` must be at least `min`, for the reason `why` (which names the other flags).
pub fn at_least_for(flag: &str, value: usize, min: usize, why: &str) -> Checked {
    if value < min {
        return Err(ConfigError(format!(
            "--{flag} {value} must be at least {min} ({why})"
        )));
    }
    Ok(())
}

/// `--flag value` must be divisible by `--by_flag by` (and `by` itself at least 1).
pub fn divisible(flag: &str, value: usize, by_flag: &str, by: usize) -> Checked {
    at_least(by_flag, by, 1)?;
    if value % by != 0 {
        return Err(ConfigError(format!(
            "--{flag} {value} must be divisible by --{by_flag} {by}"
        )));
    }
    Ok(())
}

/// `--flag value` must be an even number (sinusoidal positions pair their features).
pub fn even(flag: &str, value: usize) -> Checked {
    if value % 2 != 0 {
        return Err(ConfigError(format!("--{flag} {value} must be even")));
    }
    Ok(())
}

/// A learning rate or scale: finite and above zero.
pub fn positive(flag: &str, value: f64) -> Checked {
    if !(value.is_finite() && value > 0.0) {
        return Err(ConfigError(format!(
            "--{flag} {value} must be a finite number above 0"
        )));
    }
    Ok(())
}

/// A probability that may be 0 but not 1 (dropout, a split fraction): `0 ≤ value < 1`.
pub fn probability(flag: &str, value: f64) -> Checked {
    if !(0.0..1.0).contains(&value) {
        return Err(ConfigError(format!(
            "--{flag} {value} must be at least 0 and below 1"
        )));
    }
    Ok(())
}

/// `--stop-at` (a hidden flag of the resumable examples), when given, is at least 1.
pub fn stop_at(value: Option<usize>) -> Checked {
    value.map_or(Ok(()), |v| at_least("stop-at", v, 1))
}
