//! A layer with kernels of your own: a learned Swish, `y = x · σ(β x)` with one β per feature,
//! whose forward and backward are one CubeCL kernel each on a GPU and one loop each on the CPU.
//!
//!     cargo run --release --example custom_kernel                         # CPU
//!     cargo run --release --example custom_kernel --features wgpu -- --device wgpu
//!
//! `examples/custom_layer.rs` builds the same layer from tensor ops, which run everywhere but
//! launch several kernels and keep several intermediate tensors. Here the op implements
//! [`CustomOp`]: a forward and a backward for the CPU (plain loops over the inputs' values),
//! and the same for CubeCL devices (a `#[cube]` kernel each). cubegrad calls the hook of the
//! inputs' device, and a hook the op lacks is an `Unsupported` error naming it. The run:
//!
//! 1. checks the CPU backward against central differences in f64 (`gradcheck`);
//! 2. on a CubeCL device, checks the kernels against the CPU hooks on odd shapes;
//! 3. trains an MLP with the layer on the 8×8 digits, on `--device`.

mod common;

use clap::Parser;
use common::{
    at_least, out_dir, positive, stop_at, train_classifier, write_json, AnyResult, Checked,
    ClassifierRun, Validate,
};
use cubegrad::autograd::{apply_custom, CubeContext, CustomOp, GradcheckOptions};
use cubegrad::cubecl;
use cubegrad::cubecl::prelude::*;
use cubegrad::data::load_digits;
use cubegrad::distributed::{DataParallel, ProcessGroup};
use cubegrad::nn::{Linear, Module};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{gradcheck, manual_seed, DType, Device, Error, Tensor};

// ANCHOR: swish_kernels
/// `y = x σ(βx)`, one unit per element; `β` has `d` entries, one per feature (the last axis).
#[cube(launch)]
fn swish_forward<F: Float>(x: &Array<F>, beta: &Array<F>, y: &mut Array<F>, d: u32) {
    let i = ABSOLUTE_POS;
    if i < y.len() {
        let v = x[i];
        let b = beta[i % d as usize];
        y[i] = v / (F::new(1.0) + F::exp(-b * v));
    }
}

/// With `s = σ(βx)` and `s' = s(1 − s)`: `dx = g (s + β x s')`, and each element's share of
/// `dβ`, `g x² s'` (summed over the rows afterwards).
#[cube(launch)]
fn swish_backward<F: Float>(
    x: &Array<F>,
    beta: &Array<F>,
    g: &Array<F>,
    dx: &mut Array<F>,
    dbeta_parts: &mut Array<F>,
    d: u32,
) {
    let i = ABSOLUTE_POS;
    if i < dx.len() {
        let v = x[i];
        let b = beta[i % d as usize];
        let s = F::new(1.0) / (F::new(1.0) + F::exp(-b * v));
        let ds = s * (F::new(1.0) - s);
        dx[i] = g[i] * (s + b * v * ds);
        dbeta_parts[i] = g[i] * v * v * ds;
    }
}
// ANCHOR_END: swish_kernels

// ANCHOR: swish_custom_op
/// The op: inputs `x` `[…, d]` and `beta` `[d]`.
pub struct SwishKernel;

/// Enough cubes of 256 units for `n` elements.
fn launch_grid(n: usize) -> (CubeCount, CubeDim) {
    (
        CubeCount::Static((n.max(1) as u32).div_ceil(256), 1, 1),
        CubeDim::new_1d(256),
    )
}

/// The sum of `parts` `[…, d]` over every axis but the last: `dβ`.
fn over_rows(parts: &Tensor) -> cubegrad::Result<Tensor> {
    let leading: Vec<isize> = (0..parts.rank() as isize - 1).collect();
    parts.try_sum_axes(&leading, false)
}

impl CustomOp for SwishKernel {
    fn name(&self) -> &'static str {
        "swish_kernel"
    }

    /// The CPU: a loop over the values, in f64, back in the input's dtype.
    fn cpu_forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Tensor> {
        let (x, beta) = (inputs[0], inputs[1]);
        let (xs, bs) = (x.try_to_vec::<f64>()?, beta.try_to_vec::<f64>()?);
        let y: Vec<f64> = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| v / (1.0 + (-bs[i % bs.len()] * v).exp()))
            .collect();
        Tensor::try_from_vec(y, x.shape().clone())?.try_to_dtype(x.dtype())
    }

    fn cpu_backward(
        &self,
        inputs: &[&Tensor],
        _output: &Tensor,
        grad: &Tensor,
        needs_grad: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (x, beta) = (inputs[0], inputs[1]);
        let (xs, bs, gs) = (
            x.try_to_vec::<f64>()?,
            beta.try_to_vec::<f64>()?,
            grad.try_to_vec::<f64>()?,
        );
        let (mut dx, mut parts) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        for (i, &v) in xs.iter().enumerate() {
            let b = bs[i % bs.len()];
            let s = 1.0 / (1.0 + (-b * v).exp());
            let ds = s * (1.0 - s);
            dx[i] = gs[i] * (s + b * v * ds);
            parts[i] = gs[i] * v * v * ds;
        }
        let back =
            |v: Vec<f64>| Tensor::try_from_vec(v, x.shape().clone())?.try_to_dtype(x.dtype());
        Ok(vec![
            needs_grad[0].then(|| back(dx)).transpose()?,
            needs_grad[1]
                .then(|| over_rows(&back(parts)?))
                .transpose()?,
        ])
    }

    /// A CubeCL device: one launch of `swish_forward`, in the inputs' float type.
    fn cube_forward<R: Runtime>(
        &self,
        ctx: &CubeContext<'_, R>,
        inputs: &[&Tensor],
    ) -> cubegrad::Result<Tensor> {
        let (x, beta) = (ctx.dense(inputs[0])?, ctx.dense(inputs[1])?);
        let (n, d) = (x.numel(), beta.numel());
        let y = ctx.empty(n, x.dtype());
        let (count, dim) = launch_grid(n);
        macro_rules! launch {
            ($F:ty) => {
                // SAFETY: x and y hold n elements, beta d; the kernel guards the length.
                unsafe {
                    swish_forward::launch::<$F, R>(
                        ctx.client(),
                        count,
                        dim,
                        ArrayArg::from_raw_parts(ctx.handle(&x)?.clone(), n.max(1)),
                        ArrayArg::from_raw_parts(ctx.handle(&beta)?.clone(), d.max(1)),
                        ArrayArg::from_raw_parts(y.clone(), n.max(1)),
                        d as u32,
                    )
                }
            };
        }
        match x.dtype() {
            DType::F32 => launch!(f32),
            DType::F64 => launch!(f64),
            other => {
                return Err(Error::DType {
                    op: "swish_kernel",
                    got: other,
                    expected: "f32 or f64",
                })
            }
        }
        Ok(ctx.tensor(y, x.shape().clone(), x.dtype()))
    }

    /// One launch of `swish_backward`, then `dβ` as a row sum on the device.
    fn cube_backward<R: Runtime>(
        &self,
        ctx: &CubeContext<'_, R>,
        inputs: &[&Tensor],
        _output: &Tensor,
        grad: &Tensor,
        needs_grad: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (x, beta, g) = (
            ctx.dense(inputs[0])?,
            ctx.dense(inputs[1])?,
            ctx.dense(grad)?,
        );
        let (n, d) = (x.numel(), beta.numel());
        let (dx, parts) = (ctx.empty(n, x.dtype()), ctx.empty(n, x.dtype()));
        let (count, dim) = launch_grid(n);
        macro_rules! launch {
            ($F:ty) => {
                // SAFETY: x, g, dx and parts hold n elements, beta d.
                unsafe {
                    swish_backward::launch::<$F, R>(
                        ctx.client(),
                        count,
                        dim,
                        ArrayArg::from_raw_parts(ctx.handle(&x)?.clone(), n.max(1)),
                        ArrayArg::from_raw_parts(ctx.handle(&beta)?.clone(), d.max(1)),
                        ArrayArg::from_raw_parts(ctx.handle(&g)?.clone(), n.max(1)),
                        ArrayArg::from_raw_parts(dx.clone(), n.max(1)),
                        ArrayArg::from_raw_parts(parts.clone(), n.max(1)),
                        d as u32,
                    )
                }
            };
        }
        match x.dtype() {
            DType::F32 => launch!(f32),
            _ => launch!(f64),
        }
        let dx = ctx.tensor(dx, x.shape().clone(), x.dtype());
        let parts = ctx.tensor(parts, x.shape().clone(), x.dtype());
        Ok(vec![
            needs_grad[0].then_some(dx),
            needs_grad[1].then(|| over_rows(&parts)).transpose()?,
        ])
    }
}
// ANCHOR_END: swish_custom_op

/// The layer: one β per feature (PyTorch name `beta`), initialised to 1 (SiLU).
pub struct KernelSwish {
    pub beta: Tensor,
}

impl KernelSwish {
    pub fn new(features: usize) -> Self {
        KernelSwish {
            beta: Tensor::ones([features]).with_grad(),
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> cubegrad::Result<Tensor> {
        apply_custom(SwishKernel, &[x, &self.beta])
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Module for KernelSwish {
    cubegrad::module_tensors! {
        param "beta" beta;
    }
}

/// 64 → hidden → 10 with the kernel Swish between.
pub struct Mlp {
    pub fc1: Linear,
    pub act: KernelSwish,
    pub fc2: Linear,
}

impl Module for Mlp {
    cubegrad::module_tensors! {
        child "fc1" fc1;
        child "act" act;
        child "fc2" fc2;
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "A layer with its own CubeCL kernels: checked on the CPU and the device, trained"
)]
pub struct Config {
    #[arg(long, default_value = "data/digits.csv.gz")]
    pub data: String,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[arg(long, default_value = "runs/custom_kernel")]
    pub out: String,
    /// Continue from the checkpoint in --out
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch, as if interrupted
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
    /// Skip a batch whose loss or gradients are not finite instead of stopping the run
    #[arg(long)]
    pub skip_nonfinite: bool,
}

impl Validate for Config {
    fn validate(&self) -> Checked {
        at_least("epochs", self.epochs, 1)?;
        at_least("hidden", self.hidden, 1)?;
        at_least("batch-size", self.batch_size, 1)?;
        positive("lr", self.lr)?;
        stop_at(self.stop_at)
    }
}

pub struct Report {
    /// gradcheck's worst error on the CPU hooks (f64, random cotangent).
    pub gradcheck_error: f64,
    /// On a CubeCL device: the kernels' worst relative error against the CPU hooks.
    pub device_error: Option<f64>,
    pub test_accuracy: f64,
    pub first_loss: f64,
    pub last_loss: f64,
    pub finished: bool,
}

/// The kernels against the CPU hooks on `device`, forward and both gradients, for odd shapes
/// larger than one cube; returns the worst relative error (and fails beyond f32's tolerance).
pub fn compare_with_cpu(device: Device) -> cubegrad::Result<f64> {
    let x = Tensor::randn([37, 29], 0.0, 1.5).with_grad();
    let beta = Tensor::rand_uniform([29], 0.2, 2.0).with_grad();
    let g = Tensor::randn([37, 29], 0.0, 1.0);
    let run = |x: &Tensor, beta: &Tensor, g: &Tensor| -> cubegrad::Result<Vec<Vec<f64>>> {
        let y = apply_custom(SwishKernel, &[x, beta])?;
        let grads = y.try_backward_with(g)?;
        Ok(vec![
            y.try_to_vec()?,
            grads.get(x).expect("dx").try_to_vec()?,
            grads.get(beta).expect("dβ").try_to_vec()?,
        ])
    };
    let want = run(&x, &beta, &g)?;
    let on = |t: &Tensor| t.detach().to_device(device).with_grad();
    let (xd, bd) = (on(&x), on(&beta));
    let got = run(&xd, &bd, &g.to_device(device))?;
    let mut worst = 0.0f64;
    for (name, (a, b)) in ["y", "dx", "dβ"].iter().zip(got.iter().zip(&want)) {
        assert_close(
            a,
            b,
            Tolerance::F32,
            &format!("swish_kernel {name} on {device}"),
        );
        for (p, q) in a.iter().zip(b) {
            worst = worst.max((p - q).abs() / q.abs().max(1.0));
        }
    }
    Ok(worst)
}

pub fn run(cfg: &Config) -> AnyResult<Report> {
    cfg.validate()?;
    // ANCHOR: swish_kernel_check
    // 1. The CPU hooks' backward against central differences, in f64.
    manual_seed(cfg.seed);
    let x = Tensor::randn([5, 7], 0.0, 1.5)
        .to_dtype(DType::F64)
        .with_grad();
    let beta = Tensor::rand_uniform([7], 0.2, 2.0)
        .to_dtype(DType::F64)
        .with_grad();
    let check = gradcheck(
        |i| apply_custom(SwishKernel, &[&i[0], &i[1]]),
        &[x, beta],
        &GradcheckOptions::default(),
    )?;
    // 2. The device's kernels against the CPU hooks.
    let device_error = match cfg.device {
        Device::Cpu => None,
        device => Some(compare_with_cpu(device)?),
    };
    // ANCHOR_END: swish_kernel_check
    if !cfg.quiet {
        println!("gradcheck of swish_kernel on the CPU: {check}");
        if let Some(e) = device_error {
            println!(
                "kernels on {} against the CPU: max relative error {e:.1e}",
                cfg.device
            );
        }
    }

    // 3. Train with it on the chosen device.
    let dir = out_dir(&cfg.out)?;
    let parts = load_digits(&cfg.data)?.split(&[0.7, 0.15, 0.15], cfg.seed);
    let (train, valid, test) = (&parts[0], &parts[1], &parts[2]);
    manual_seed(cfg.seed);
    let mut model = Mlp {
        fc1: Linear::new(64, cfg.hidden, true),
        act: KernelSwish::new(cfg.hidden),
        fc2: Linear::new(cfg.hidden, 10, true),
    };
    model.try_to_device(cfg.device)?;
    // One process: this example does not take --distributed.
    let mut one_process = DataParallel::new(ProcessGroup::single());
    let run = ClassifierRun {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        device: cfg.device,
        dir: &dir,
        tag: format!("swish_kernel hidden={}", cfg.hidden),
        resume: cfg.resume,
        stop_at: cfg.stop_at,
        quiet: cfg.quiet,
        skip_nonfinite: cfg.skip_nonfinite,
    };
    let mut fwd = |m: &mut Mlp, x: &Tensor| m.fc2.forward(&m.act.forward(&m.fc1.forward(x)));
    let (history, finished) =
        train_classifier(&mut model, &mut fwd, train, valid, &run, &mut one_process)?;
    let test_accuracy = common::accuracy(&mut model, &mut fwd, test, 256, cfg.device);
    let losses = history.column("train_loss");
    let report = Report {
        gradcheck_error: check.max_error,
        device_error,
        test_accuracy,
        first_loss: losses.first().copied().unwrap_or(f64::NAN),
        last_loss: losses.last().copied().unwrap_or(f64::NAN),
        finished,
    };
    write_json(
        &dir.join("results.json"),
        &serde_json::json!({
            "device": cfg.device.to_string(),
            "gradcheck_max_error": report.gradcheck_error,
            "device_max_relative_error": report.device_error,
            "test_accuracy": report.test_accuracy,
            "learned_beta": model.act.beta.to_device(Device::Cpu).to_vec::<f32>(),
        }),
    )?;
    Ok(report)
}

#[allow(dead_code)]
fn main() {
    common::main(run, |cfg: &Config, r: &Report| {
        println!(
            "gradcheck max error {:.1e}; test accuracy with the kernel Swish on {}: {:.2}%; results in {}",
            r.gradcheck_error,
            cfg.device,
            100.0 * r.test_accuracy,
            cfg.out
        )
    });
}
