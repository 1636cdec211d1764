//! Training checkpoints: the model's state dict under its plain names (so the file also loads
//! as a PyTorch state dict, ignoring the `optimizer.` entries), the optimizer's state under
//! `optimizer.`, and in the header the optimizer's hyper-parameters, the RNG position and the
//! caller's own entries (step, epoch). Resuming from one continues the run exactly.

use super::safetensors_io::{assign_state, load_tensors, save_tensors, Metadata};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::{Optimizer, OptimizerState};
use crate::random::{rng_state, set_rng_state, RngState};
use std::path::Path;

const FORMAT: &str = "cubegrad-checkpoint-1";
const OPT_PREFIX: &str = "optimizer.";

/// What `load_checkpoint` gives back besides restoring the model and optimizer.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The caller's entries as they were saved (for example `"step"`).
    pub extra: Metadata,
}

impl Checkpoint {
    /// An entry parsed as a number, e.g. `ckpt.get::<usize>("step")`.
    pub fn get<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.extra.get(key)?.parse().ok()
    }
}

fn rng_to_string(s: &RngState) -> String {
    let seed: String = s.seed.iter().map(|b| format!("{b:02x}")).collect();
    format!("{seed}:{}:{}", s.stream, s.word_pos)
}

fn rng_from_string(v: &str) -> Option<RngState> {
    let mut parts = v.split(':');
    let hex = parts.next()?;
    let stream = parts.next()?.parse().ok()?;
    let word_pos = parts.next()?.parse().ok()?;
    if hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(RngState {
        seed,
        stream,
        word_pos,
    })
}

/// Saves model, optimizer, this thread's RNG position and `extra` to `path`, atomically.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    extra: &Metadata,
) -> Result<()> {
    let path = path.as_ref();
    let state = optimizer.state();
    let mut tensors = model.state_dict();
    tensors.extend(
        state
            .tensors
            .iter()
            .map(|(n, t)| (format!("{OPT_PREFIX}{n}"), t.clone())),
    );
    let mut meta = Metadata::new();
    for (k, v) in extra {
        if k.starts_with("cubegrad.") {
            return Err(Error::file(path, format!("metadata key {k:?} is reserved")));
        }
        meta.insert(k.clone(), v.clone());
    }
    meta.insert("cubegrad.format".into(), FORMAT.into());
    meta.insert("cubegrad.optimizer".into(), state.kind.clone());
    let hyper: serde_json::Map<String, serde_json::Value> = state
        .hyper
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    meta.insert(
        "cubegrad.optimizer_hyper".into(),
        serde_json::Value::Object(hyper).to_string(),
    );
    meta.insert("cubegrad.rng".into(), rng_to_string(&rng_state()));
    save_tensors(path, &tensors, &meta)
}

/// Restores `model`, `optimizer` and the RNG from a checkpoint written by `save_checkpoint`.
/// Nothing is changed if the file does not match the model.
pub fn load_checkpoint(
    path: impl AsRef<Path>,
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<Checkpoint> {
    let path = path.as_ref();
    let (tensors, meta) = load_tensors(path)?;
    if meta.get("cubegrad.format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::file(
            path,
            format!("not a cubegrad checkpoint (no \"cubegrad.format\": {FORMAT:?} in the header)"),
        ));
    }
    let missing = |k: &str| Error::file(path, format!("checkpoint header lacks {k:?}"));
    let kind = meta
        .get("cubegrad.optimizer")
        .ok_or_else(|| missing("cubegrad.optimizer"))?
        .clone();
    let hyper_json = meta
        .get("cubegrad.optimizer_hyper")
        .ok_or_else(|| missing("cubegrad.optimizer_hyper"))?;
    let hyper: std::collections::BTreeMap<String, f64> = serde_json::from_str(hyper_json)
        .map_err(|e| Error::file(path, format!("bad optimizer hyper-parameters: {e}")))?;
    let rng = meta
        .get("cubegrad.rng")
        .and_then(|v| rng_from_string(v))
        .ok_or_else(|| missing("cubegrad.rng"))?;
    let opt_tensors = tensors
        .iter()
        .filter_map(|(n, t)| {
            n.strip_prefix(OPT_PREFIX)
                .map(|s| (s.to_string(), t.clone()))
        })
        .collect();
    let state = OptimizerState {
        kind,
        hyper,
        tensors: opt_tensors,
    };

    // Check the optimizer first on a scratch copy of its state, so a failure changes nothing.
    let before = optimizer.state();
    optimizer
        .load_state(&state)
        .map_err(|e| Error::file(path, e.to_string()))?;
    if let Err(e) = assign_state(model, tensors, path, Some(OPT_PREFIX)) {
        optimizer
            .load_state(&before)
            .expect("restoring the optimizer's own state");
        return Err(e);
    }
    set_rng_state(rng);
    let extra = meta
        .into_iter()
        .filter(|(k, _)| !k.starts_with("cubegrad."))
        .collect();
    Ok(Checkpoint { extra })
}
