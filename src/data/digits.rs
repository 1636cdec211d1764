//! The 8×8 handwritten digits (UCI optdigits test set, as shipped by scikit-learn): one row per
//! image, 64 pixel values in 0..=16 and then the label 0..=9, comma-separated, no header.

use super::{read_maybe_gz, Dataset};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// Loads the digits with pixels scaled to [0, 1] (`x`: `[n, 64]` f32, `y`: `[n]` i64).
pub fn load_digits(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::file(path, "not UTF-8 text"))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            return Err(Error::file(
                path,
                format!(
                    "line {}: expected 65 comma-separated values, found {}",
                    i + 1,
                    fields.len()
                ),
            ));
        }
        for f in &fields[..64] {
            let v: f32 = f
                .trim()
                .parse()
                .map_err(|_| Error::file(path, format!("line {}: {f:?} is not a number", i + 1)))?;
            x.push(v / 16.0);
        }
        let label: i64 = fields[64].trim().parse().map_err(|_| {
            Error::file(
                path,
                format!("line {}: label {:?} is not an integer", i + 1, fields[64]),
            )
        })?;
        if !(0..10).contains(&label) {
            return Err(Error::file(
                path,
                format!("line {}: label {label} is not a digit", i + 1),
            ));
        }
        y.push(label);
    }
    if y.is_empty() {
        return Err(Error::file(path, "no rows"));
    }
    let n = y.len();
    Ok(Dataset::new(
        Tensor::from_vec(x, [n, 64]),
        Tensor::from_vec(y, [n]),
    ))
}
