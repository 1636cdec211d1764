//! Inverted dropout: in training, each element is zeroed with probability `p` and the rest are
//! scaled by `1/(1−p)`, so evaluation needs no rescaling.
//!
//! The mask is drawn where the tensor lives, by a counter-based generator (Philox, see
//! `backend/random.rs`) keyed by one 64-bit seed taken from the thread's seeded generator:
//! nothing is drawn element by element on the host or uploaded, a checkpoint's generator state
//! replays the same masks, and a CPU and a device run of one seed draw the same masks.

use crate::backend;
use crate::error::{Error, OrPanic, Result};
use crate::random::with_rng;
use crate::tensor::{Shape, Tensor};
use rand::Rng;

/// An inverted-dropout mask of `shape` in `like`'s dtype and on its device: `1/(1−p)` with
/// probability `1 − p`, else 0.
pub(crate) fn dropout_mask(shape: &Shape, p: f64, like: &Tensor) -> Result<Tensor> {
    let seed = draw_seed();
    backend::of(like).dropout_mask(shape, p, seed, like.dtype(), like.device())
}

/// A mask's seed, the next draw of the thread's seeded generator.
pub(crate) fn draw_seed() -> u64 {
    with_rng(|r| r.gen::<u64>())
}

/// `x` times a fresh dropout mask in training; `x` itself otherwise.
pub fn try_dropout(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout",
            format!("p = {p} must be in [0, 1)"),
        ));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    x.try_mul(&dropout_mask(x.shape(), p, x)?)
}

/// [`try_dropout`], panicking at the caller on a bad `p`.
#[track_caller]
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    try_dropout(x, p, training).or_panic()
}
