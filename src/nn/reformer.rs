//! Reformer (Kitaev, Kaiser, Levskaya 2020): LSH self-attention in reversible residual
//! layers. A [`ReformerLayer`] is one reversible block, `F` = pre-norm LSH attention and
//! `G` = pre-norm feed-forward; a [`Reformer`] stacks them on two copies of its input and
//! returns both halves side by side (`[.., 2·d]`), as the reference models do before their
//! final norm. Names follow Hugging Face's `ReformerLayer` where they map
//! (`attention.self_attention.query_key`, `.value`, `attention.output.dense`), the
//! feed-forward uses cubegrad's (`linear1`, `linear2`).
//!
//! The random rotations of the hashing are drawn at every forward from the global generator
//! (as Reformer does), and captured for the backward's recomputation. Dropout is not applied
//! inside the blocks: the recomputation would draw other masks.

use super::{try_layer_norm, try_linear, FeedForward, LayerNorm, Linear, Module};
use crate::error::{Error, OrPanic, Result};
use crate::ops::lsh_attention::{try_lsh_attention, LshOptions};
use crate::ops::reversible::{try_reversible, BlockFn, ReversibleBlock};
use crate::ops::Unary;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Options of a [`ReformerLayer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReformerOptions {
    pub d_model: usize,
    pub nhead: usize,
    pub dim_feedforward: usize,
    /// Hashing rounds (the paper: 1 to 8; more is closer to full attention).
    pub n_hashes: usize,
    /// Buckets per round (even).
    pub n_buckets: usize,
    /// Tokens per chunk of the sorted sequence.
    pub chunk: usize,
    pub causal: bool,
    /// Recompute activations in the backward (`false`: plain residual layers on the tape, the
    /// same function, for comparison).
    pub reversible: bool,
}

impl ReformerOptions {
    pub fn new(d_model: usize, nhead: usize) -> Self {
        ReformerOptions {
            d_model,
            nhead,
            dim_feedforward: 4 * d_model,
            n_hashes: 2,
            n_buckets: 8,
            chunk: 32,
            causal: false,
            reversible: true,
        }
    }
}

/// Shared-QK attention's projections.
pub struct LshSelfAttention {
    pub query_key: Linear,
    pub value: Linear,
}

impl Module for LshSelfAttention {
    crate::module_tensors! {
        child "query_key" query_key;
        child "value" value;
    }
}

/// The attention half: its norm, projections and output.
pub struct ReformerAttention {
    pub layer_norm: LayerNorm,
    pub self_attention: LshSelfAttention,
    pub output: Linear,
}

impl Module for ReformerAttention {
    crate::module_tensors! {
        child "layer_norm" layer_norm;
        child "self_attention" self_attention;
        child "output.dense" output;
    }
}

pub struct ReformerLayer {
    pub attention: ReformerAttention,
    pub norm2: LayerNorm,
    pub ffn: FeedForward,
}

impl ReformerLayer {
    pub fn new(o: ReformerOptions) -> Self {
        let d = o.d_model;
        ReformerLayer {
            attention: ReformerAttention {
                layer_norm: LayerNorm::new(&[d]),
                self_attention: LshSelfAttention {
                    query_key: Linear::new(d, d, false),
                    value: Linear::new(d, d, false),
                },
                output: Linear::new(d, d, false),
            },
            norm2: LayerNorm::new(&[d]),
            ffn: FeedForward::new(d, o.dim_feedforward, 0.0),
        }
    }

    /// `F` and `G` of this layer as functions of explicit parameters, with this forward's
    /// rotations.
    fn block(&self, o: ReformerOptions, rotations: Tensor) -> ReversibleBlock {
        let a = &self.attention;
        let f_params = vec![
            a.layer_norm.weight.clone().expect("affine"),
            a.layer_norm.bias.clone().expect("affine"),
            a.self_attention.query_key.weight.clone(),
            a.self_attention.value.weight.clone(),
            a.output.weight.clone(),
        ];
        let f: BlockFn = Arc::new(move |x: &Tensor, p: &[Tensor]| {
            let (b, n, d) = (x.dims()[0], x.dim(-2), o.d_model);
            let (h, e) = (o.nhead, o.d_model / o.nhead);
            let x = try_layer_norm(x, &[d], Some(&p[0]), Some(&p[1]), 1e-5)?;
            let heads = |t: Tensor| t.try_reshape(&[b, n, h, e])?.try_permute(&[0, 2, 1, 3]);
            let qk = heads(try_linear(&x, &p[2], None)?)?;
            let v = heads(try_linear(&x, &p[3], None)?)?;
            let opts = LshOptions {
                chunk: o.chunk,
                causal: o.causal,
            };
            let out = try_lsh_attention(&qk, &v, &rotations, opts)?
                .try_permute(&[0, 2, 1, 3])?
                .try_reshape(&[b, n, d])?;
            try_linear(&out, &p[4], None)
        });
        let g_params = vec![
            self.norm2.weight.clone().expect("affine"),
            self.norm2.bias.clone().expect("affine"),
            self.ffn.linear1.weight.clone(),
            self.ffn.linear1.bias.clone().expect("bias"),
            self.ffn.linear2.weight.clone(),
            self.ffn.linear2.bias.clone().expect("bias"),
        ];
        let g: BlockFn = Arc::new(move |x: &Tensor, p: &[Tensor]| {
            let d = o.d_model;
            let x = try_layer_norm(x, &[d], Some(&p[0]), Some(&p[1]), 1e-5)?;
            let hidden = try_linear(&x, &p[2], Some(&p[3]))?.try_unary(Unary::GeluErf)?;
            try_linear(&hidden, &p[4], Some(&p[5]))
        });
        ReversibleBlock {
            f,
            f_params,
            g,
            g_params,
        }
    }
}

impl Module for ReformerLayer {
    crate::module_tensors! {
        child "attention" attention;
        child "norm2" norm2;
        flatten ffn;
    }
}

/// A stack of reversible Reformer layers.
pub struct Reformer {
    pub layers: Vec<ReformerLayer>,
    pub options: ReformerOptions,
}

impl Reformer {
    #[track_caller]
    pub fn new(layers: usize, options: ReformerOptions) -> Self {
        assert!(
            options.n_buckets >= 2 && options.n_buckets % 2 == 0,
            "Reformer: n_buckets must be even and at least 2, got {}",
            options.n_buckets
        );
        assert!(
            options.d_model % options.nhead == 0,
            "Reformer: d_model {} must be divisible by nhead {}",
            options.d_model,
            options.nhead
        );
        Reformer {
            layers: (0..layers).map(|_| ReformerLayer::new(options)).collect(),
            options,
        }
    }

    // ANCHOR: reformer_forward
    /// `x` `[B, n, d]` → `[B, n, 2·d]`: both halves of the last block's output. `n` must be
    /// a multiple of the chunk.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let o = self.options;
        if x.rank() != 3 || x.dim(-1) != o.d_model {
            return Err(Error::bad_shape(
                "Reformer",
                x.shape(),
                format!("needs [B, n, d_model = {}]", o.d_model),
            ));
        }
        let e = o.d_model / o.nhead;
        let blocks: Vec<ReversibleBlock> = self
            .layers
            .iter()
            .map(|l| {
                let rotations = Tensor::randn([o.n_hashes, e, o.n_buckets / 2], 0.0, 1.0)
                    .to_dtype(x.dtype())
                    .to_device(x.device());
                l.block(o, rotations)
            })
            .collect();
        let both = Tensor::try_concat(&[x, x], -1)?;
        if o.reversible {
            return try_reversible(&both, &blocks);
        }
        // The same function on the tape, every activation kept.
        let (mut x1, mut x2) = (x.clone(), x.clone());
        for b in &blocks {
            let y1 = x1.try_add(&(b.f)(&x2, &b.f_params)?)?;
            let y2 = x2.try_add(&(b.g)(&y1, &b.g_params)?)?;
            (x1, x2) = (y1, y2);
        }
        Tensor::try_concat(&[&x1, &x2], -1)
    }
    // ANCHOR_END: reformer_forward
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for Reformer {
    crate::module_tensors! {
        list "layers" layers;
    }
}
