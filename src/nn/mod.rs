//! Layers. A layer is a struct holding its parameters as plain tensor fields, with a
//! `forward` method, and implements [`Module`] so that optimizers and checkpoints can find
//! its parameters by their PyTorch-style dotted names.

mod context_pool;
mod functional;
mod linear;
mod module;

pub use context_pool::{
    try_context_pool_1d, try_context_pool_2d, ContextPool, ContextPool2d, ContextPoolOptions,
    PoolStats,
};
pub use functional::dropout;
pub use linear::Linear;
pub use module::{child_name, Module};
