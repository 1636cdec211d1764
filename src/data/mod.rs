//! Data sets and batching. Loaders read the files vendored in `data/` (gzip, CSV, IDX, TSV,
//! plain text); every error names the file and, where it helps, the line.

mod dataset;
mod digits;
mod files;
mod idx;
mod text;
mod tsv;

pub use dataset::{split_indices, Batches, Dataset};
pub use digits::load_digits;
pub use files::read_maybe_gz;
pub use idx::{load_fashion_mnist, load_idx_images, read_idx, IdxBytes, FASHION_MNIST_CLASSES};
pub use text::{
    lm_batch, lm_eval_batches, lm_stream_batch, lm_stream_segments, read_text, split_blocks,
    CharVocab, TextSplits,
};
pub use tsv::{load_verse_pairs, read_tsv, tokenize, WordVocab};
