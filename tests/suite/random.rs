//! The generators: Philox 4×32-10, which draws dropout masks on every device, gives the
//! published known-answer words (Salmon et al. 2011, Random123's `kat_vectors`), and dropout
//! built on it keeps the right fraction, scales by `1/(1 − p)`, and replays from a seed.

use cubegrad::backend::cpu::random::philox;
use cubegrad::nn::dropout;
use cubegrad::{manual_seed, DType, Tensor};

#[test]
fn philox_gives_the_known_answers() {
    assert_eq!(
        philox(0, 0, 0),
        [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
    );
    // Random123 also publishes all-ones inputs; this generator fixes the counter's two high
    // words at zero, so the zero vector is the one that applies.
    assert_ne!(philox(1, 0, 0), philox(0, 0, 0));
    assert_ne!(philox(0, 0, 1), philox(0, 0, 0));
}

#[test]
fn dropout_keeps_one_minus_p_scales_and_replays() {
    let x = Tensor::ones([200, 301]).to_dtype(DType::F64);
    for p in [0.1, 0.5, 0.9] {
        manual_seed(5);
        let y = dropout(&x, p, true).to_vec::<f64>();
        let scale = 1.0 / (1.0 - p);
        assert!(y.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-12));
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        // 60,200 draws: the standard error of the fraction is below 0.0021.
        assert!((kept - (1.0 - p)).abs() < 0.01, "p = {p}: kept {kept}");
        manual_seed(5);
        assert_eq!(
            dropout(&x, p, true).to_vec::<f64>(),
            y,
            "the same seed, the same mask"
        );
        assert_ne!(
            dropout(&x, p, true).to_vec::<f64>(),
            y,
            "the next draw differs"
        );
    }
    assert_eq!(dropout(&x, 0.5, false).to_vec::<f64>(), x.to_vec::<f64>());
}
