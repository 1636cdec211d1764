//! Adding your own layer to cubegrad: a forward, a hand-written backward, a finite-difference
//! check, and training.
//!
//!     cargo run --release --example custom_layer
//!
//! The layer is a learned Swish, `y = x · σ(β x)` with one β per feature (β = 1 is SiLU; large β
//! approaches ReLU). It goes through the same public [`Op`] trait as every built-in op:
//! `forward` computes the output and says what to save, `backward` turns the gradient of the
//! output into gradients of `x` and `β`. `gradcheck` compares that backward with central
//! differences in f64, with a random cotangent. Then an MLP with the layer trains on the 8×8
//! digits beside the same MLP with ReLU.

mod common;

use clap::Parser;
use common::{
    at_least, line_chart, out_dir, positive, stop_at, train_classifier, write_json, AnyResult,
    Checked, ClassifierRun, Series, Table, Validate,
};
use cubegrad::autograd::{apply, Forward, GradcheckOptions, Op};
use cubegrad::data::load_digits;
use cubegrad::distributed::{DataParallel, ProcessGroup};
use cubegrad::nn::{Linear, Module};
use cubegrad::{gradcheck, manual_seed, DType, Device, Tensor};

// ANCHOR: swish_op
/// The op: inputs `x` `[…, d]` and `beta` `[d]`.
pub struct LearnedSwishOp;

impl Op for LearnedSwishOp {
    fn name(&self) -> &'static str {
        "learned_swish"
    }

    /// Saves `x`, `β` and the gate `s = σ(βx)`: the backward needs all three, and keeping `s`
    /// spares it a second sigmoid.
    fn forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Forward> {
        let (x, beta) = (inputs[0], inputs[1]);
        let s = x.try_mul(beta)?.sigmoid();
        Ok(Forward::new(
            x.try_mul(&s)?,
            vec![x.clone(), beta.clone(), s],
        ))
    }

    /// With `s' = s(1 − s)`: `∂y/∂x = s + β x s'` and `∂y/∂β = x² s'`. `β` is shared by every
    /// row, so its gradient sums over all leading axes.
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs_grad: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (x, beta, s) = (&saved[0], &saved[1], &saved[2]);
        let ds = s.try_mul(&s.neg().add_scalar(1.0))?;
        let gx = needs_grad[0]
            .then(|| -> cubegrad::Result<Tensor> {
                g.try_mul(&s.try_add(&x.try_mul(beta)?.try_mul(&ds)?)?)
            })
            .transpose()?;
        let gbeta = needs_grad[1]
            .then(|| -> cubegrad::Result<Tensor> {
                let per_elem = g.try_mul(&x.square())?.try_mul(&ds)?;
                let leading: Vec<isize> = (0..per_elem.rank() as isize - 1).collect();
                per_elem.try_sum_axes(&leading, false)
            })
            .transpose()?;
        Ok(vec![gx, gbeta])
    }
}
// ANCHOR_END: swish_op

// ANCHOR: swish_layer
/// The layer: a parameter `beta` (PyTorch name `beta`), initialised to 1 (SiLU).
pub struct LearnedSwish {
    pub beta: Tensor,
}

impl LearnedSwish {
    pub fn new(features: usize) -> Self {
        LearnedSwish {
            beta: Tensor::ones([features]).with_grad(),
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> cubegrad::Result<Tensor> {
        apply(LearnedSwishOp, &[x, &self.beta])
    }
}

impl Module for LearnedSwish {
    cubegrad::module_tensors! {
        param "beta" beta;
    }
}
// ANCHOR_END: swish_layer

/// 64 → hidden → 10, with the learned Swish or a ReLU between.
pub struct Mlp {
    pub fc1: Linear,
    pub act: Option<LearnedSwish>,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(hidden: usize, swish: bool) -> Self {
        Mlp {
            fc1: Linear::new(64, hidden, true),
            act: swish.then(|| LearnedSwish::new(hidden)),
            fc2: Linear::new(hidden, 10, true),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.fc1.forward(x);
        let h = match &self.act {
            Some(a) => a.try_forward(&h).expect("learned_swish"),
            None => h.relu(),
        };
        self.fc2.forward(&h)
    }
}

impl Module for Mlp {
    cubegrad::module_tensors! {
        child "fc1" fc1;
        optional "act" act;
        child "fc2" fc2;
    }
}

#[derive(Parser, Debug, Clone)]
#[command(about = "Write a layer with its own backward, check it with gradcheck, train with it")]
pub struct Config {
    #[arg(long, default_value = "data/digits.csv.gz")]
    pub data: String,
    #[arg(long, default_value_t = 30)]
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
    #[arg(long, default_value = "runs/custom_layer")]
    pub out: String,
    /// Continue both runs from their checkpoints in --out
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
    /// gradcheck's worst error on the layer (f64, random cotangent).
    pub gradcheck_error: f64,
    /// (name, first-epoch loss, last-epoch loss, test accuracy) for Swish and ReLU.
    pub runs: Vec<(String, f64, f64, f64)>,
    pub finished: bool,
}

pub fn run(cfg: &Config) -> AnyResult<Report> {
    cfg.validate()?;
    // ANCHOR: swish_check
    // 1. The backward against central differences, on odd shapes, in f64.
    manual_seed(cfg.seed);
    let x = Tensor::randn([5, 7], 0.0, 1.5)
        .to_dtype(DType::F64)
        .with_grad();
    let beta = Tensor::rand_uniform([7], 0.2, 2.0)
        .to_dtype(DType::F64)
        .with_grad();
    let check = gradcheck(
        |i| apply(LearnedSwishOp, &[&i[0], &i[1]]),
        &[x, beta],
        &GradcheckOptions::default(),
    )?;
    // ANCHOR_END: swish_check
    if !cfg.quiet {
        println!("gradcheck of learned_swish: {check}");
    }

    // 2. Train with it.
    let dir = out_dir(&cfg.out)?;
    let parts = load_digits(&cfg.data)?.split(&[0.7, 0.15, 0.15], cfg.seed);
    let (train, valid, test) = (&parts[0], &parts[1], &parts[2]);
    let mut table = Table::new(&["activation", "params", "test accuracy", "time (s)"]);
    let mut runs = Vec::new();
    let mut curves = Vec::new();
    let mut finished = true;
    let mut betas = Vec::new();
    for (name, swish) in [("learned-swish", true), ("relu", false)] {
        manual_seed(cfg.seed);
        let mut model = Mlp::new(cfg.hidden, swish);
        model.try_to_device(cfg.device)?;
        let sub = out_dir(&format!("{}/{name}", cfg.out))?;
        // One process: this example does not take --distributed.
        let mut one_process = DataParallel::new(ProcessGroup::single());
        let run = ClassifierRun {
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            device: cfg.device,
            dir: &sub,
            tag: format!("{name} hidden={}", cfg.hidden),
            resume: cfg.resume,
            stop_at: cfg.stop_at,
            quiet: cfg.quiet,
            skip_nonfinite: cfg.skip_nonfinite,
        };
        let mut fwd = |m: &mut Mlp, x: &Tensor| m.forward(x);
        let (history, done) =
            train_classifier(&mut model, &mut fwd, train, valid, &run, &mut one_process)?;
        finished &= done;
        let acc = common::accuracy(&mut model, &mut fwd, test, 256, cfg.device);
        let losses = history.column("train_loss");
        runs.push((
            name.to_string(),
            losses.first().copied().unwrap_or(f64::NAN),
            losses.last().copied().unwrap_or(f64::NAN),
            acc,
        ));
        table.push(vec![
            name.into(),
            model.num_params().to_string(),
            format!("{:.2}%", 100.0 * acc),
            format!("{:.2}", history.rows.last().map_or(0.0, |r| r[3])),
        ]);
        curves.push(Series::line(name, history.points("epoch", "train_loss")));
        if let Some(a) = &model.act {
            betas = a.beta.to_device(Device::Cpu).to_vec::<f32>();
        }
    }
    table.write(&dir, "results")?;
    line_chart(
        &dir.join("learning_curves.svg"),
        "Digits MLP: learned Swish vs ReLU",
        "epoch",
        "training loss",
        &curves,
    )?;
    let mut sorted: Vec<f64> = betas.iter().map(|&b| b as f64).collect();
    sorted.sort_by(f64::total_cmp);
    line_chart(
        &dir.join("learned_beta.svg"),
        "Learned β per hidden unit, sorted (β = 1 at the start)",
        "unit (sorted)",
        "β",
        &[Series::points(
            "β",
            sorted
                .iter()
                .enumerate()
                .map(|(i, &b)| (i as f64, b))
                .collect(),
        )],
    )?;
    write_json(
        &dir.join("results.json"),
        &serde_json::json!({
            "gradcheck_max_error": check.max_error,
            "runs": runs.iter().map(|(n, f, l, a)| serde_json::json!({
                "activation": n, "first_epoch_loss": f, "last_epoch_loss": l, "test_accuracy": a
            })).collect::<Vec<_>>(),
            "learned_beta": betas,
        }),
    )?;
    if !cfg.quiet {
        println!("{}", table.markdown());
    }
    Ok(Report {
        gradcheck_error: check.max_error,
        runs,
        finished,
    })
}

#[allow(dead_code)]
fn main() {
    common::main(run, |cfg: &Config, r: &Report| {
        println!(
            "gradcheck max error {:.1e}; test accuracy: learned Swish {:.2}%, ReLU {:.2}%; figures in {}",
            r.gradcheck_error,
            100.0 * r.runs[0].3,
            100.0 * r.runs[1].3,
            cfg.out
        )
    });
}
