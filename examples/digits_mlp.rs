//! A two-layer perceptron on the 8×8 handwritten digits, trained with Adam.
//!
//!     cargo run --release --example digits_mlp
//!
//! It loads `data/digits.csv.gz` (1,797 images), splits it 70/15/15 into train, validation and
//! test sets with a fixed seed, trains for a fraction of a second, watching the validation
//! accuracy, and reports the accuracy on the test set, which training never sees (about 97%).

use clap::Parser;
use cubegrad::data::{load_digits, Dataset};
use cubegrad::nn::{Linear, Module};
use cubegrad::optim::{Adam, AdamConfig, Optimizer};
use cubegrad::{manual_seed, no_grad, Device, Tensor};

#[derive(Parser, Debug, Clone)]
#[command(about = "Train an MLP on the 8x8 digits and report held-out accuracy")]
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
    #[arg(long)]
    pub quiet: bool,
}

impl Config {
    /// The rules of the flags, checked before any work: the first one broken, in one line
    /// naming the flag and its value (the other examples share these in `common/config.rs`).
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("epochs", self.epochs),
            ("hidden", self.hidden),
            ("batch-size", self.batch_size),
        ] {
            if value == 0 {
                return Err(format!("--{flag} 0 must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("--lr {} must be a finite number above 0", self.lr));
        }
        Ok(())
    }
}

/// 64 → hidden → 10 with a ReLU between.
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(hidden: usize) -> Self {
        Mlp {
            fc1: Linear::new(64, hidden, true),
            fc2: Linear::new(hidden, 10, true),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(x).relu())
    }
}

impl Module for Mlp {
    cubegrad::module_tensors! {
        child "fc1" fc1;
        child "fc2" fc2;
    }
}

/// Fraction of `data` the model classifies correctly; the images go to the model's device,
/// and only the predicted classes come back.
pub fn accuracy(model: &Mlp, data: &Dataset) -> f64 {
    let device = model.fc1.weight.device();
    no_grad(|| {
        let x = data.x.to_device(device);
        let pred = model.forward(&x).argmax(-1, false).to_vec::<i64>();
        let truth = data.y.to_vec::<i64>();
        pred.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
    })
}

pub struct Report {
    pub first_epoch_loss: f64,
    pub last_epoch_loss: f64,
    pub test_accuracy: f64,
    pub test_size: usize,
    pub params: usize,
}

pub fn train(cfg: &Config) -> cubegrad::Result<Report> {
    manual_seed(cfg.seed);
    let all = load_digits(&cfg.data)?;
    let parts = all.split(&[0.7, 0.15, 0.15], cfg.seed);
    let (train, valid, test) = (&parts[0], &parts[1], &parts[2]);
    let mut model = Mlp::new(cfg.hidden);
    model.try_to_device(cfg.device)?;
    let mut opt: Adam = AdamConfig::adam().lr(cfg.lr).init();
    let mut losses = Vec::new();
    for epoch in 0..cfg.epochs {
        let (mut total, mut batches) = (0.0, 0);
        for (x, y) in train.batches(cfg.batch_size, true) {
            let (x, y) = (x.try_to_device(cfg.device)?, y.try_to_device(cfg.device)?);
            let loss = model.forward(&x).cross_entropy(&y);
            let grads = loss.backward();
            opt.step(&mut model, &grads)?;
            total += loss.item();
            batches += 1;
        }
        losses.push(total / batches as f64);
        if !cfg.quiet && (epoch % 5 == 4 || epoch == 0) {
            println!(
                "epoch {:3}  loss {:.4}  validation accuracy {:.2}%",
                epoch + 1,
                losses[epoch],
                100.0 * accuracy(&model, valid)
            );
        }
    }
    Ok(Report {
        first_epoch_loss: losses[0],
        last_epoch_loss: *losses.last().unwrap(),
        test_accuracy: accuracy(&model, test),
        test_size: test.len(),
        params: model.num_params(),
    })
}

#[allow(dead_code)]
fn main() {
    let cfg = Config::parse();
    if let Err(e) = cfg.validate() {
        // Status 2, as for a flag clap cannot parse.
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let start = std::time::Instant::now();
    let r = train(&cfg).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    println!(
        "{} parameters, trained in {:.2} s: test accuracy {:.2}% on {} held-out images",
        r.params,
        start.elapsed().as_secs_f64(),
        100.0 * r.test_accuracy,
        r.test_size
    );
}
