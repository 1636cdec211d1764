//! Memory over time: a training loop holds the same live bytes at step 50 as at step 5, and
//! large buffers freed by one step are reused by the next instead of being faulted in again.
//! One test in its own binary, because the buffer cache is shared by the whole process.

use cubegrad::autograd::tape_len;
use cubegrad::backend::cpu::buffer_cache::cached_bytes;
use cubegrad::backend::storage::cpu_memory_in_use;
use cubegrad::nn::Linear;
use cubegrad::optim::{AdamConfig, Optimizer};
use cubegrad::{manual_seed, Tensor};

#[test]
fn training_memory_is_flat_and_buffers_are_reused() {
    manual_seed(0);
    let mut layer = Linear::new(512, 512, true);
    let mut opt = AdamConfig::adam().init();
    let x = Tensor::randn([256, 512], 0.0, 1.0);
    let y = Tensor::randn([256, 512], 0.0, 1.0);
    let mut step = |layer: &mut Linear| {
        let loss = layer.forward(&x).tanh().mse_loss(&y);
        let grads = loss.backward();
        opt.step(layer, &grads).unwrap();
    };
    for _ in 0..5 {
        step(&mut layer);
    }
    let (live, cached) = (cpu_memory_in_use(), cached_bytes());
    for _ in 0..45 {
        step(&mut layer);
    }
    assert_eq!(tape_len(), 0);
    assert_eq!(
        cpu_memory_in_use(),
        live,
        "live tensor bytes changed between step 5 and step 50"
    );
    assert_eq!(
        cached_bytes(),
        cached,
        "the cache grew although every step has the same shapes"
    );
    assert!(
        cached > 0,
        "a [256, 512] activation should have been cached for reuse"
    );

    // A freed large buffer is handed to the next allocation of the same size.
    let big = Tensor::randn([1 << 20], 0.0, 1.0);
    let before = cached_bytes();
    let doubled = big.mul_scalar(2.0);
    drop(doubled);
    let after_free = cached_bytes();
    assert_eq!(after_free, before + (4 << 20));
    let again = big.mul_scalar(3.0);
    assert_eq!(cached_bytes(), before, "the cached buffer was not reused");
    assert_eq!(again.to_vec::<f32>()[7], 3.0 * big.to_vec::<f32>()[7]);
}
