//! The figures of a trained model on a passage of held-out text: where ContextPool pools wide
//! or narrow, and what the first layer attends to.

use super::common::{self, heatmap, text_heat, AnyResult};
use super::model::CharLm;
use super::train::Corpus;
use super::Config;
use cubegrad::nn::{AttentionKind, Module};
use cubegrad::{no_grad, Device, Tensor};
use std::path::Path;

/// The figures of a trained model on a passage of held-out text: ContextPool's pooling sizes
/// per character in each layer, and the attention weights of head 1 in layer 1.
pub fn passage_figures(
    model: &mut CharLm,
    corpus: &Corpus,
    cfg: &Config,
    dir: &Path,
) -> AnyResult<()> {
    let n = cfg.seq_len.min(corpus.splits.test.len() - 1);
    // Open the passage on a paragraph of prose: after a line break, at a capital letter (the
    // addresses' `=== year_name ===` headers start with '=').
    let test = &corpus.splits.test;
    let ch = |i: usize| corpus.vocab.chars()[test[i] as usize];
    let start = (0..test.len() - n - 1)
        .find(|&i| ch(i) == '\n' && ch(i + 1).is_uppercase())
        .map_or(0, |i| i + 1);
    let ids = &corpus.splits.test[start..start + n];
    let chars: Vec<char> = ids
        .iter()
        .map(|&i| corpus.vocab.chars()[i as usize])
        .collect();
    model.eval();
    let x = Tensor::from_vec(ids.to_vec(), [1, n]).to_device(cfg.device);
    let mut sizes_csv = String::from("position,char");
    no_grad(|| -> AnyResult<()> {
        let mut h = model.embed_at(&x, 0);
        let mut per_layer = Vec::new();
        for (li, layer) in model.layers.iter().enumerate() {
            // The first layer's attention map (full attention; ContextPool, wherever it sits,
            // is applied by the layer as in its forward).
            if li == 0
                && layer.adaptive_span.is_none()
                && layer.options.attention == AttentionKind::Full
            {
                let w = layer.try_attention_weights(&h, None)?;
                let m = n.min(64);
                let head0 = w.narrow(1, 0, 1).to_vec::<f32>();
                let rows: Vec<Vec<f64>> = (0..m)
                    .map(|i| (0..m).map(|j| head0[i * n + j] as f64).collect())
                    .collect();
                let labels: Vec<String> = chars[..m].iter().map(|c| show(*c)).collect();
                heatmap(
                    &dir.join("attention_layer1_head1.svg"),
                    &format!(
                        "{}: attention of layer 1, head 1 (query rows, key columns)",
                        cfg.model.name()
                    ),
                    &rows,
                    &labels,
                    &labels,
                )?;
            }
            h = layer.forward(&h, None);
            // The layer's sizes; per head, their mean over the heads.
            let pools: Vec<_> = layer
                .context_pool
                .iter()
                .chain(&layer.context_pool_heads)
                .collect();
            let mut mean: Vec<f32> = Vec::new();
            for cp in &pools {
                let stats = cp.last_stats().ok_or("ContextPool kept no statistics")?;
                let s = stats.sizes.to_device(Device::Cpu).to_vec::<f32>();
                mean.resize(s.len(), 0.0);
                for (m, v) in mean.iter_mut().zip(s) {
                    *m += v / pools.len() as f32;
                }
            }
            if !pools.is_empty() {
                per_layer.push(mean);
            }
        }
        let per_head = model
            .layers
            .iter()
            .any(|l| !l.context_pool_heads.is_empty());
        let over_heads = if per_head { ", mean over heads" } else { "" };
        for (li, s) in per_layer.iter().enumerate() {
            sizes_csv.push_str(&format!(",layer{}_size", li + 1));
            let values: Vec<f64> = s.iter().map(|&v| v as f64).collect();
            text_heat(
                &dir.join(format!("pool_sizes_layer{}.svg", li + 1)),
                &format!(
                    "ContextPool sizes s per character, layer {}{over_heads} (light = pools wide)",
                    li + 1
                ),
                &chars,
                &values,
                64,
            )?;
        }
        sizes_csv.push('\n');
        for (i, c) in chars.iter().enumerate() {
            sizes_csv.push_str(&format!("{i},{:?}", show(*c)));
            for s in &per_layer {
                sizes_csv.push_str(&format!(",{}", s[i]));
            }
            sizes_csv.push('\n');
        }
        Ok(())
    })?;
    model.train();
    let pooled = |l: &cubegrad::nn::TransformerEncoderLayer| {
        l.context_pool.is_some() || !l.context_pool_heads.is_empty()
    };
    if model.layers.iter().any(pooled) {
        common::write_file(&dir.join("pool_sizes.csv"), &sizes_csv)?;
    }
    Ok(())
}

fn show(c: char) -> String {
    match c {
        '\n' => "⏎".into(),
        ' ' => "␣".into(),
        c => c.to_string(),
    }
}
