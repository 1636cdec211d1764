//! Layers. A layer is a struct holding its parameters as plain tensor fields, with a
//! `forward` method, and implements [`Module`] so that optimizers and checkpoints can find
//! its parameters by their PyTorch-style dotted names. The math of the fused layers is in
//! `crate::ops`; their functional forms (PyTorch's `torch.nn.functional`) are re-exported here.

mod attention;
mod batch_norm;
mod context_pool;
mod conv;
mod dropout;
mod embedding;
mod gau;
mod gru;
mod layer_norm;
mod linear;
mod module;
mod multihead;
mod random_features;
mod reformer;
mod transformer;
mod transformer_xl;
mod vision;

pub use attention::AdditiveAttention;
pub use batch_norm::BatchNorm2d;
pub use context_pool::{ContextPool, ContextPool2d};
pub use conv::{AvgPool2d, Conv1d, Conv2d, MaxPool2d};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use gau::{GatedAttentionUnit, GauOptions, OffsetScale};
pub use gru::{Gru, GruLayer};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use module::{child_name, Module, Role, TensorField, Visit, VisitMut};
pub use multihead::{KvCache, MhaOptions, MultiheadAttention};
pub use random_features::RandomFeatures;
pub use reformer::{LshSelfAttention, Reformer, ReformerAttention, ReformerLayer, ReformerOptions};
pub use transformer::{
    sinusoidal_positions, AdaptiveSpan, AttentionKind, EncoderOptions, FeedForward, LayerCache,
    PoolFeatures, PoolPlacement, PositionalEmbedding, TransformerDecoderLayer,
    TransformerEncoderLayer,
};
pub use transformer_xl::{update_memory, RelativeMultiheadAttention, TransformerXlLayer};
pub use vision::{ConvBlock, PatchEmbedding, Pooling};

// The functional forms, as `torch.nn.functional` has them.
pub use crate::ops::attention::{
    scaled_dot_product_attention, try_scaled_dot_product_attention, AttentionPattern, SdpaOptions,
};
pub use crate::ops::context_pool::{
    try_context_pool_1d, try_context_pool_2d, ContextPoolOptions, PoolStats,
};
pub use crate::ops::conv::{try_conv1d, try_conv2d, Conv2dOptions};
pub use crate::ops::dropout::{dropout, try_dropout};
pub use crate::ops::gru::try_gru_layer;
pub use crate::ops::lara::try_lara_attention;
pub use crate::ops::layer_norm::try_layer_norm;
pub use crate::ops::linear::{linear, try_linear};
pub use crate::ops::linear_attention::{
    orthogonal_random_features, try_random_feature_attention, LinearAttentionOptions,
};
pub use crate::ops::lsh_attention::{try_lsh_attention, LshOptions};
pub use crate::ops::masks::{
    causal_mask, fixed_mask, lens_mask, local_mask, pattern_mask, strided_mask,
};
pub use crate::ops::mixed_chunk_attention::{try_mixed_chunk_attention, MixedChunkOptions};
pub use crate::ops::mra_attention::{try_mra_attention, MraOptions};
pub use crate::ops::pooling::{
    try_avg_pool2d, try_avg_pool2d_with, try_global_avg_pool2d, try_max_pool2d,
    try_max_pool2d_with, AvgPool2dOptions, MaxPool2dOptions,
};
pub use crate::ops::relative_attention::{rel_shift, relative_positions, try_relative_attention};
pub use crate::ops::reversible::{try_reversible, BlockFn, ReversibleBlock};
