//! Memory over time: a training loop holds the same live bytes at step 50 as at step 5, and
//! large buffers freed by one step are reused by the next instead of being faulted in again;
//! inference under `no_grad` and abandoned graphs leave nothing behind. In a binary of their
//! own, because live bytes and the buffer cache are counted for the whole process, and one
//! at a time (`ONE_AT_A_TIME`) for the same reason. `loaders.rs`: the file loaders on
//! thousands of corrupt files, watched by this binary's counting allocator.

#[path = "memory/loaders.rs"]
mod loaders;

use cubegrad::autograd::{clear_tape, tape_len};
use cubegrad::backend::cpu::buffer_cache::cached_bytes;
use cubegrad::backend::storage::cpu_memory_in_use;
use cubegrad::nn::Linear;
use cubegrad::optim::{AdamConfig, Optimizer};
use cubegrad::{manual_seed, no_grad, Tensor};
use std::sync::Mutex;

/// Held by each test while it measures.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).with_grad()
}

#[test]
fn training_memory_is_flat_and_buffers_are_reused() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // What other tests left in the cache (it is per process) could fill its buckets.
    cubegrad::backend::cpu::buffer_cache::clear_cache();
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

#[test]
fn no_grad_records_nothing_and_memory_stays_flat() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    clear_tape();
    let w = Tensor::randn([64, 64], 0.0, 0.1).with_grad();
    let x = Tensor::randn([32, 64], 0.0, 1.0);
    let run = || no_grad(|| x.matmul(&w).relu().softmax(-1).sum().item());
    run();
    let before = cpu_memory_in_use();
    for _ in 0..1000 {
        run();
    }
    assert_eq!(tape_len(), 0);
    // Other tests run in parallel threads and allocate too; our loop itself would leak
    // 1000 × (32×64 floats × 3) ≈ 24 MB if anything were kept.
    let after = cpu_memory_in_use();
    assert!(
        after < before + 4_000_000,
        "memory grew from {before} to {after} bytes"
    );
}

/// Graphs built and dropped without a backward (a metric computed outside `no_grad`) are
/// freed, while graphs still held, even through a dropped intermediate, survive.
#[test]
fn abandoned_graphs_are_freed_and_held_ones_survive() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    clear_tape();
    let w = t64(&[0.5, -1.0, 2.0], &[3]);
    // Held: y depends on h, and h itself is dropped before the sweeps.
    let h = w.exp();
    let y = h.mul_scalar(2.0).sum();
    drop(h);
    let before = cpu_memory_in_use();
    for _ in 0..5000 {
        let metric = w.square().tanh().sum();
        let _ = metric.item();
    }
    assert!(
        tape_len() < 2100,
        "tape holds {} nodes after 5000 abandoned graphs",
        tape_len()
    );
    let after = cpu_memory_in_use();
    assert!(
        after < before + 1_000_000,
        "memory grew from {before} to {after} bytes"
    );
    let g = y.backward();
    let want: Vec<f64> = [0.5f64, -1.0, 2.0].iter().map(|v| 2.0 * v.exp()).collect();
    assert_eq!(g.get(&w).unwrap().to_vec::<f64>(), want);
    assert_eq!(
        tape_len(),
        0,
        "after the held graph's backward nothing is left"
    );
}

#[test]
fn peak_memory_holds_the_largest_moment_until_reset() {
    use cubegrad::backend::{peak_memory, reset_peak_memory};
    use cubegrad::Device;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak_memory(Device::Cpu);
    let base = cpu_memory_in_use() as u64;
    assert_eq!(peak_memory(Device::Cpu).unwrap(), base);
    {
        // 4 MiB alive at once, then gone: the peak remembers them.
        let big = Tensor::zeros([1 << 20]);
        assert_eq!(big.numel(), 1 << 20);
    }
    assert_eq!(cpu_memory_in_use() as u64, base);
    assert_eq!(peak_memory(Device::Cpu).unwrap(), base + (4 << 20));
    reset_peak_memory(Device::Cpu);
    assert_eq!(peak_memory(Device::Cpu).unwrap(), base);
    let err = peak_memory(Device::Wgpu(0)).unwrap_err().to_string();
    assert!(err.contains("peak_memory"), "{err}");
}

/// Reformer's reversible layers: the activation memory of a training step (the peak above the
/// weights) grows with depth for plain residual layers and stays nearly flat for reversible
/// ones, which save only the stack's output and recompute the rest in the backward.
#[test]
fn reversible_layers_keep_activation_memory_flat_in_depth() {
    use cubegrad::backend::{peak_memory, reset_peak_memory};
    use cubegrad::nn::{Module, Reformer, ReformerOptions};
    use cubegrad::Device;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let activation_peak = |layers: usize, reversible: bool| -> f64 {
        manual_seed(3);
        let mut o = ReformerOptions::new(32, 4);
        (o.chunk, o.causal, o.reversible) = (16, true, reversible);
        let model = Reformer::new(layers, o);
        let x = Tensor::randn([4, 64, 32], 0.0, 1.0);
        clear_tape();
        let weights = cpu_memory_in_use() as f64;
        reset_peak_memory(Device::Cpu);
        let grads = model.forward(&x).sum().backward();
        assert_eq!(grads.len(), model.parameters().len());
        // The gradients are as large as the weights: count them apart.
        peak_memory(Device::Cpu).unwrap() as f64 - 2.0 * weights
    };
    let (p2, p6) = (activation_peak(2, false), activation_peak(6, false));
    let (r2, r6) = (activation_peak(2, true), activation_peak(6, true));
    println!(
        "activation peak (MiB), 2 and 6 layers: plain {:.2} {:.2}, reversible {:.2} {:.2}",
        p2 / 1048576.0,
        p6 / 1048576.0,
        r2 / 1048576.0,
        r6 / 1048576.0
    );
    let (plain_growth, reversible_growth) = (p6 - p2, r6 - r2);
    assert!(plain_growth > 0.0, "plain layers: {plain_growth} bytes");
    assert!(
        reversible_growth < 0.25 * plain_growth,
        "4 more layers cost {reversible_growth:.0} bytes reversible, {plain_growth:.0} plain"
    );
}
