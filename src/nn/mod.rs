//! Layers. A layer is a struct holding its parameters as plain tensor fields, with a
//! `forward` method, and implements [`Module`] so that optimizers and checkpoints can find
//! its parameters by their PyTorch-style dotted names.

mod attention;
mod batch_norm;
mod context_pool;
mod conv;
mod embedding;
mod functional;
mod gru;
mod layer_norm;
mod linear;
mod module;
mod multihead;
mod transformer;
mod vision;

pub use attention::{
    causal_mask, lens_mask, local_mask, scaled_dot_product_attention, strided_mask,
    try_scaled_dot_product_attention, AdditiveAttention, SdpaOptions,
};
pub use batch_norm::BatchNorm2d;
pub use context_pool::{
    try_context_pool_1d, try_context_pool_2d, ContextPool, ContextPool2d, ContextPoolOptions,
    PoolStats,
};
pub use conv::{
    try_avg_pool2d, try_conv1d, try_conv2d, try_global_avg_pool2d, try_max_pool2d, AvgPool2d,
    Conv1d, Conv2d, Conv2dOptions, MaxPool2d,
};
pub use embedding::Embedding;
pub use functional::{dropout, Dropout};
pub use gru::{try_gru_layer, Gru, GruLayer};
pub use layer_norm::{try_layer_norm, LayerNorm};
pub use linear::Linear;
pub use module::{child_name, visit_named, visit_named_mut, Module};
pub use multihead::{KvCache, MhaOptions, MultiheadAttention};
pub use transformer::{
    sinusoidal_positions, AdaptiveSpan, AttentionKind, EncoderOptions, FeedForward, LayerCache,
    PositionalEmbedding, TransformerDecoderLayer, TransformerEncoderLayer,
};
pub use vision::{ConvBlock, PatchEmbedding, Pooling};
