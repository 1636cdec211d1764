//! The op registry: one entry per op (and per option that changes the math), with input shapes
//! (odd sizes, broadcast and size-1 dims), input domains that keep away from kinks, the op
//! itself and an independent f64 reference. The forward, gradcheck and property tests iterate
//! over it, and so do the device parity tests (`tests/device/ops.rs`); a new op opts in with
//! one entry.

use super::naive::{self, Array};
use super::Tolerance;
use crate::error::Result;
use crate::nn::{
    try_avg_pool2d, try_avg_pool2d_with, try_context_pool_1d, try_context_pool_2d, try_conv1d,
    try_conv2d, try_gru_layer, try_lara_attention, try_layer_norm, try_lsh_attention,
    try_max_pool2d, try_max_pool2d_with, try_mixed_chunk_attention, try_mra_attention,
    try_random_feature_attention, try_relative_attention, try_scaled_dot_product_attention,
    AttentionPattern, AvgPool2dOptions, BatchNorm2d, ContextPoolOptions, Conv2dOptions,
    LinearAttentionOptions, LshOptions, MaxPool2dOptions, MixedChunkOptions, Module, MraOptions,
    SdpaOptions,
};
use crate::ops::{CrossEntropyOptions, Reduction};
use crate::tensor::{DType, Tensor};
use rand::{Rng, SeedableRng};

/// How to draw an input.
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    Uniform(f64, f64),
    /// Random sign, magnitude in `[lo, hi]`: keeps abs/relu/div away from 0.
    AwayFromZero(f64, f64),
    /// A shuffled arithmetic sequence with step 0.1: no ties, so max/min are differentiable.
    Distinct,
    /// i64 indices in `[0, n)`.
    Index(usize),
    /// bool, true with probability 0.7.
    Mask,
}

#[derive(Clone, Debug)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub domain: Domain,
}

impl InputSpec {
    pub fn is_float(&self) -> bool {
        !matches!(self.domain, Domain::Index(_) | Domain::Mask)
    }
}

fn f(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::Uniform(-2.0, 2.0),
    }
}
fn pos(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::Uniform(0.2, 3.0),
    }
}
fn nz(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::AwayFromZero(0.2, 2.0),
    }
}
fn distinct(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::Distinct,
    }
}
fn index(shape: &[usize], n: usize) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::Index(n),
    }
}
fn mask(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        domain: Domain::Mask,
    }
}

pub struct OpCase {
    pub name: &'static str,
    pub inputs: Vec<InputSpec>,
    pub run: fn(&[Tensor]) -> Result<Tensor>,
    pub reference: fn(&[Array]) -> Array,
    /// Tolerance of the f32 forward against the f64 reference.
    pub f32_tol: Tolerance,
}

impl OpCase {
    /// Draws the inputs with a seeded generator; float inputs get `dtype`.
    pub fn make_inputs(&self, dtype: DType, seed: u64) -> Vec<Tensor> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        self.inputs
            .iter()
            .map(|spec| {
                let n: usize = spec.shape.iter().product();
                let shape = spec.shape.as_slice();
                match spec.domain {
                    Domain::Uniform(lo, hi) => float(
                        dtype,
                        (0..n).map(|_| rng.gen_range(lo..hi)).collect(),
                        shape,
                    ),
                    Domain::AwayFromZero(lo, hi) => {
                        let v = (0..n)
                            .map(|_| {
                                rng.gen_range(lo..hi) * if rng.gen::<bool>() { 1.0 } else { -1.0 }
                            })
                            .collect();
                        float(dtype, v, shape)
                    }
                    Domain::Distinct => {
                        let mut v: Vec<f64> =
                            (0..n).map(|i| 0.1 * i as f64 - 0.05 * n as f64).collect();
                        for i in (1..n).rev() {
                            v.swap(i, rng.gen_range(0..=i));
                        }
                        float(dtype, v, shape)
                    }
                    Domain::Index(k) => Tensor::from_vec(
                        (0..n)
                            .map(|_| rng.gen_range(0..k as i64))
                            .collect::<Vec<i64>>(),
                        shape,
                    ),
                    Domain::Mask => Tensor::from_vec(
                        (0..n).map(|_| rng.gen_bool(0.7)).collect::<Vec<bool>>(),
                        shape,
                    ),
                }
            })
            .collect()
    }
    pub fn reference_of(&self, inputs: &[Tensor]) -> Array {
        let arrays: Vec<Array> = inputs.iter().map(Array::from_tensor).collect();
        (self.reference)(&arrays)
    }
}

fn float(dtype: DType, v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).to_dtype(dtype)
}

/// Attention with a sparse pattern, and the float mask `x[3]` when there is one.
fn sdpa_pattern(x: &[Tensor], pattern: AttentionPattern, causal: bool) -> Result<Tensor> {
    let opts = SdpaOptions {
        attn_mask: x.get(3).cloned(),
        is_causal: causal,
        pattern,
        ..Default::default()
    };
    try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
}

fn rfa(x: &[Tensor], causal: bool, chunk: usize) -> Result<Tensor> {
    let opts = LinearAttentionOptions { causal, chunk };
    try_random_feature_attention(&x[0], &x[1], &x[2], &x[3], opts)
}

fn lsh(x: &[Tensor], chunk: usize, causal: bool) -> Result<Tensor> {
    try_lsh_attention(&x[0], &x[1], &x[2], LshOptions { chunk, causal })
}

fn mixed_chunk(x: &[Tensor], causal: bool, chunk: usize) -> Result<Tensor> {
    let opts = MixedChunkOptions { causal, chunk };
    try_mixed_chunk_attention(&x[0], &x[1], &x[2], &x[3], &x[4], x.get(5), opts)
}

/// Its reference: the pattern as an explicit keep-mask.
fn naive_pattern(a: &[Array], pattern: AttentionPattern, causal: bool) -> Array {
    let (l, s) = (
        a[0].shape[a[0].shape.len() - 2],
        a[1].shape[a[1].shape.len() - 2],
    );
    let keep = Array::from_tensor(&crate::nn::pattern_mask(l, s, pattern, causal));
    naive::sdpa(&a[..3], Some(&keep), a.get(3), false)
}

fn case(
    name: &'static str,
    inputs: Vec<InputSpec>,
    run: fn(&[Tensor]) -> Result<Tensor>,
    reference: fn(&[Array]) -> Array,
) -> OpCase {
    OpCase {
        name,
        inputs,
        run,
        reference,
        f32_tol: Tolerance::F32,
    }
}

fn unary(
    name: &'static str,
    input: InputSpec,
    run: fn(&[Tensor]) -> Result<Tensor>,
    reference: fn(&[Array]) -> Array,
) -> OpCase {
    case(name, vec![input], run, reference)
}

fn gelu_tanh_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// Every registered op. Shapes are small and odd so that gradcheck over every element stays
/// fast, and they include size-1 and broadcast dimensions.
pub fn registry() -> Vec<OpCase> {
    vec![
        // ----- binary, with broadcasting -----
        case(
            "add",
            vec![f(&[3, 1, 5]), f(&[4, 5])],
            |x| x[0].try_add(&x[1]),
            |a| naive::zip(&a[0], &a[1], |p, q| p + q),
        ),
        case(
            "sub",
            vec![f(&[4, 5]), f(&[3, 1, 1])],
            |x| x[0].try_sub(&x[1]),
            |a| naive::zip(&a[0], &a[1], |p, q| p - q),
        ),
        case(
            "mul",
            vec![f(&[2, 3, 5]), f(&[3, 1])],
            |x| x[0].try_mul(&x[1]),
            |a| naive::zip(&a[0], &a[1], |p, q| p * q),
        ),
        case(
            "div",
            vec![f(&[5]), nz(&[3, 5])],
            |x| x[0].try_div(&x[1]),
            |a| naive::zip(&a[0], &a[1], |p, q| p / q),
        ),
        case(
            "mul_transposed_view",
            vec![f(&[4, 3]), f(&[3, 4])],
            |x| x[0].try_transpose(0, 1)?.try_mul(&x[1]),
            |a| naive::zip(&naive::permute(&a[0], &[1, 0]), &a[1], |p, q| p * q),
        ),
        // ----- unary -----
        unary(
            "neg",
            f(&[3, 7]),
            |x| Ok(x[0].neg()),
            |a| naive::map(&a[0], |v| -v),
        ),
        unary(
            "exp",
            f(&[3, 7]),
            |x| Ok(x[0].exp()),
            |a| naive::map(&a[0], f64::exp),
        ),
        unary(
            "log",
            pos(&[3, 7]),
            |x| Ok(x[0].log()),
            |a| naive::map(&a[0], f64::ln),
        ),
        unary(
            "sqrt",
            pos(&[3, 7]),
            |x| Ok(x[0].sqrt()),
            |a| naive::map(&a[0], f64::sqrt),
        ),
        unary(
            "abs",
            nz(&[3, 7]),
            |x| Ok(x[0].abs()),
            |a| naive::map(&a[0], f64::abs),
        ),
        unary(
            "tanh",
            f(&[3, 7]),
            |x| Ok(x[0].tanh()),
            |a| naive::map(&a[0], f64::tanh),
        ),
        unary(
            "sigmoid",
            f(&[3, 7]),
            |x| Ok(x[0].sigmoid()),
            |a| naive::map(&a[0], |v| 1.0 / (1.0 + (-v).exp())),
        ),
        unary(
            "relu",
            nz(&[3, 7]),
            |x| Ok(x[0].relu()),
            |a| naive::map(&a[0], |v| v.max(0.0)),
        ),
        unary(
            "softplus",
            f(&[3, 7]),
            |x| Ok(x[0].softplus()),
            |a| naive::map(&a[0], |v| (1.0 + v.exp()).ln()),
        ),
        unary(
            "gelu",
            f(&[3, 7]),
            |x| Ok(x[0].gelu()),
            |a| naive::map(&a[0], |v| 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()))),
        ),
        unary(
            "gelu_tanh",
            f(&[3, 7]),
            |x| Ok(x[0].gelu_tanh()),
            |a| naive::map(&a[0], gelu_tanh_ref),
        ),
        unary(
            "powf",
            pos(&[3, 7]),
            |x| Ok(x[0].powf(2.5)),
            |a| naive::map(&a[0], |v| v.powf(2.5)),
        ),
        unary(
            "affine",
            f(&[3, 7]),
            |x| Ok(x[0].affine(-1.5, 0.25)),
            |a| naive::map(&a[0], |v| -1.5 * v + 0.25),
        ),
        // ----- matmul -----
        case(
            "matmul",
            vec![f(&[3, 5]), f(&[5, 4])],
            |x| x[0].try_matmul(&x[1]),
            |a| naive::matmul(&a[0], &a[1]),
        ),
        case(
            "matmul_batched_broadcast",
            vec![f(&[2, 1, 3, 5]), f(&[3, 5, 4])],
            |x| x[0].try_matmul(&x[1]),
            |a| naive::matmul(&a[0], &a[1]),
        ),
        case(
            "linear",
            vec![f(&[2, 3, 5]), f(&[4, 5]), f(&[4])],
            |x| crate::nn::try_linear(&x[0], &x[1], Some(&x[2])),
            |a| {
                let y = naive::matmul(&a[0], &naive::permute(&a[1], &[1, 0]));
                naive::zip(&y, &a[2], |p, q| p + q)
            },
        ),
        case(
            "linear_no_bias",
            vec![f(&[7, 5]), f(&[3, 5])],
            |x| crate::nn::try_linear(&x[0], &x[1], None),
            |a| naive::matmul(&a[0], &naive::permute(&a[1], &[1, 0])),
        ),
        case(
            "matmul_transposed_rhs",
            vec![f(&[3, 5]), f(&[4, 5])],
            |x| x[0].try_matmul(&x[1].try_transpose(0, 1)?),
            |a| naive::matmul(&a[0], &naive::permute(&a[1], &[1, 0])),
        ),
        case(
            "matmul_vec_mat",
            vec![f(&[5]), f(&[5, 4])],
            |x| x[0].try_matmul(&x[1]),
            |a| {
                let v = Array::new(&[1, 5], a[0].data.clone());
                let r = naive::matmul(&v, &a[1]);
                Array::new(&[4], r.data)
            },
        ),
        case(
            "matmul_mat_vec",
            vec![f(&[3, 5]), f(&[5])],
            |x| x[0].try_matmul(&x[1]),
            |a| {
                let v = Array::new(&[5, 1], a[1].data.clone());
                let r = naive::matmul(&a[0], &v);
                Array::new(&[3], r.data)
            },
        ),
        // ----- reductions -----
        case(
            "sum_axis",
            vec![f(&[3, 4, 5])],
            |x| x[0].try_sum_axes(&[1], false),
            |a| {
                let r = naive::reduce(&a[0], &[1], |p, q| p + q);
                Array::new(&[3, 5], r.data)
            },
        ),
        case(
            "sum_all",
            vec![f(&[3, 4, 5])],
            |x| Ok(x[0].sum()),
            |a| Array::new(&[], vec![a[0].data.iter().sum()]),
        ),
        case(
            "mean_axes_keepdim",
            vec![f(&[3, 4, 5])],
            |x| x[0].try_mean_axes(&[0, 2], true),
            |a| naive::map(&naive::reduce(&a[0], &[0, 2], |p, q| p + q), |v| v / 15.0),
        ),
        case(
            "max_axis",
            vec![distinct(&[3, 4, 5])],
            |x| x[0].try_max_axes(&[-1], false),
            |a| {
                let r = naive::reduce(&a[0], &[2], f64::max);
                Array::new(&[3, 4], r.data)
            },
        ),
        case(
            "min_axes_keepdim",
            vec![distinct(&[3, 4, 5])],
            |x| x[0].try_min_axes(&[0, 1], true),
            |a| naive::reduce(&a[0], &[0, 1], f64::min),
        ),
        // ----- softmax family -----
        case(
            "softmax",
            vec![f(&[3, 4, 7])],
            |x| x[0].try_softmax(-1),
            |a| naive::softmax_last(&a[0], None, false),
        ),
        case(
            "softmax_axis1",
            vec![f(&[3, 4, 5])],
            |x| x[0].try_softmax(1),
            |a| {
                let t = naive::permute(&a[0], &[0, 2, 1]);
                naive::permute(&naive::softmax_last(&t, None, false), &[0, 2, 1])
            },
        ),
        case(
            "log_softmax",
            vec![f(&[3, 4, 7])],
            |x| x[0].try_log_softmax(-1),
            |a| naive::softmax_last(&a[0], None, true),
        ),
        case(
            "masked_softmax",
            vec![f(&[2, 3, 6]), mask(&[2, 1, 6])],
            |x| x[0].try_masked_softmax(&x[1], -1),
            |a| {
                let m = naive::zip(&a[1], &Array::new(&[2, 3, 6], vec![0.0; 36]), |m, _| m);
                naive::softmax_last(&a[0], Some(&m), false)
            },
        ),
        case(
            "masked_softmax_lens",
            vec![f(&[3, 2, 5])],
            |x| x[0].try_masked_softmax_lens(&Tensor::from_vec(vec![2i64, 5, 1], [3])),
            |a| {
                let lens = [2.0, 5.0, 1.0];
                let keep: Vec<f64> = (0..30)
                    .map(|i| {
                        if ((i % 5) as f64) < lens[i / 10] {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                naive::softmax_last(&a[0], Some(&Array::new(&[3, 2, 5], keep)), false)
            },
        ),
        // ----- layout -----
        case(
            "reshape",
            vec![f(&[3, 4, 5])],
            |x| x[0].try_reshape(&[12, 5]),
            |a| Array::new(&[12, 5], a[0].data.clone()),
        ),
        case(
            "reshape_of_permuted",
            vec![f(&[3, 4, 5])],
            |x| x[0].try_permute(&[2, 0, 1])?.try_reshape(&[5, 12]),
            |a| {
                let p = naive::permute(&a[0], &[2, 0, 1]);
                Array::new(&[5, 12], p.data)
            },
        ),
        case(
            "permute",
            vec![f(&[2, 3, 5])],
            |x| x[0].try_permute(&[2, 0, 1]),
            |a| naive::permute(&a[0], &[2, 0, 1]),
        ),
        case(
            "transpose",
            vec![f(&[3, 5])],
            |x| x[0].try_transpose(0, 1),
            |a| naive::permute(&a[0], &[1, 0]),
        ),
        case(
            "narrow",
            vec![f(&[3, 7, 2])],
            |x| x[0].try_narrow(1, 2, 4),
            |a| naive::take_along(&a[0], 1, 4, |i| i[1] + 2),
        ),
        case(
            "broadcast_to",
            vec![f(&[3, 1])],
            |x| x[0].try_broadcast_to([2, 3, 4]),
            |a| naive::zip(&a[0], &Array::new(&[2, 3, 4], vec![0.0; 24]), |p, _| p),
        ),
        case(
            "contiguous_of_permuted",
            vec![f(&[3, 5])],
            |x| x[0].try_transpose(0, 1)?.try_contiguous(),
            |a| naive::permute(&a[0], &[1, 0]),
        ),
        case(
            "concat",
            vec![f(&[2, 3, 4]), f(&[2, 1, 4]), f(&[2, 2, 4])],
            |x| Tensor::try_concat(&[&x[0], &x[1], &x[2]], 1),
            |a| naive::concat(&[&a[0], &a[1], &a[2]], 1),
        ),
        case(
            "stack",
            vec![f(&[3, 4]), f(&[3, 4])],
            |x| Tensor::try_stack(&[&x[0], &x[1]], 1),
            |a| {
                let u: Vec<Array> = a
                    .iter()
                    .map(|t| Array::new(&[3, 1, 4], t.data.clone()))
                    .collect();
                naive::concat(&[&u[0], &u[1]], 1)
            },
        ),
        // ----- indexing -----
        case(
            "index_select",
            vec![f(&[5, 3]), index(&[7], 5)],
            |x| x[0].try_index_select(0, &x[1]),
            |a| {
                let idx = a[1].data.clone();
                naive::take_along(&a[0], 0, 7, |i| idx[i[0]] as usize)
            },
        ),
        case(
            "gather",
            vec![f(&[3, 5]), index(&[3, 4], 5)],
            |x| x[0].try_gather(1, &x[1]),
            |a| {
                let idx = a[1].clone();
                naive::take_along(&a[0], 1, 4, |i| idx.at(i) as usize)
            },
        ),
        case(
            "where",
            vec![mask(&[3, 4]), f(&[3, 4]), f(&[4])],
            |x| Tensor::try_where(&x[0], &x[1], &x[2]),
            |a| naive::where_(&a[0], &a[1], &a[2]),
        ),
        case(
            "masked_fill",
            vec![f(&[3, 4]), mask(&[4])],
            |x| x[0].try_masked_fill(&x[1], -3.0),
            |a| naive::where_(&a[1], &Array::new(&[], vec![-3.0]), &a[0]),
        ),
        case(
            "cumsum",
            vec![f(&[3, 7, 4])],
            |x| x[0].try_cumsum(1),
            |a| naive::cumsum(&a[0], 1),
        ),
        case(
            "cumsum_last_axis",
            vec![f(&[2, 3, 9])],
            |x| x[0].try_cumsum(-1),
            |a| naive::cumsum(&a[0], 2),
        ),
        // ----- losses -----
        case(
            "cross_entropy",
            vec![f(&[6, 5]), index(&[6], 5)],
            |x| x[0].try_cross_entropy(&x[1], CrossEntropyOptions::default()),
            |a| {
                Array::new(
                    &[],
                    vec![naive::cross_entropy(&a[0], &a[1], Some(-100), 0.0)],
                )
            },
        ),
        case(
            "cross_entropy_ignore_smooth",
            vec![f(&[2, 4, 5]), index(&[2, 4], 5)],
            |x| {
                x[0].try_cross_entropy(
                    &x[1],
                    CrossEntropyOptions {
                        ignore_index: Some(2),
                        label_smoothing: 0.1,
                        ..CrossEntropyOptions::default()
                    },
                )
            },
            |a| Array::new(&[], vec![naive::cross_entropy(&a[0], &a[1], Some(2), 0.1)]),
        ),
        case(
            "cross_entropy_weighted_smooth",
            vec![f(&[2, 4, 5]), index(&[2, 4], 5), pos(&[5])],
            |x| {
                x[0].try_cross_entropy(
                    &x[1],
                    CrossEntropyOptions {
                        ignore_index: Some(2),
                        label_smoothing: 0.2,
                        weight: Some(x[2].clone()),
                        ..CrossEntropyOptions::default()
                    },
                )
            },
            |a| {
                let r = Reduction::Mean;
                naive::cross_entropy_full(&a[0], &a[1], 2, Some(&a[2]), Some(2), 0.2, r)
            },
        ),
        case(
            "cross_entropy_class_dim1_sum",
            vec![f(&[2, 5, 3]), index(&[2, 3], 5)],
            |x| {
                x[0].try_cross_entropy(
                    &x[1],
                    CrossEntropyOptions {
                        class_dim: 1,
                        reduction: Reduction::Sum,
                        ..CrossEntropyOptions::default()
                    },
                )
            },
            |a| naive::cross_entropy_full(&a[0], &a[1], 1, None, Some(-100), 0.0, Reduction::Sum),
        ),
        case(
            "cross_entropy_weighted_none",
            vec![f(&[6, 5]), index(&[6], 5), pos(&[5])],
            |x| {
                x[0].try_cross_entropy(
                    &x[1],
                    CrossEntropyOptions {
                        ignore_index: Some(1),
                        weight: Some(x[2].clone()),
                        reduction: Reduction::None,
                        ..CrossEntropyOptions::default()
                    },
                )
            },
            |a| {
                let r = Reduction::None;
                naive::cross_entropy_full(&a[0], &a[1], 1, Some(&a[2]), Some(1), 0.0, r)
            },
        ),
        case(
            "nll_loss",
            vec![f(&[6, 5]), index(&[6], 5)],
            |x| x[0].try_nll_loss(&x[1], None),
            |a| {
                let c = 5;
                let v: f64 = a[1]
                    .data
                    .iter()
                    .enumerate()
                    .map(|(r, &t)| -a[0].data[r * c + t as usize])
                    .sum::<f64>()
                    / 6.0;
                Array::new(&[], vec![v])
            },
        ),
        case(
            "mse_loss",
            vec![f(&[3, 5]), f(&[3, 5])],
            |x| x[0].try_mse_loss(&x[1]),
            |a| {
                let v = a[0]
                    .data
                    .iter()
                    .zip(&a[1].data)
                    .map(|(p, q)| (p - q).powi(2))
                    .sum::<f64>()
                    / 15.0;
                Array::new(&[], vec![v])
            },
        ),
        // ----- layers (fused ops with hand-written backward passes) -----
        case(
            "conv2d",
            vec![f(&[2, 3, 5, 6]), f(&[4, 3, 3, 2]), f(&[4])],
            |x| try_conv2d(&x[0], &x[1], Some(&x[2]), Conv2dOptions::default()),
            |a| naive::conv2d(a, (1, 1), (0, 0), (1, 1), 1),
        ),
        case(
            "conv2d_stride_padding_dilation",
            vec![f(&[2, 2, 7, 6]), f(&[3, 2, 3, 3])],
            |x| {
                let o = Conv2dOptions {
                    stride: (2, 1),
                    padding: (1, 2),
                    dilation: (2, 1),
                    groups: 1,
                };
                try_conv2d(&x[0], &x[1], None, o)
            },
            |a| naive::conv2d(a, (2, 1), (1, 2), (2, 1), 1),
        ),
        case(
            "conv2d_groups",
            vec![f(&[1, 4, 5, 5]), f(&[6, 2, 2, 3]), f(&[6])],
            |x| {
                let o = Conv2dOptions {
                    groups: 2,
                    padding: (1, 1),
                    ..Default::default()
                };
                try_conv2d(&x[0], &x[1], Some(&x[2]), o)
            },
            |a| naive::conv2d(a, (1, 1), (1, 1), (1, 1), 2),
        ),
        case(
            "conv1d",
            vec![f(&[2, 3, 9]), f(&[2, 3, 3]), f(&[2])],
            |x| try_conv1d(&x[0], &x[1], Some(&x[2]), 2, 1, 2, 1),
            |a| {
                let x4 = Array::new(&[2, 3, 1, 9], a[0].data.clone());
                let w4 = Array::new(&[2, 3, 1, 3], a[1].data.clone());
                let y = naive::conv2d(&[x4, w4, a[2].clone()], (1, 2), (0, 1), (1, 2), 1);
                let lo = y.shape[3];
                Array::new(&[2, 2, lo], y.data)
            },
        ),
        case(
            "max_pool2d",
            vec![distinct(&[2, 2, 5, 7])],
            |x| try_max_pool2d(&x[0], (3, 2), (2, 2), (1, 1)),
            |a| naive::pool2d(&a[0], (3, 2), (2, 2), (1, 1), None),
        ),
        case(
            "avg_pool2d",
            vec![f(&[2, 3, 5, 6])],
            |x| try_avg_pool2d(&x[0], (2, 3), (2, 2), (1, 1), true),
            |a| naive::pool2d(&a[0], (2, 3), (2, 2), (1, 1), Some(true)),
        ),
        case(
            "avg_pool2d_exclude_pad",
            vec![f(&[1, 2, 5, 5])],
            |x| try_avg_pool2d(&x[0], (3, 3), (2, 2), (1, 1), false),
            |a| naive::pool2d(&a[0], (3, 3), (2, 2), (1, 1), Some(false)),
        ),
        case(
            "max_pool2d_ceil",
            vec![distinct(&[2, 2, 6, 7])],
            |x| {
                let mut o = MaxPool2dOptions::new((3, 2));
                (o.stride, o.padding, o.ceil_mode) = ((2, 2), (1, 0), true);
                try_max_pool2d_with(&x[0], o)
            },
            |a| naive::pool2d_full(&a[0], (3, 2), (2, 2), (1, 0), true, None),
        ),
        case(
            "avg_pool2d_ceil",
            vec![f(&[2, 2, 6, 7])],
            |x| {
                let mut o = AvgPool2dOptions::new((3, 3));
                (o.stride, o.padding, o.ceil_mode) = ((2, 2), (1, 1), true);
                try_avg_pool2d_with(&x[0], o)
            },
            |a| naive::pool2d_full(&a[0], (3, 3), (2, 2), (1, 1), true, Some((true, None))),
        ),
        case(
            "avg_pool2d_ceil_exclude_pad",
            vec![f(&[1, 2, 5, 6])],
            |x| {
                let mut o = AvgPool2dOptions::new((2, 3));
                (o.stride, o.padding) = ((2, 2), (1, 1));
                (o.ceil_mode, o.count_include_pad) = (true, false);
                try_avg_pool2d_with(&x[0], o)
            },
            |a| naive::pool2d_full(&a[0], (2, 3), (2, 2), (1, 1), true, Some((false, None))),
        ),
        case(
            "avg_pool2d_divisor_override",
            vec![f(&[2, 3, 5, 6])],
            |x| {
                let mut o = AvgPool2dOptions::new((2, 3));
                (o.stride, o.padding, o.divisor_override) = ((2, 2), (1, 1), Some(4));
                try_avg_pool2d_with(&x[0], o)
            },
            |a| naive::pool2d_full(&a[0], (2, 3), (2, 2), (1, 1), false, Some((true, Some(4)))),
        ),
        case(
            "batch_norm2d_train",
            vec![f(&[3, 2, 3, 2]), f(&[2]), f(&[2])],
            |x| batch_norm_with(x, true),
            |a| naive::batch_norm(a, None, 1e-5),
        ),
        case(
            "batch_norm2d_eval",
            vec![f(&[3, 2, 3, 2]), f(&[2]), f(&[2])],
            |x| batch_norm_with(x, false),
            |a| naive::batch_norm(a, Some((0.3, 1.7)), 1e-5),
        ),
        case(
            "sdpa",
            vec![f(&[2, 3, 4]), f(&[2, 5, 4]), f(&[2, 5, 3])],
            |x| try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &SdpaOptions::default()),
            |a| naive::sdpa(a, None, None, false),
        ),
        case(
            "sdpa_causal_heads",
            vec![f(&[2, 2, 4, 3]), f(&[2, 2, 4, 3]), f(&[2, 2, 4, 5])],
            |x| {
                let opts = SdpaOptions {
                    is_causal: true,
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| naive::sdpa(a, None, None, true),
        ),
        // Several query blocks and key tiles of the CPU's flash loops (64 × 64), sizes that
        // are not multiples of them, L ≠ S, and the tiles a causal row skips.
        case(
            "sdpa_causal_tiles",
            vec![f(&[1, 2, 70, 3]), f(&[1, 2, 131, 3]), f(&[1, 2, 131, 5])],
            |x| {
                let opts = SdpaOptions {
                    is_causal: true,
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| naive::sdpa(a, None, None, true),
        ),
        case(
            "sdpa_float_mask_tiles",
            vec![
                f(&[1, 67, 3]),
                f(&[1, 131, 3]),
                f(&[1, 131, 2]),
                f(&[67, 131]),
            ],
            |x| {
                let opts = SdpaOptions {
                    attn_mask: Some(x[3].clone()),
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| naive::sdpa(a, None, Some(&a[3]), false),
        ),
        // Sparse patterns, which the CPU kernel skips by: against the same pattern as a mask.
        case(
            "sdpa_local_causal",
            vec![f(&[1, 2, 70, 3]), f(&[1, 2, 131, 3]), f(&[1, 2, 131, 2])],
            |x| sdpa_pattern(x, AttentionPattern::Local { window: 20 }, true),
            |a| naive_pattern(a, AttentionPattern::Local { window: 20 }, true),
        ),
        case(
            "sdpa_local_float_mask",
            vec![
                f(&[1, 67, 3]),
                f(&[1, 131, 3]),
                f(&[1, 131, 2]),
                f(&[67, 131]),
            ],
            |x| sdpa_pattern(x, AttentionPattern::Local { window: 30 }, false),
            |a| naive_pattern(a, AttentionPattern::Local { window: 30 }, false),
        ),
        case(
            "sdpa_strided_causal",
            vec![f(&[1, 2, 70, 3]), f(&[1, 2, 131, 3]), f(&[1, 2, 131, 2])],
            |x| sdpa_pattern(x, AttentionPattern::Strided { stride: 9 }, true),
            |a| naive_pattern(a, AttentionPattern::Strided { stride: 9 }, true),
        ),
        case(
            "sdpa_strided_float_mask",
            vec![
                f(&[1, 67, 3]),
                f(&[1, 131, 3]),
                f(&[1, 131, 2]),
                f(&[67, 131]),
            ],
            |x| sdpa_pattern(x, AttentionPattern::Strided { stride: 16 }, false),
            |a| naive_pattern(a, AttentionPattern::Strided { stride: 16 }, false),
        ),
        // Random-feature (Performer) attention: q, k, v, then the random directions Ω.
        case(
            "random_feature_attention",
            vec![f(&[2, 7, 3]), f(&[2, 7, 3]), f(&[2, 7, 2]), f(&[5, 3])],
            |x| rfa(x, false, 64),
            |a| naive::random_feature_attention(a, false),
        ),
        case(
            "random_feature_attention_causal_chunks",
            vec![
                f(&[1, 2, 11, 3]),
                f(&[1, 2, 11, 3]),
                f(&[1, 2, 11, 2]),
                f(&[4, 3]),
            ],
            |x| rfa(x, true, 4),
            |a| naive::random_feature_attention(a, true),
        ),
        case(
            "random_feature_attention_causal_one_chunk",
            vec![f(&[2, 9, 3]), f(&[2, 9, 3]), f(&[2, 9, 4]), f(&[6, 3])],
            |x| rfa(x, true, 16),
            |a| naive::random_feature_attention(a, true),
        ),
        // FLASH's mixed chunk attention: quad q, k, linear q, k, v, then the bias in a chunk.
        case(
            "mixed_chunk_attention_causal",
            vec![
                f(&[2, 11, 3]),
                f(&[2, 11, 3]),
                f(&[2, 11, 3]),
                f(&[2, 11, 3]),
                f(&[2, 11, 2]),
                f(&[4, 4]),
            ],
            |x| mixed_chunk(x, true, 4),
            |a| naive::mixed_chunk_attention(a, 4, true),
        ),
        case(
            "mixed_chunk_attention_bidirectional",
            vec![
                f(&[1, 2, 10, 3]),
                f(&[1, 2, 10, 3]),
                f(&[1, 2, 10, 3]),
                f(&[1, 2, 10, 3]),
                f(&[1, 2, 10, 4]),
                f(&[4, 4]),
            ],
            |x| mixed_chunk(x, false, 4),
            |a| naive::mixed_chunk_attention(a, 4, false),
        ),
        case(
            "mixed_chunk_attention_one_chunk_no_bias",
            vec![f(&[5, 2]), f(&[5, 2]), f(&[5, 2]), f(&[5, 2]), f(&[5, 3])],
            |x| mixed_chunk(x, true, 8),
            |a| naive::mixed_chunk_attention(a, 8, true),
        ),
        // Transformer-XL: q, k, v, the distances' encodings r, and the biases u and v.
        case(
            "relative_attention_with_memory",
            vec![
                f(&[1, 2, 4, 3]),
                f(&[1, 2, 7, 3]),
                f(&[1, 2, 7, 3]),
                f(&[2, 7, 3]),
                f(&[2, 3]),
                f(&[2, 3]),
            ],
            |x| try_relative_attention(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]),
            naive::relative_attention,
        ),
        case(
            "relative_attention_no_memory",
            vec![
                f(&[2, 5, 2]),
                f(&[2, 5, 2]),
                f(&[2, 5, 2]),
                f(&[2, 5, 2]),
                f(&[2, 2]),
                f(&[2, 2]),
            ],
            |x| try_relative_attention(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]),
            naive::relative_attention,
        ),
        // Reformer's LSH attention: shared q/k, v, then the rotations [rounds, d, buckets/2].
        case(
            "lsh_attention_causal",
            vec![f(&[2, 12, 3]), f(&[2, 12, 2]), f(&[2, 3, 2])],
            |x| lsh(x, 3, true),
            |a| naive::lsh_attention(a, 3, true),
        ),
        case(
            "lsh_attention_bidirectional_one_chunk",
            vec![f(&[1, 2, 4, 3]), f(&[1, 2, 4, 3]), f(&[3, 3, 1])],
            |x| lsh(x, 4, false),
            |a| naive::lsh_attention(a, 4, false),
        ),
        // LARA: q, k, v and the proposals' noise [.., C, d] (a partial last segment).
        case(
            "lara_attention",
            vec![
                f(&[2, 11, 3]),
                f(&[2, 11, 3]),
                f(&[2, 11, 2]),
                f(&[2, 3, 3]),
            ],
            |x| try_lara_attention(&x[0], &x[1], &x[2], &x[3]),
            naive::lara_attention,
        ),
        case(
            "lara_attention_one_proposal_per_token",
            vec![
                f(&[1, 2, 4, 2]),
                f(&[1, 2, 4, 2]),
                f(&[1, 2, 4, 3]),
                f(&[1, 2, 4, 2]),
            ],
            |x| try_lara_attention(&x[0], &x[1], &x[2], &x[3]),
            naive::lara_attention,
        ),
        // MRA: q, k, v; blocks of 3 over 10 tokens (a partial last block), 2 of 4 refined.
        case(
            "mra_attention",
            vec![f(&[2, 10, 3]), f(&[2, 10, 3]), f(&[2, 10, 2])],
            |x| {
                try_mra_attention(
                    &x[0],
                    &x[1],
                    &x[2],
                    MraOptions {
                        block: 3,
                        refined: 2,
                    },
                )
            },
            |a| naive::mra_attention(a, 3, 2),
        ),
        case(
            "mra_attention_one_refined",
            vec![f(&[1, 2, 8, 2]), f(&[1, 2, 8, 2]), f(&[1, 2, 8, 3])],
            |x| {
                try_mra_attention(
                    &x[0],
                    &x[1],
                    &x[2],
                    MraOptions {
                        block: 2,
                        refined: 1,
                    },
                )
            },
            |a| naive::mra_attention(a, 2, 1),
        ),
        case(
            "sdpa_fixed_causal",
            vec![f(&[1, 2, 70, 3]), f(&[1, 2, 131, 3]), f(&[1, 2, 131, 2])],
            |x| {
                sdpa_pattern(
                    x,
                    AttentionPattern::Fixed {
                        stride: 12,
                        summary: 3,
                    },
                    true,
                )
            },
            |a| {
                naive_pattern(
                    a,
                    AttentionPattern::Fixed {
                        stride: 12,
                        summary: 3,
                    },
                    true,
                )
            },
        ),
        case(
            "sdpa_fixed_float_mask",
            vec![
                f(&[1, 67, 3]),
                f(&[1, 131, 3]),
                f(&[1, 131, 2]),
                f(&[67, 131]),
            ],
            |x| {
                sdpa_pattern(
                    x,
                    AttentionPattern::Fixed {
                        stride: 20,
                        summary: 2,
                    },
                    false,
                )
            },
            |a| {
                naive_pattern(
                    a,
                    AttentionPattern::Fixed {
                        stride: 20,
                        summary: 2,
                    },
                    false,
                )
            },
        ),
        case(
            "sdpa_bool_mask",
            vec![f(&[2, 3, 4]), f(&[2, 5, 4]), f(&[2, 5, 2]), mask(&[3, 5])],
            |x| {
                let opts = SdpaOptions {
                    attn_mask: Some(x[3].clone()),
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| naive::sdpa(a, Some(&a[3]), None, false),
        ),
        case(
            "sdpa_broadcast_heads_padding_mask",
            vec![
                f(&[2, 2, 3, 4]),
                f(&[2, 1, 5, 4]),
                f(&[1, 2, 5, 3]),
                mask(&[2, 1, 1, 5]),
            ],
            |x| {
                let opts = SdpaOptions {
                    attn_mask: Some(x[3].clone()),
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| {
                let full = |t: &Array, shape: &[usize]| {
                    naive::zip(
                        t,
                        &Array::new(shape, vec![0.0; shape.iter().product()]),
                        |p, _| p,
                    )
                };
                let (k, v) = (full(&a[1], &[2, 2, 5, 4]), full(&a[2], &[2, 2, 5, 3]));
                let keep = full(&a[3], &[2, 2, 3, 5]);
                naive::sdpa(&[a[0].clone(), k, v], Some(&keep), None, false)
            },
        ),
        case(
            "sdpa_float_mask",
            vec![f(&[2, 3, 4]), f(&[2, 5, 4]), f(&[2, 5, 2]), f(&[3, 5])],
            |x| {
                let opts = SdpaOptions {
                    attn_mask: Some(x[3].clone()),
                    ..Default::default()
                };
                try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
            },
            |a| naive::sdpa(a, None, Some(&a[3]), false),
        ),
        case(
            "gru",
            vec![
                f(&[2, 3, 4]),
                f(&[2, 5]),
                f(&[15, 4]),
                f(&[15, 5]),
                f(&[15]),
                f(&[15]),
            ],
            |x| try_gru_layer(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]),
            naive::gru,
        ),
        case(
            "layer_norm",
            vec![f(&[3, 2, 5]), f(&[5]), f(&[5])],
            |x| try_layer_norm(&x[0], &[5], Some(&x[1]), Some(&x[2]), 1e-5),
            |a| naive::layer_norm(a, 5, 1e-5),
        ),
        case(
            "layer_norm_two_dims",
            vec![f(&[2, 3, 4]), f(&[3, 4]), f(&[3, 4])],
            |x| try_layer_norm(&x[0], &[3, 4], Some(&x[1]), Some(&x[2]), 1e-5),
            |a| naive::layer_norm(a, 12, 1e-5),
        ),
        case(
            "layer_norm_bias_only_two_dims",
            vec![f(&[2, 3, 4]), f(&[3, 4])],
            |x| try_layer_norm(&x[0], &[3, 4], None, Some(&x[1]), 1e-5),
            |a| {
                let ones = Array::new(&[3, 4], vec![1.0; 12]);
                naive::layer_norm(&[a[0].clone(), ones, a[1].clone()], 12, 1e-5)
            },
        ),
        case(
            "layer_norm_no_affine",
            vec![f(&[4, 7])],
            |x| try_layer_norm(&x[0], &[7], None, None, 1e-5),
            |a| naive::layer_norm(a, 7, 1e-5),
        ),
        case(
            "context_pool_1d",
            pool_inputs(&[2, 7, 3]),
            |x| {
                try_context_pool_1d(
                    &x[0],
                    &x[1],
                    &x[2],
                    &x[3],
                    &x[4],
                    &ContextPoolOptions::default(),
                )
            },
            |a| naive::context_pool(a, dense(1, 7, 1, ContextPoolOptions::default())),
        ),
        case(
            "context_pool_1d_causal_window",
            pool_inputs(&[2, 9, 4]),
            |x| try_context_pool_1d(&x[0], &x[1], &x[2], &x[3], &x[4], &POOL_CAUSAL),
            |a| naive::context_pool(a, dense(1, 9, 1, POOL_CAUSAL)),
        ),
        // Long enough for whole register blocks of the banded kernels (4 outputs, 64
        // features, plus a tail of 3), and for the blocks at either end.
        case(
            "context_pool_1d_band",
            pool_inputs(&[2, 23, 67]),
            |x| try_context_pool_1d(&x[0], &x[1], &x[2], &x[3], &x[4], &POOL_BAND),
            |a| naive::context_pool(a, dense(1, 23, 1, POOL_BAND)),
        ),
        case(
            "context_pool_1d_band_causal_unnormalized",
            pool_inputs(&[1, 21, 67]),
            |x| {
                let opts = ContextPoolOptions {
                    causal: true,
                    normalize: false,
                    radius: Some(4),
                    ..POOL_BAND
                };
                try_context_pool_1d(&x[0], &x[1], &x[2], &x[3], &x[4], &opts)
            },
            |a| {
                let opts = ContextPoolOptions {
                    causal: true,
                    normalize: false,
                    radius: Some(4),
                    ..POOL_BAND
                };
                naive::context_pool(a, dense(1, 21, 1, opts))
            },
        ),
        case(
            "context_pool_1d_unnormalized",
            pool_inputs(&[1, 8, 3]),
            |x| try_context_pool_1d(&x[0], &x[1], &x[2], &x[3], &x[4], &POOL_UNNORMALIZED),
            |a| naive::context_pool(a, dense(1, 8, 1, POOL_UNNORMALIZED)),
        ),
        case(
            "context_pool_2d",
            pool_inputs(&[2, 12, 3]),
            |x| try_context_pool_2d(&x[0], &x[1], &x[2], &x[3], &x[4], (3, 4), 1, &POOL_GRID),
            |a| naive::context_pool(a, dense(3, 4, 1, POOL_GRID)),
        ),
        case(
            "context_pool_2d_stride2",
            pool_inputs(&[2, 30, 2]),
            |x| try_context_pool_2d(&x[0], &x[1], &x[2], &x[3], &x[4], (5, 6), 2, &POOL_GRID),
            |a| naive::context_pool(a, dense(5, 6, 2, POOL_GRID)),
        ),
    ]
}

/// ContextPool's inputs: tokens `[B, n, d]` and the two predictors (`[1, d]` weights, `[1]`
/// biases) drawn in ±2 so that weights and sizes spread over their whole range.
fn pool_inputs(x: &[usize]) -> Vec<InputSpec> {
    let d = x[2];
    vec![f(x), f(&[1, d]), f(&[1]), f(&[1, d]), f(&[1])]
}

/// A window smaller than the sequence, so that the mask's edges are exercised.
const POOL_CAUSAL: ContextPoolOptions = ContextPoolOptions {
    s_min: 0.5,
    s_max: 3.0,
    radius: Some(2),
    causal: true,
    normalize: true,
    eps: 1e-6,
    init_size: 1.0,
};
const POOL_UNNORMALIZED: ContextPoolOptions = ContextPoolOptions {
    s_min: 0.5,
    s_max: 4.0,
    radius: Some(3),
    causal: false,
    normalize: false,
    eps: 1e-6,
    init_size: 1.0,
};
const POOL_BAND: ContextPoolOptions = ContextPoolOptions {
    s_min: 0.5,
    s_max: 2.0,
    radius: Some(3),
    causal: false,
    normalize: true,
    eps: 1e-6,
    init_size: 1.0,
};
const POOL_GRID: ContextPoolOptions = ContextPoolOptions {
    s_min: 0.5,
    s_max: 2.0,
    radius: Some(1),
    causal: false,
    normalize: true,
    eps: 1e-6,
    init_size: 1.0,
};

fn dense(h: usize, w: usize, stride: usize, o: ContextPoolOptions) -> naive::DensePool {
    naive::DensePool {
        h,
        w,
        stride,
        radius: o.radius(),
        causal: o.causal,
        s_min: o.s_min,
        s_max: o.s_max,
        normalize: o.normalize,
        eps: o.eps,
    }
}

/// BatchNorm2d with `γ`, `β` from the inputs; in evaluation, running statistics 0.3 and 1.7.
fn batch_norm_with(x: &[Tensor], training: bool) -> Result<Tensor> {
    let c = x[0].dims()[1];
    let mut bn = BatchNorm2d::new(c);
    bn.weight = Some(x[1].clone());
    bn.bias = Some(x[2].clone());
    let dev = x[0].device();
    bn.running_mean = Tensor::from_vec(vec![0.3f64; c], [c])
        .to_dtype(x[0].dtype())
        .try_to_device(dev)?;
    bn.running_var = Tensor::from_vec(vec![1.7f64; c], [c])
        .to_dtype(x[0].dtype())
        .try_to_device(dev)?;
    bn.set_training(training);
    bn.try_forward(&x[0])
}
