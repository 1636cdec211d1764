//! A data set of examples `x` (first dim = example) and targets `y`, with deterministic splits
//! and shuffled mini-batches.

use crate::random::with_rng;
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;

#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Tensor,
    pub y: Tensor,
}

impl Dataset {
    #[track_caller]
    pub fn new(x: Tensor, y: Tensor) -> Self {
        assert_eq!(
            x.dims()[0],
            y.dims()[0],
            "Dataset: {} inputs but {} targets",
            x.dims()[0],
            y.dims()[0]
        );
        Dataset { x, y }
    }
    pub fn len(&self) -> usize {
        self.y.dims()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let ids = Tensor::from_vec(
            idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [idx.len()],
        );
        Dataset {
            x: self.x.index_select(0, &ids),
            y: self.y.index_select(0, &ids),
        }
    }
    /// Splits into parts of the given fractions (the last part takes the rest) after a shuffle
    /// seeded by `seed`: the same seed always gives the same split, whatever the global RNG.
    pub fn split(&self, fractions: &[f64], seed: u64) -> Vec<Dataset> {
        split_indices(self.len(), fractions, seed)
            .iter()
            .map(|idx| self.select(idx))
            .collect()
    }
    /// Mini-batches of `batch_size` (the last may be smaller). With `shuffle`, the order comes
    /// from the thread's RNG (`manual_seed`), which checkpoints save, so a resumed run sees the
    /// same batches.
    pub fn batches(&self, batch_size: usize, shuffle: bool) -> Batches<'_> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if shuffle {
            with_rng(|r| order.shuffle(r));
        }
        Batches {
            data: self,
            order,
            batch_size: batch_size.max(1),
            pos: 0,
        }
    }
}

/// `0..n` shuffled by `seed` and cut into parts of the given fractions (the last part takes the
/// rest): the split behind [`Dataset::split`], for data that is not a pair of tensors.
pub fn split_indices(n: usize, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut out = Vec::new();
    let mut start = 0;
    for (i, f) in fractions.iter().enumerate() {
        let end = if i + 1 == fractions.len() {
            n
        } else {
            (start + (f * n as f64).round() as usize).min(n)
        };
        out.push(idx[start..end].to_vec());
        start = end;
    }
    out
}

pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Tensor);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let part = self.data.select(&self.order[self.pos..end]);
        self.pos = end;
        Some((part.x, part.y))
    }
}
