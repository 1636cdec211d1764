//! What every example shares: its output folder, the progress bar, the metrics it logs (CSV and
//! JSON, and inside checkpoints so that `--resume` continues them), Markdown tables, and SVG
//! figures drawn with plotters. Examples include it with `mod common;`; each uses a part.
#![allow(dead_code)]

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub type AnyResult<T> = std::result::Result<T, Box<dyn Error>>;

/// Creates `dir` (and its parents) and returns it.
pub fn out_dir(dir: &str) -> AnyResult<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create output folder {dir}: {e}"))?;
    Ok(PathBuf::from(dir))
}

/// A progress bar over `total` steps that shows the caller's message (loss, throughput);
/// hidden with `--quiet` and in tests.
pub fn progress(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed}<{eta}]")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Named columns of numbers, one row per log point: the learning curves.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl History {
    pub fn new(columns: &[&str]) -> Self {
        History {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<f64>) {
        assert_eq!(row.len(), self.columns.len(), "History::push: row width");
        self.rows.push(row);
    }
    pub fn column(&self, name: &str) -> Vec<f64> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("History: no column {name:?}"));
        self.rows.iter().map(|r| r[i]).collect()
    }
    /// `(x, y)` points of two columns, skipping rows where `y` is NaN (not measured then).
    pub fn points(&self, x: &str, y: &str) -> Vec<(f64, f64)> {
        self.column(x)
            .into_iter()
            .zip(self.column(y))
            .filter(|(_, v)| v.is_finite())
            .collect()
    }
    pub fn to_json(&self) -> String {
        serde_json::json!({ "columns": self.columns, "rows": self.rows }).to_string()
    }
    pub fn from_json(s: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        let columns = v["columns"]
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let rows = v["rows"]
            .as_array()?
            .iter()
            .map(|r| {
                r.as_array()?
                    .iter()
                    .map(|x| Some(x.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Option<Vec<f64>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(History { columns, rows })
    }
    pub fn write_csv(&self, path: &Path) -> AnyResult<()> {
        let mut s = self.columns.join(",");
        s.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        write_file(path, &s)
    }
}

pub fn write_file(path: &Path, contents: &str) -> AnyResult<()> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> AnyResult<()> {
    write_file(path, &serde_json::to_string_pretty(value)?)
}

/// A results table, written as Markdown and CSV beside each other.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.headers.join(" | "));
        for _ in &self.headers {
            s.push_str(" --- |");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
    /// RFC 4180: a cell holding a comma or a quote ("818,787") is quoted.
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| {
            let quoted: Vec<String> = cells
                .iter()
                .map(|c| {
                    if c.contains(',') || c.contains('"') {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            quoted.join(",") + "\n"
        };
        let mut s = line(&self.headers);
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
    /// Writes `stem.md` and `stem.csv` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> AnyResult<()> {
        write_file(&dir.join(format!("{stem}.md")), &self.markdown())?;
        write_file(&dir.join(format!("{stem}.csv")), &self.csv())
    }
}

/// Colours for series, in order (colour-blind friendly: Okabe–Ito).
pub const SERIES_COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq)]
pub enum Style {
    Line,
    Points,
}

/// One named series of `(x, y)` points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

impl Series {
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            style: Style::Line,
        }
    }
    pub fn points(name: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            style: Style::Points,
        }
    }
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// An SVG chart of several series on shared axes, with a legend.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> AnyResult<()> {
    let root = SVGBackend::new(path, (720, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = span(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = span(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = SERIES_COLORS[i % SERIES_COLORS.len()];
        let legend = move |(x, y): (i32, i32)| {
            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
        };
        match s.style {
            Style::Line => chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))?
                .label(s.name.as_str())
                .legend(legend),
            Style::Points => chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 2, color.mix(0.6).filled())),
                )?
                .label(s.name.as_str())
                .legend(legend),
        };
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// An SVG heatmap of `values` (rows top to bottom), coloured by viridis from its min to its
/// max, with optional labels on each axis (every label is drawn when there are few).
pub fn heatmap(
    path: &Path,
    title: &str,
    values: &[Vec<f64>],
    x_labels: &[String],
    y_labels: &[String],
) -> AnyResult<()> {
    let rows = values.len();
    let cols = values.first().map_or(0, Vec::len);
    let cell = (560 / cols.max(1)).clamp(4, 40) as u32;
    let (w, h) = (cell * cols as u32 + 160, cell * rows as u32 + 110);
    let root = SVGBackend::new(path, (w.max(320), h.max(200))).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = values
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let range = (hi - lo).max(1e-12);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(if x_labels.is_empty() { 10 } else { 40 })
        .y_label_area_size(if y_labels.is_empty() { 10 } else { 90 })
        .build_cartesian_2d(0..cols as i32, rows as i32..0)?;
    let xl = x_labels.to_vec();
    let yl = y_labels.to_vec();
    let x_fmt = |i: &i32| xl.get(*i as usize).cloned().unwrap_or_default();
    let y_fmt = |i: &i32| yl.get(*i as usize).cloned().unwrap_or_default();
    // Ticks sit on cell edges; shift each label by half a cell to the cell's centre.
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let half_w = pw as i32 / (2 * cols.max(1) as i32);
    let half_h = ph as i32 / (2 * rows.max(1) as i32);
    let mut mesh = chart.configure_mesh();
    // plotters overflows on a request for zero labels: hide an unlabelled axis instead.
    mesh.disable_mesh()
        .x_label_offset(half_w)
        .y_label_offset(half_h)
        .x_labels(x_labels.len().clamp(1, 40))
        .y_labels(y_labels.len().clamp(1, 40))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt);
    if x_labels.is_empty() {
        mesh.disable_x_axis();
    }
    if y_labels.is_empty() {
        mesh.disable_y_axis();
    }
    mesh.draw()?;
    chart.draw_series(values.iter().enumerate().flat_map(|(r, row)| {
        row.iter().enumerate().map(move |(c, &v)| {
            let color = ViridisRGB::get_color((v - lo) / range);
            Rectangle::new(
                [(c as i32, r as i32), (c as i32 + 1, r as i32 + 1)],
                color.filled(),
            )
        })
    }))?;
    root.draw(&Text::new(
        format!("colour: {lo:.3} (dark) to {hi:.3} (light)"),
        (10, h.max(200) as i32 - 16),
        ("sans-serif", 12),
    ))?;
    root.present()?;
    Ok(())
}

/// Text drawn character by character on cells coloured by `values` (one per character),
/// `per_line` characters a line: which characters pool wide and which narrow.
pub fn text_heat(
    path: &Path,
    title: &str,
    chars: &[char],
    values: &[f64],
    per_line: usize,
) -> AnyResult<()> {
    let per_line = per_line.max(1);
    let lines = chars.len().div_ceil(per_line);
    let (cw, ch) = (12i32, 20i32);
    let w = (per_line as i32 * cw + 40) as u32;
    let h = (lines as i32 * ch + 90) as u32;
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = span(values.iter().copied());
    let range = (hi - lo).max(1e-12);
    root.draw(&Text::new(title.to_string(), (20, 10), ("sans-serif", 16)))?;
    root.draw(&Text::new(
        format!("colour: {lo:.2} (dark) to {hi:.2} (light)"),
        (20, 32),
        ("sans-serif", 12),
    ))?;
    for (i, (&c, &v)) in chars.iter().zip(values).enumerate() {
        let (x, y) = (
            20 + (i % per_line) as i32 * cw,
            55 + (i / per_line) as i32 * ch,
        );
        let t = (v - lo) / range;
        root.draw(&Rectangle::new(
            [(x, y), (x + cw, y + ch)],
            ViridisRGB::get_color(t).filled(),
        ))?;
        let ink = if t > 0.6 { BLACK } else { WHITE };
        let shown = if c == '\n' { '⏎' } else { c };
        root.draw(&Text::new(
            shown.to_string(),
            (x + 2, y + 3),
            ("monospace", 14).into_font().color(&ink),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// `n` with thousands separated by commas.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How [`train_classifier`] runs.
pub struct ClassifierRun<'a> {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub device: cubegrad::Device,
    /// Folder of the checkpoint and metrics.
    pub dir: &'a Path,
    /// Identifies the model in its checkpoint, so that `--resume` refuses a different one.
    pub tag: String,
    pub resume: bool,
    /// Stop after this epoch, as if interrupted.
    pub stop_at: Option<usize>,
    pub quiet: bool,
}

/// Fraction of `data` classified correctly, in evaluation mode, `batch` examples at a time.
pub fn accuracy<M: cubegrad::nn::Module>(
    model: &mut M,
    forward: &mut dyn FnMut(&mut M, &cubegrad::Tensor) -> cubegrad::Tensor,
    data: &cubegrad::data::Dataset,
    batch: usize,
    device: cubegrad::Device,
) -> f64 {
    model.eval();
    let mut correct = 0usize;
    cubegrad::no_grad(|| {
        for (x, y) in data.batches(batch, false) {
            let pred = forward(model, &x.to_device(device))
                .argmax(-1, false)
                .to_vec::<i64>();
            correct += pred
                .iter()
                .zip(y.to_vec::<i64>())
                .filter(|(p, t)| **p == *t)
                .count();
        }
    });
    model.train();
    correct as f64 / data.len().max(1) as f64
}

/// Trains a classifier with Adam by epochs: cross-entropy on shuffled batches (the order comes
/// from the seeded RNG that checkpoints save), the validation accuracy after each epoch, and a
/// checkpoint then, which `resume` continues exactly. Returns the history (epoch, train loss,
/// validation accuracy, seconds) and whether every epoch ran.
pub fn train_classifier<M: cubegrad::nn::Module>(
    model: &mut M,
    forward: &mut dyn FnMut(&mut M, &cubegrad::Tensor) -> cubegrad::Tensor,
    train: &cubegrad::data::Dataset,
    valid: &cubegrad::data::Dataset,
    run: &ClassifierRun,
) -> AnyResult<(History, bool)> {
    use cubegrad::io::{load_checkpoint, save_checkpoint, Metadata};
    use cubegrad::optim::{AdamConfig, Optimizer};
    let mut opt = AdamConfig::adam().lr(run.lr).init();
    let path = run.dir.join("checkpoint.safetensors");
    let mut history = History::new(&["epoch", "train_loss", "valid_accuracy", "seconds"]);
    let (mut epoch, mut seconds_before) = (0usize, 0.0);
    if run.resume {
        let ck = load_checkpoint(&path, model, &mut opt)?;
        let saved = ck.extra.get("model").cloned().unwrap_or_default();
        if saved != run.tag {
            return Err(format!(
                "{}: the checkpoint is of \"{saved}\", this run is \"{}\"",
                path.display(),
                run.tag
            )
            .into());
        }
        epoch = ck.get("epoch").ok_or("checkpoint lacks \"epoch\"")?;
        seconds_before = ck.get("seconds").unwrap_or(0.0);
        history = ck
            .extra
            .get("history")
            .and_then(|h| History::from_json(h))
            .ok_or("checkpoint lacks a readable \"history\"")?;
    }
    let steps_per_epoch = train.len().div_ceil(run.batch_size);
    let bar = progress(run.epochs * steps_per_epoch, run.quiet);
    bar.set_position((epoch * steps_per_epoch) as u64);
    let started = Instant::now();
    let end = run.stop_at.map_or(run.epochs, |s| s.min(run.epochs));
    while epoch < end {
        let (mut total, mut batches, mut seen) = (0.0, 0usize, 0usize);
        for (x, y) in train.batches(run.batch_size, true) {
            let (x, y) = (x.to_device(run.device), y.to_device(run.device));
            let loss = forward(model, &x).cross_entropy(&y);
            let grads = loss.backward();
            opt.step(model, &grads)?;
            total += loss.item();
            batches += 1;
            seen += y.numel();
            bar.inc(1);
            let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.3}, {rate:.0} images/s",
                total / batches as f64
            ));
        }
        epoch += 1;
        let acc = accuracy(model, forward, valid, 256, run.device);
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        history.push(vec![epoch as f64, total / batches as f64, acc, seconds]);
        bar.println(format!(
            "[{}] epoch {epoch}: train loss {:.4}, validation accuracy {:.2}%",
            run.tag,
            total / batches as f64,
            100.0 * acc
        ));
        let mut extra = Metadata::new();
        extra.insert("model".into(), run.tag.clone());
        extra.insert("epoch".into(), epoch.to_string());
        extra.insert("seconds".into(), seconds.to_string());
        extra.insert("history".into(), history.to_json());
        save_checkpoint(&path, model, &opt, &extra)?;
    }
    bar.finish_and_clear();
    history.write_csv(&run.dir.join("metrics.csv"))?;
    Ok((history, epoch >= run.epochs))
}
