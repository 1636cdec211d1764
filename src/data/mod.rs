//! Data sets and batching. Loaders read the files vendored in `data/` (gzip, CSV); every error
//! names the file and, where it helps, the line.

mod dataset;
mod digits;
mod files;

pub use dataset::{Batches, Dataset};
pub use digits::load_digits;
pub use files::read_maybe_gz;
