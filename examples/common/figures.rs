//! SVG figures drawn with plotters: line charts of several series, heatmaps, and text whose
//! characters are coloured by a value. plotters' SVG backend writes text as SVG text, so no
//! font files are needed.

use super::output::AnyResult;
use plotters::prelude::*;
use std::path::Path;

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

/// The colour of `t` in `[0, 1]` on the viridis map; grey for a value that is not a number (a
/// diverged run's weights), which the map cannot place.
fn shade(t: f64) -> RGBColor {
    if t.is_finite() {
        ViridisRGB::get_color(t.clamp(0.0, 1.0))
    } else {
        RGBColor(160, 160, 160)
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
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
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
            let color = shade((v - lo) / range);
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
            shade(t).filled(),
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
