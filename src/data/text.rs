//! Text for character-level language models: reading a (gzipped) UTF-8 file, a character
//! vocabulary, deterministic train/valid/test splits, and batches of windows.

use super::read_maybe_gz;
use crate::error::{Error, Result};
use crate::random::with_rng;
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;

/// The whole file as text (decompressed if its name ends in `.gz`).
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The distinct characters of a text, sorted, each with its id.
#[derive(Clone, Debug)]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
}

impl CharVocab {
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        CharVocab { chars, index }
    }
    pub fn len(&self) -> usize {
        self.chars.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    pub fn chars(&self) -> &[char] {
        &self.chars
    }
    /// The id of every character; a character outside the vocabulary is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        text.chars()
            .map(|c| {
                self.index.get(&c).map(|&i| i as i64).ok_or_else(|| {
                    Error::invalid(
                        "CharVocab::encode",
                        format!("{c:?} is not in the vocabulary"),
                    )
                })
            })
            .collect()
    }
    /// The characters of `ids`; an id out of range becomes U+FFFD.
    pub fn decode(&self, ids: &[i64]) -> String {
        ids.iter()
            .map(|&i| self.chars.get(i as usize).copied().unwrap_or('\u{fffd}'))
            .collect()
    }
}

/// A token stream cut into train, validation and test parts.
#[derive(Clone, Debug)]
pub struct TextSplits {
    pub train: Vec<i64>,
    pub valid: Vec<i64>,
    pub test: Vec<i64>,
}

/// Cuts `ids` into blocks of `block` tokens and deals the blocks to validation and test (the
/// given fractions) and train (the rest) after a shuffle seeded by `seed`; each part keeps its
/// blocks in their original order. Blocks rather than one cut at the end, so that held-out text
/// comes from the whole corpus (for the addresses, from every era) and not only its last years.
pub fn split_blocks(ids: &[i64], block: usize, valid: f64, test: f64, seed: u64) -> TextSplits {
    let block = block.max(1);
    let n_blocks = ids.len().div_ceil(block);
    let mut order: Vec<usize> = (0..n_blocks).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let n_valid = ((valid * n_blocks as f64).round() as usize).max(usize::from(valid > 0.0));
    let n_test = ((test * n_blocks as f64).round() as usize).max(usize::from(test > 0.0));
    let mut part = vec![0u8; n_blocks];
    for &b in &order[..n_valid.min(n_blocks)] {
        part[b] = 1;
    }
    for &b in order.iter().skip(n_valid).take(n_test) {
        part[b] = 2;
    }
    let mut out = TextSplits {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    for (b, chunk) in ids.chunks(block).enumerate() {
        match part[b] {
            0 => out.train.extend_from_slice(chunk),
            1 => out.valid.extend_from_slice(chunk),
            _ => out.test.extend_from_slice(chunk),
        }
    }
    out
}

/// `batch` windows of `seq_len + 1` tokens at random offsets (from the thread's RNG, which
/// checkpoints save): inputs `x` `[batch, seq_len]` and next-token targets `y`, both i64.
pub fn lm_batch(ids: &[i64], batch: usize, seq_len: usize) -> Result<(Tensor, Tensor)> {
    if ids.len() <= seq_len {
        return Err(Error::invalid(
            "lm_batch",
            format!(
                "{} tokens cannot fill a window of {}",
                ids.len(),
                seq_len + 1
            ),
        ));
    }
    let starts: Vec<usize> = with_rng(|r| {
        (0..batch)
            .map(|_| r.gen_range(0..ids.len() - seq_len))
            .collect()
    });
    Ok(windows(ids, &starts, seq_len))
}

/// Consecutive windows over the first `max_tokens` tokens (all when `None`), `batch` at a time:
/// every token there is predicted exactly once. For evaluation.
pub fn lm_eval_batches(
    ids: &[i64],
    batch: usize,
    seq_len: usize,
    max_tokens: Option<usize>,
) -> Vec<(Tensor, Tensor)> {
    let n = max_tokens.map_or(ids.len(), |m| m.min(ids.len()));
    let starts: Vec<usize> = (0..n.saturating_sub(1) / seq_len)
        .map(|w| w * seq_len)
        .collect();
    starts
        .chunks(batch.max(1))
        .map(|s| windows(ids, s, seq_len))
        .collect()
}

/// Segments per stream when `ids` is cut into `batch` contiguous streams of windows of
/// `seq_len` (Transformer-XL's batching): stream `b` holds tokens `b·S .. (b+1)·S` (plus one
/// target after) with `S = (len − 1) / batch`.
pub fn lm_stream_segments(len: usize, batch: usize, seq_len: usize) -> Result<usize> {
    let per_stream = len.saturating_sub(1) / batch.max(1);
    let segments = per_stream / seq_len.max(1);
    if segments == 0 {
        return Err(Error::invalid(
            "lm_stream_batch",
            format!(
                "{len} tokens cut into {batch} streams give {per_stream} tokens each, fewer \
                 than one window of {seq_len}"
            ),
        ));
    }
    Ok(segments)
}

/// Segment `segment` of each of `batch` contiguous streams over `ids`: row `b` continues
/// where row `b` of segment `segment − 1` ended, so that a model carrying memory across
/// segments (Transformer-XL) sees one continuous text per row. Inputs `[batch, seq_len]` and
/// next-token targets, i64.
pub fn lm_stream_batch(
    ids: &[i64],
    batch: usize,
    seq_len: usize,
    segment: usize,
) -> Result<(Tensor, Tensor)> {
    let segments = lm_stream_segments(ids.len(), batch, seq_len)?;
    if segment >= segments {
        return Err(Error::invalid(
            "lm_stream_batch",
            format!("segment {segment} of {segments}"),
        ));
    }
    let per_stream = (ids.len() - 1) / batch;
    let starts: Vec<usize> = (0..batch)
        .map(|b| b * per_stream + segment * seq_len)
        .collect();
    Ok(windows(ids, &starts, seq_len))
}

fn windows(ids: &[i64], starts: &[usize], seq_len: usize) -> (Tensor, Tensor) {
    let mut x = Vec::with_capacity(starts.len() * seq_len);
    let mut y = Vec::with_capacity(starts.len() * seq_len);
    for &s in starts {
        x.extend_from_slice(&ids[s..s + seq_len]);
        y.extend_from_slice(&ids[s + 1..s + seq_len + 1]);
    }
    let b = starts.len();
    (
        Tensor::from_vec(x, [b, seq_len]),
        Tensor::from_vec(y, [b, seq_len]),
    )
}
