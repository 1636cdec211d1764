//! The seeded random-number generator behind `randn`, `rand_uniform`, shuffling and dropout.
//!
//! One ChaCha8 generator per thread, seeded with [`manual_seed`] (like `torch.manual_seed`).
//! Its state can be read and restored, so checkpoints resume exactly. Dropout masks are not
//! drawn from it element by element: each mask takes one 64-bit key from it, and a
//! counter-based generator (Philox, `backend::random`) expands the key into the mask where the
//! tensor lives, identically on the CPU and on a device.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Seeds this thread's generator.
pub fn manual_seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// The generator's position, enough to continue the exact same stream later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

pub fn rng_state() -> RngState {
    RNG.with(|r| {
        let r = r.borrow();
        RngState {
            seed: r.get_seed(),
            stream: r.get_stream(),
            word_pos: r.get_word_pos(),
        }
    })
}

pub fn set_rng_state(s: RngState) {
    RNG.with(|r| {
        let mut g = ChaCha8Rng::from_seed(s.seed);
        g.set_stream(s.stream);
        g.set_word_pos(s.word_pos);
        *r.borrow_mut() = g;
    })
}

/// Runs `f` with this thread's generator (for shuffling, dropout masks, sampling).
pub fn with_rng<T>(f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
    RNG.with(|r| f(&mut r.borrow_mut()))
}
