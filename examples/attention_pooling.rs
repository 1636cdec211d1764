//! Attention pooling by Nadaraya–Watson kernel regression: the lecture's first chapter.
//!
//!     cargo run --release --example attention_pooling
//!
//! Fifty noisy samples of `y = 2 sin x + x^0.8` (noise N(0, 0.5²)) on [0, 5] are the keys
//! (inputs x_i) and values (outputs y_i). A query x is answered by a weighted average of the
//! values, `f(x) = Σ α(x, x_i) y_i`, where the attention weights α sum to one:
//! - average pooling: α = 1/n, the same prediction everywhere;
//! - nonparametric attention pooling: α = softmax_i(−(x − x_i)²/2), a Gaussian kernel;
//! - parametric attention pooling: α = softmax_i(−((x − x_i) w)²/2) with a width w learned by
//!   SGD on the squared error, each training point predicted from the others.
//!
//! The fits and the attention-weight heatmaps are written to `--out` as SVG.

mod common;

use clap::Parser;
use common::{
    at_least, heatmap, line_chart, out_dir, positive, progress, stop_at, write_json, AnyResult,
    Checked, Series, Table, TrainState, Validate,
};
use cubegrad::nn::Module;
use cubegrad::optim::{Optimizer, SgdConfig};
use cubegrad::{manual_seed, no_grad, Device, Tensor};

#[derive(Parser, Debug, Clone)]
#[command(about = "Nadaraya-Watson attention pooling: average, nonparametric and parametric")]
pub struct Config {
    #[arg(long, default_value_t = 50)]
    pub n_train: usize,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.5)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[arg(long, default_value = "runs/attention_pooling")]
    pub out: String,
    /// Continue the parametric model's training from the checkpoint in --out
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch, as if interrupted
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

impl Validate for Config {
    fn validate(&self) -> Checked {
        // Each training point is fitted from the others (leave one out).
        at_least("n-train", self.n_train, 2)?;
        at_least("epochs", self.epochs, 1)?;
        positive("lr", self.lr)?;
        stop_at(self.stop_at)
    }
}

pub fn truth(x: f64) -> f64 {
    2.0 * x.sin() + x.powf(0.8)
}

/// The parametric pooling: one learned width `w`.
pub struct NwKernelRegression {
    pub w: Tensor,
}

// ANCHOR: nw_forward
impl NwKernelRegression {
    pub fn new() -> Self {
        NwKernelRegression {
            w: Tensor::rand_uniform([1], 0.0, 1.0).with_grad(),
        }
    }
    /// `queries` `[q]`, `keys` and `values` `[q, k]` (each query its own keys) → predictions
    /// `[q]` and the attention weights `[q, k]`.
    pub fn forward(&self, queries: &Tensor, keys: &Tensor, values: &Tensor) -> (Tensor, Tensor) {
        let k = keys.dims()[1];
        let q = queries
            .reshape(&[queries.numel(), 1])
            .broadcast_to([queries.numel(), k]);
        let d = q.sub(keys).mul(&self.w);
        let weights = d.square().mul_scalar(-0.5).softmax(-1);
        (weights.mul(values).sum_axes(&[-1], false), weights)
    }
}
// ANCHOR_END: nw_forward

impl Default for NwKernelRegression {
    fn default() -> Self {
        Self::new()
    }
}

impl Module for NwKernelRegression {
    cubegrad::module_tensors! {
        param "w" w;
    }
}

pub struct Report {
    /// Mean squared error against the noiseless function on the test grid, per method.
    pub mse_average: f64,
    pub mse_nonparametric: f64,
    pub mse_parametric: f64,
    pub first_loss: f64,
    pub last_loss: f64,
    pub width: f64,
    pub finished: bool,
}

fn mse(pred: &[f32], target: &[f64]) -> f64 {
    pred.iter()
        .zip(target)
        .map(|(p, t)| (*p as f64 - t).powi(2))
        .sum::<f64>()
        / target.len() as f64
}

pub fn run(cfg: &Config) -> AnyResult<Report> {
    cfg.validate()?;
    manual_seed(cfg.seed);
    let dev = cfg.device;
    let dir = out_dir(&cfg.out)?;
    let n = cfg.n_train;
    // Sorted inputs, so the heatmaps read as bands along the diagonal.
    let mut xs = Tensor::rand_uniform([n], 0.0, 5.0).to_vec::<f32>();
    xs.sort_by(f32::total_cmp);
    let noise = Tensor::randn([n], 0.0, 0.5).to_vec::<f32>();
    let ys: Vec<f32> = xs
        .iter()
        .zip(&noise)
        .map(|(&x, &e)| truth(x as f64) as f32 + e)
        .collect();
    let x_test: Vec<f32> = (0..50).map(|i| i as f32 * 0.1).collect();
    let y_truth: Vec<f64> = x_test.iter().map(|&x| truth(x as f64)).collect();
    let m = x_test.len();

    // Average pooling.
    let mean = ys.iter().map(|&y| y as f64).sum::<f64>() / n as f64;
    let avg_pred = vec![mean as f32; m];

    // Nonparametric: every test query against all training keys, w fixed at 1.
    let keys_all = Tensor::from_vec(xs.clone(), [1, n])
        .broadcast_to([m, n])
        .to_device(dev);
    let values_all = Tensor::from_vec(ys.clone(), [1, n])
        .broadcast_to([m, n])
        .to_device(dev);
    let queries = Tensor::from_vec(x_test.clone(), [m]).to_device(dev);
    let fixed = NwKernelRegression {
        w: Tensor::ones([1]).to_device(dev),
    };
    let (np_pred, np_weights) = no_grad(|| fixed.forward(&queries, &keys_all, &values_all));
    let np_pred = np_pred.to_vec::<f32>();

    // Parametric: each training point is a query whose keys are the other n − 1 points.
    let others: Vec<usize> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i))
        .collect();
    let keys_loo = Tensor::from_vec(
        others.iter().map(|&j| xs[j]).collect::<Vec<_>>(),
        [n, n - 1],
    )
    .to_device(dev);
    let values_loo = Tensor::from_vec(
        others.iter().map(|&j| ys[j]).collect::<Vec<_>>(),
        [n, n - 1],
    )
    .to_device(dev);
    let x_train = Tensor::from_vec(xs.clone(), [n]).to_device(dev);
    let y_train = Tensor::from_vec(ys.clone(), [n]).to_device(dev);
    let mut model = NwKernelRegression::new();
    model.try_to_device(dev)?;
    let mut opt = SgdConfig {
        lr: cfg.lr,
        ..Default::default()
    }
    .init();
    let mut state = TrainState::start(
        &dir,
        &format!("nadaraya-watson n_train={}", cfg.n_train),
        "epoch",
        &["epoch", "loss", "w", "test_mse"],
        cfg.resume,
        &mut model,
        &mut opt,
    )?;
    let bar = progress(cfg.epochs, cfg.quiet);
    bar.set_position(state.done as u64);
    let end = cfg.stop_at.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    while state.done < end {
        let (pred, _) = model.forward(&x_train, &keys_loo, &values_loo);
        // The lecture sums the squared errors (no mean), which sets the scale of lr = 0.5.
        let loss = pred.sub(&y_train).square().mul_scalar(0.5).sum();
        let grads = loss.backward();
        opt.step(&mut model, &grads)?;
        state.done += 1;
        let (test_pred, _) = no_grad(|| model.forward(&queries, &keys_all, &values_all));
        let w = model.w.to_device(Device::Cpu).to_vec::<f32>()[0] as f64;
        state.history.push(vec![
            state.done as f64,
            loss.item(),
            w,
            mse(&test_pred.to_vec::<f32>(), &y_truth),
        ]);
        bar.inc(1);
        bar.set_message(format!("loss {:.3}, w {w:.3}", loss.item()));
        state.save(&model, &opt)?;
    }
    bar.finish_and_clear();
    let history = state.history;
    history.write_csv(&dir.join("metrics.csv"))?;
    let (p_pred, p_weights) = no_grad(|| model.forward(&queries, &keys_all, &values_all));
    let p_pred = p_pred.to_vec::<f32>();

    let line = |pred: &[f32]| -> Vec<(f64, f64)> {
        x_test
            .iter()
            .zip(pred)
            .map(|(&x, &y)| (x as f64, y as f64))
            .collect()
    };
    line_chart(
        &dir.join("fits.svg"),
        "Nadaraya–Watson attention pooling",
        "x",
        "y",
        &[
            Series::line(
                "truth",
                x_test
                    .iter()
                    .zip(&y_truth)
                    .map(|(&x, &y)| (x as f64, y))
                    .collect(),
            ),
            Series::points(
                "samples",
                xs.iter()
                    .zip(&ys)
                    .map(|(&x, &y)| (x as f64, y as f64))
                    .collect(),
            ),
            Series::line("average pooling", line(&avg_pred)),
            Series::line("nonparametric (Gaussian kernel)", line(&np_pred)),
            Series::line("parametric (learned width)", line(&p_pred)),
        ],
    )?;
    let as_rows = |w: &Tensor| -> Vec<Vec<f64>> {
        let v = w.to_device(Device::Cpu).to_vec::<f32>();
        v.chunks(n)
            .map(|r| r.iter().map(|&a| a as f64).collect())
            .collect()
    };
    let q_labels: Vec<String> = x_test.iter().map(|x| format!("{x:.1}")).collect();
    let k_labels: Vec<String> = xs.iter().map(|x| format!("{x:.1}")).collect();
    heatmap(
        &dir.join("weights_nonparametric.svg"),
        "Attention weights, nonparametric (rows: test queries, columns: sorted keys)",
        &as_rows(&np_weights),
        &k_labels,
        &q_labels,
    )?;
    heatmap(
        &dir.join("weights_parametric.svg"),
        "Attention weights, parametric (rows: test queries, columns: sorted keys)",
        &as_rows(&p_weights),
        &k_labels,
        &q_labels,
    )?;
    let report = Report {
        mse_average: mse(&avg_pred, &y_truth),
        mse_nonparametric: mse(&np_pred, &y_truth),
        mse_parametric: mse(&p_pred, &y_truth),
        first_loss: history.rows.first().map_or(f64::NAN, |r| r[1]),
        last_loss: history.rows.last().map_or(f64::NAN, |r| r[1]),
        width: history.rows.last().map_or(f64::NAN, |r| r[2]),
        finished: state.done >= cfg.epochs,
    };
    let mut table = Table::new(&["pooling", "MSE to the true function"]);
    table.push(vec!["average".into(), format!("{:.3}", report.mse_average)]);
    table.push(vec![
        "nonparametric".into(),
        format!("{:.3}", report.mse_nonparametric),
    ]);
    table.push(vec![
        format!("parametric (w = {:.2})", report.width),
        format!("{:.3}", report.mse_parametric),
    ]);
    table.write(&dir, "results")?;
    write_json(
        &dir.join("results.json"),
        &serde_json::json!({
            "mse_average": report.mse_average,
            "mse_nonparametric": report.mse_nonparametric,
            "mse_parametric": report.mse_parametric,
            "learned_w": report.width,
        }),
    )?;
    if !cfg.quiet {
        println!("{}", table.markdown());
    }
    Ok(report)
}

#[allow(dead_code)]
fn main() {
    common::main(run, |cfg: &Config, _: &Report| {
        println!("figures and metrics in {}", cfg.out)
    });
}
