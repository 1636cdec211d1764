//! Tensor-level entry points to the CubeCL kernels: each takes tensors on a CubeCL device,
//! launches one kernel of `cubegrad-ops` and wraps its output buffer. `crate::ops` calls them
//! where a tensor is on a device, next to the CPU loops, so that an op's two paths sit in
//! one place.

use super::{copy_words, from_handle, with_cube_float, with_runtime, CubeStorage};
use crate::error::{Error, Result};
use crate::tensor::{DType, Shape, Storage, Tensor};
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::elementwise::{BinaryOp, CompareOp, UnaryOp};
use cubegrad_ops::layout::View;
use cubegrad_ops::reduce::ReduceOp;
use cubegrad_ops::{elementwise, layout, loss, matmul as mm, optim, reduce, softmax};

fn storage<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a CubeStorage> {
    t.cube().ok_or_else(|| {
        Error::invalid(
            op,
            "expected a tensor on a CubeCL device, got one on the CPU",
        )
    })
}

/// The buffer of a contiguous, offset-free tensor, copying only when it is a strided view.
pub(crate) fn dense(t: &Tensor) -> Result<Tensor> {
    let s = storage("contiguous", t)?;
    if t.is_contiguous() && t.layout().offset == 0 && s.len == t.numel() {
        Ok(t.clone())
    } else {
        contiguous(t)
    }
}

fn handle(t: &Tensor) -> &Handle {
    &t.cube().expect("a device tensor").handle
}

/// A contiguous copy of any tensor on a device, whatever its dtype.
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    let s = storage("contiguous", t)?;
    let c = copy_words(s, t.layout())?;
    Ok(Tensor::from_storage(
        Storage::Cube(c),
        crate::tensor::Layout::contiguous(t.shape().clone()),
    ))
}

/// `t`'s strides for each dim of `out` (right-aligned), 0 where it is broadcast.
fn broadcast_strides(t: &Tensor, out: &Shape) -> Vec<usize> {
    let (r, dims, strides) = (t.rank(), t.dims(), &t.layout().strides);
    let off = out.rank() - r;
    (0..out.rank())
        .map(|d| {
            if d < off || dims[d - off] == 1 {
                0
            } else {
                strides[d - off]
            }
        })
        .collect()
}

/// `a ∘ b` with broadcasting; strided views are read in place.
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
    let (sa, sb) = (broadcast_strides(a, out), broadcast_strides(b, out));
    let (va, vb) = (
        a.cube_view().expect("device"),
        b.cube_view().expect("device"),
    );
    let va = View { strides: &sa, ..va };
    let vb = View { strides: &sb, ..vb };
    with_runtime!("binary", a.device(), |R, client| {
        with_cube_float!("binary", a.dtype(), |F| {
            let h = elementwise::binary::<R, F>(&client, op, &va, &vb, out.dims());
            Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
        })
    })
}

/// `a ⋈ b` with broadcasting, as a bool tensor; any dtype.
pub(crate) fn compare(op: CompareOp, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
    let (sa, sb) = (broadcast_strides(a, out), broadcast_strides(b, out));
    let (va, vb) = (
        a.cube_view().expect("device"),
        b.cube_view().expect("device"),
    );
    let va = View { strides: &sa, ..va };
    let vb = View { strides: &sb, ..vb };
    with_runtime!("compare", a.device(), |R, client| {
        if !a.dtype().is_float() {
            let wide = a.dtype() == DType::I64;
            let h = elementwise::compare_words::<R>(&client, op, &va, &vb, out.dims(), wide);
            return Ok(from_handle(h, out.clone(), DType::Bool, a.device()));
        }
        with_cube_float!("compare", a.dtype(), |F| {
            let h = elementwise::compare::<R, F>(&client, op, &va, &vb, out.dims());
            Ok(from_handle(h, out.clone(), DType::Bool, a.device()))
        })
    })
}

/// `cond ? a : b` with broadcasting (`cond` bool).
pub(crate) fn select(cond: &Tensor, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
    let (sc, sa, sb) = (
        broadcast_strides(cond, out),
        broadcast_strides(a, out),
        broadcast_strides(b, out),
    );
    let vc = cond.cube_view().expect("device");
    let (va, vb) = (
        a.cube_view().expect("device"),
        b.cube_view().expect("device"),
    );
    let vc = View { strides: &sc, ..vc };
    let va = View { strides: &sa, ..va };
    let vb = View { strides: &sb, ..vb };
    with_runtime!("where", a.device(), |R, client| {
        with_cube_float!("where", a.dtype(), |F| {
            let h = elementwise::select::<R, F>(&client, &vc, &va, &vb, out.dims());
            Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
        })
    })
}

/// Converts bool → float and f32 ↔ f64 on the device; `None` for the other pairs.
pub(crate) fn cast(x: &Tensor, to: DType) -> Result<Option<Tensor>> {
    let x = dense(x)?;
    let n = x.numel();
    let (from, device) = (x.dtype(), x.device());
    if !matches!(to, DType::F32 | DType::F64)
        || !matches!(from, DType::Bool | DType::F32 | DType::F64)
    {
        return Ok(None);
    }
    with_runtime!("to_dtype", device, |R, client| {
        let h = match (from, to) {
            (DType::Bool, DType::F32) => {
                elementwise::bool_to_float::<R, f32>(&client, handle(&x), n)
            }
            (DType::Bool, _) => elementwise::bool_to_float::<R, f64>(&client, handle(&x), n),
            (DType::F32, _) => elementwise::float_cast::<R, f32, f64>(&client, handle(&x), n),
            _ => elementwise::float_cast::<R, f64, f32>(&client, handle(&x), n),
        };
        Ok(Some(from_handle(h, x.shape().clone(), to, device)))
    })
}

pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let x = dense(x)?;
    with_runtime!("unary", x.device(), |R, client| {
        with_cube_float!("unary", x.dtype(), |F| {
            let h = elementwise::unary::<R, F>(&client, op, handle(&x), x.numel());
            Ok(from_handle(h, x.shape().clone(), x.dtype(), x.device()))
        })
    })
}

/// `g · f'(s)`; `s` is what the forward saved (see `UnaryOp::backward_uses_output`).
pub(crate) fn unary_backward(op: UnaryOp, g: &Tensor, s: &Tensor) -> Result<Tensor> {
    let (g, s) = (dense(g)?, dense(s)?);
    with_runtime!("unary backward", g.device(), |R, client| {
        with_cube_float!("unary backward", g.dtype(), |F| {
            let h =
                elementwise::unary_backward::<R, F>(&client, op, handle(&g), handle(&s), g.numel());
            Ok(from_handle(h, g.shape().clone(), g.dtype(), g.device()))
        })
    })
}

/// Reduces each row of `x` viewed as `[rows, cols]` (made contiguous first); the result has
/// `out` as its shape (rows elements).
pub(crate) fn reduce_rows(op: ReduceOp, x: &Tensor, cols: usize, out: Shape) -> Result<Tensor> {
    let x = dense(x)?;
    let rows = x.numel() / cols.max(1);
    with_runtime!("reduce", x.device(), |R, client| {
        with_cube_float!("reduce", x.dtype(), |F| {
            let h = reduce::reduce_rows::<R, F>(&client, op, handle(&x), rows, cols);
            Ok(from_handle(h, out.clone(), x.dtype(), x.device()))
        })
    })
}

/// Arg-max or arg-min over the last axis of `x` (made contiguous first), as i64.
pub(crate) fn arg_rows(x: &Tensor, largest: bool, out: Shape) -> Result<Tensor> {
    let x = dense(x)?;
    let cols = x.dims().last().copied().unwrap_or(1);
    let rows = x.numel() / cols.max(1);
    with_runtime!("argmax", x.device(), |R, client| {
        with_cube_float!("argmax", x.dtype(), |F| {
            let h = reduce::arg_rows::<R, F>(&client, handle(&x), rows, cols, largest);
            Ok(from_handle(h, out.clone(), DType::I64, x.device()))
        })
    })
}

/// Softmax (or log-softmax) of each row of the contiguous `x` (last axis), with an optional
/// bool mask of the same shape.
pub(crate) fn softmax_rows(x: &Tensor, mask: Option<&Tensor>, log: bool) -> Result<Tensor> {
    let x = dense(x)?;
    let mask = mask.map(dense).transpose()?;
    let cols = x.dims().last().copied().unwrap_or(1);
    let rows = x.numel() / cols.max(1);
    with_runtime!("softmax", x.device(), |R, client| {
        with_cube_float!("softmax", x.dtype(), |F| {
            let h = softmax::softmax_rows::<R, F>(
                &client,
                handle(&x),
                mask.as_ref().map(handle),
                rows,
                cols,
                log,
            );
            Ok(from_handle(h, x.shape().clone(), x.dtype(), x.device()))
        })
    })
}

pub(crate) fn softmax_rows_backward(y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor> {
    let (y, g) = (dense(y)?, dense(g)?);
    let cols = y.dims().last().copied().unwrap_or(1);
    let rows = y.numel() / cols.max(1);
    with_runtime!("softmax backward", y.device(), |R, client| {
        with_cube_float!("softmax backward", y.dtype(), |F| {
            let h = softmax::softmax_rows_backward::<R, F>(
                &client,
                handle(&y),
                handle(&g),
                rows,
                cols,
                log,
            );
            Ok(from_handle(h, y.shape().clone(), y.dtype(), y.device()))
        })
    })
}

/// How the matmul kernel walks one operand: its matrix strides, and one stride between
/// batches. An operand whose batch dims do not collapse into one stride is first copied
/// into `[batch, rows, cols]`.
fn operand(t: &Tensor, batch: &Shape) -> Result<(Tensor, mm::Strides)> {
    let r = t.rank();
    let own_batch = &t.dims()[..r - 2];
    let st = &t.layout().strides;
    let matrix = |t: &Tensor, batch_stride: usize| {
        let st = &t.layout().strides;
        let r = t.rank();
        mm::Strides {
            row: st[r - 2],
            col: st[r - 1],
            batch: batch_stride,
            offset: t.layout().offset,
        }
    };
    if own_batch.iter().product::<usize>() == 1 {
        return Ok((t.clone(), matrix(t, 0)));
    }
    let collapses =
        own_batch == batch.dims() && (0..r - 3).all(|d| st[d] == st[d + 1] * own_batch[d + 1]);
    if collapses {
        return Ok((t.clone(), matrix(t, st[r - 3])));
    }
    let mut full = batch.dims().to_vec();
    full.extend_from_slice(&t.dims()[r - 2..]);
    let c = contiguous(&t.broadcast_view(&Shape::new(&full)))?;
    let (m, k) = (t.dims()[r - 2], t.dims()[r - 1]);
    Ok((c.clone(), matrix(&c, m * k)))
}

/// `a @ b` over the broadcast `batch`, into a new `out`-shaped tensor: cubek-matmul where it
/// takes the problem, our tiled kernel otherwise.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, batch: &Shape, out: &Shape) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
    let (a, sa) = operand(a, batch)?;
    let (b, sb) = operand(b, batch)?;
    let (ca, cb) = (a.cube().expect("device"), b.cube().expect("device"));
    with_runtime!("matmul", a.device(), |R, client| {
        with_cube_float!("matmul", a.dtype(), |F| {
            let (batch, (ha, hb)) = (batch.numel(), (&ca.handle, &cb.handle));
            let tuned =
                cubegrad_ops::matmul_cubek::matmul::<R, F>(&client, ha, sa, hb, sb, batch, m, k, n);
            let h = tuned.unwrap_or_else(|| {
                mm::matmul::<R, F>(
                    &client,
                    &ca.handle,
                    ca.len.max(1),
                    sa,
                    &cb.handle,
                    cb.len.max(1),
                    sb,
                    batch,
                    m,
                    k,
                    n,
                )
            });
            Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
        })
    })
}

/// Concatenates `parts` (made contiguous) along `axis`.
pub(crate) fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let dense: Vec<Tensor> = parts.iter().map(|p| dense(p)).collect::<Result<_>>()?;
    let first = &dense[0];
    let (dtype, device) = (first.dtype(), first.device());
    with_runtime!("concat", device, |R, client| {
        with_cube_float!("concat", dtype, |F| {
            let views: Vec<(&Handle, &[usize])> =
                dense.iter().map(|t| (handle(t), t.dims())).collect();
            let (h, shape) = layout::concat::<R, F>(&client, &views, axis);
            Ok(from_handle(h, Shape::new(&shape), dtype, device))
        })
    })
}

/// A float tensor of `shape` filled with `value` on the device; `None` for other dtypes.
pub(crate) fn full(
    shape: &Shape,
    value: f64,
    dtype: DType,
    device: crate::tensor::Device,
) -> Result<Option<Tensor>> {
    if !dtype.is_float() {
        return Ok(None);
    }
    crate::backend::cube::open("full", device)?;
    with_runtime!("full", device, |R, client| {
        with_cube_float!("full", dtype, |F| {
            let h = layout::fill::<R, F>(&client, shape.numel(), value);
            Ok(Some(from_handle(h, shape.clone(), dtype, device)))
        })
    })
}

/// The backward of `narrow`: `g` written into zeros of shape `from` at `start` along `axis`.
pub(crate) fn pad_axis(g: &Tensor, from: &Shape, axis: usize, start: usize) -> Result<Tensor> {
    let g = dense(g)?;
    let (dtype, device) = (g.dtype(), g.device());
    let strides = from.contiguous_strides();
    let n = from.numel();
    with_runtime!("narrow backward", device, |R, client| {
        with_cube_float!("narrow backward", dtype, |F| {
            let out = layout::fill::<R, F>(&client, n, 0.0);
            let src = View {
                handle: handle(&g),
                len: g.numel().max(1),
                strides: &g.layout().strides,
                offset: 0,
            };
            layout::copy_into::<R, F>(
                &client,
                g.dims(),
                &src,
                &out,
                n.max(1),
                &strides,
                start * strides[axis],
            );
            Ok(from_handle(out, from.clone(), dtype, device))
        })
    })
}

/// What the cross-entropy kernel returns (see `cubegrad_ops::loss`), as tensors.
pub(crate) struct CrossEntropy {
    pub loss: Tensor,
    pub counted: Tensor,
    pub dx: Tensor,
}

/// Per-row cross-entropy of `x` `[rows, classes]` against i64 `targets` `[rows]`; with
/// `smoothing` `None`, the negative log-likelihood of log-probabilities `x` instead.
pub(crate) fn cross_entropy(
    x: &Tensor,
    targets: &Tensor,
    ignore: Option<i64>,
    smoothing: Option<f64>,
) -> Result<CrossEntropy> {
    let (x, t) = (dense(x)?, dense(targets)?);
    let classes = x.dims().last().copied().unwrap_or(1);
    let rows = x.numel() / classes.max(1);
    let (dtype, device) = (x.dtype(), x.device());
    with_runtime!("cross_entropy", device, |R, client| {
        with_cube_float!("cross_entropy", dtype, |F| {
            let o = match smoothing {
                Some(smoothing) => loss::cross_entropy::<R, F>(
                    &client,
                    handle(&x),
                    handle(&t),
                    rows,
                    classes,
                    ignore,
                    smoothing,
                ),
                None => loss::nll::<R, F>(&client, handle(&x), handle(&t), rows, classes, ignore),
            };
            let rows_shape = Shape::new(&[rows]);
            Ok(CrossEntropy {
                loss: from_handle(o.loss, rows_shape.clone(), dtype, device),
                counted: from_handle(o.counted, rows_shape, dtype, device),
                dx: from_handle(o.dx, x.shape().clone(), dtype, device),
            })
        })
    })
}

/// The device index kernels, by op and direction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// `index_select` (`idx` 1-D, `q` its length) and its backward.
    Rows { backward: bool },
    /// `gather` (`idx` `[outer, q, inner]`) and its backward, `scatter_add`.
    Elements { backward: bool },
}

/// `t` seen as `[outer, r, inner]` (forward) or `[outer, q, inner]` (backward, the output
/// gradient) and i64 `idx` on its device, into a new tensor of shape `out`. Forward indices
/// out of range give NaN; the backward adds each gradient row into the row its index names.
pub(crate) fn pick(
    t: &Tensor,
    idx: &Tensor,
    split: (usize, usize, usize),
    q: usize,
    kind: Pick,
    out: Shape,
) -> Result<Tensor> {
    use cubegrad_ops::index;
    let (t, idx) = (dense(t)?, dense(idx)?);
    let (outer, r, inner) = split;
    let (dtype, device) = (t.dtype(), t.device());
    let op = match kind {
        Pick::Rows { .. } => "index_select",
        Pick::Elements { .. } => "gather",
    };
    with_runtime!(op, device, |R, client| {
        with_cube_float!(op, dtype, |F| {
            let (t, i, c) = (handle(&t), handle(&idx), &client);
            let h = match kind {
                Pick::Rows { backward: false } => {
                    index::index_select::<R, F>(c, t, i, outer, r, inner, q)
                }
                Pick::Rows { backward: true } => {
                    index::index_add::<R, F>(c, t, i, outer, r, inner, q)
                }
                Pick::Elements { backward: false } => {
                    index::gather::<R, F>(c, t, i, outer, r, inner, q)
                }
                Pick::Elements { backward: true } => {
                    index::scatter_add::<R, F>(c, t, i, outer, r, inner, q)
                }
            };
            Ok(from_handle(h, out, dtype, device))
        })
    })
}

/// f32 one-hot rows `[..., classes]` of i64 `labels` on their device.
pub(crate) fn one_hot(labels: &Tensor, classes: usize, out: Shape) -> Result<Tensor> {
    let labels = dense(labels)?;
    let device = labels.device();
    with_runtime!("one_hot", device, |R, client| {
        let h = cubegrad_ops::index::one_hot::<R, f32>(
            &client,
            handle(&labels),
            labels.numel(),
            classes,
        );
        Ok(from_handle(h, out, DType::F32, device))
    })
}

/// The parameter's own buffer, for an in-place update: a contiguous tensor whose storage no
/// other tensor shares (copied first otherwise, as on the CPU).
fn exclusive(t: &mut Tensor) -> Result<Handle> {
    t.make_exclusive()?;
    Ok(handle(t).clone())
}

/// One fused Adam/AdamW update of `p`, `m`, `v` in place on the device.
pub(crate) fn adam_step(
    p: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    t: u64,
    h: optim::AdamHyper,
) -> Result<()> {
    let g = dense(g)?;
    let (hp, hm, hv) = (exclusive(p)?, exclusive(m)?, exclusive(v)?);
    let n = p.numel();
    with_runtime!("adam", p.device(), |R, client| {
        with_cube_float!("adam", p.dtype(), |F| {
            optim::adam_step::<R, F>(&client, &hp, handle(&g), &hm, &hv, n, t, h);
            Ok(())
        })
    })
}

/// One SGD update of `p` (and its momentum buffer) in place on the device.
pub(crate) fn sgd_step(
    p: &mut Tensor,
    g: &Tensor,
    buf: Option<&mut Tensor>,
    first: bool,
    h: optim::SgdHyper,
) -> Result<()> {
    let g = dense(g)?;
    let hp = exclusive(p)?;
    let hb = buf.map(exclusive).transpose()?;
    let n = p.numel();
    with_runtime!("sgd", p.device(), |R, client| {
        with_cube_float!("sgd", p.dtype(), |F| {
            // Without momentum the kernel never touches the buffer; a placeholder of one
            // element stands in (binding the gradient twice would alias a writable binding).
            let hb = hb.unwrap_or_else(|| client.empty(std::mem::size_of::<F>()));
            optim::sgd_step::<R, F>(&client, &hp, handle(&g), &hb, n, first, h);
            Ok(())
        })
    })
}

/// ContextPool over sequences (`x` `[B, n, d]`, stride 1): the outputs `y`, `w`, `s` and the
/// denominators, as the CPU op returns them.
pub(crate) struct PoolForward {
    pub y: Tensor,
    pub w: Tensor,
    pub s: Tensor,
    pub denom: Tensor,
}

fn pool_params(
    radius: usize,
    causal: bool,
    p: &crate::backend::cpu::context_pool::Params,
) -> cubegrad_ops::context_pool::PoolParams {
    cubegrad_ops::context_pool::PoolParams {
        s_min: p.s_min as f32,
        s_max: p.s_max as f32,
        radius: radius as u32,
        causal,
        normalize: p.normalize,
        eps: p.eps as f32,
    }
}

/// The token layout of `x` `[B, n_in, d]` for the kernels.
pub(crate) fn pool_dims(
    x: &Tensor,
    geo: &crate::backend::cpu::context_pool::Geometry,
) -> (cubegrad_ops::context_pool::PoolDims, usize, bool) {
    use crate::backend::cpu::context_pool::Geometry;
    use cubegrad_ops::context_pool::PoolDims;
    let (batch, d) = (x.dims()[0], x.dims()[2]);
    match *geo {
        Geometry::Seq {
            n,
            stride,
            radius,
            causal,
        } => (PoolDims::seq(batch, n, d, stride), radius, causal),
        Geometry::Grid {
            h,
            w,
            stride,
            radius,
        } => (PoolDims::grid(batch, h, w, d, stride), radius, false),
    }
}

/// The predictors `[a, a0, b, b0]` and `x`, each made dense.
pub(crate) fn context_pool_forward(
    x: &Tensor,
    predictors: [&Tensor; 4],
    geo: &crate::backend::cpu::context_pool::Geometry,
    params: &crate::backend::cpu::context_pool::Params,
) -> Result<PoolForward> {
    let x = dense(x)?;
    let [a, a0, b, b0] = predictors.map(dense);
    let (a, a0, b, b0) = (a?, a0?, b?, b0?);
    let (dims, radius, causal) = pool_dims(&x, geo);
    let (batch, d) = (dims.batch, dims.d);
    let p = pool_params(radius, causal, params);
    let (dtype, device) = (x.dtype(), x.device());
    with_runtime!("context_pool", device, |R, client| {
        with_cube_float!("context_pool", dtype, |F| {
            let o = cubegrad_ops::context_pool::forward::<R, F>(
                &client,
                handle(&x),
                handle(&a),
                handle(&a0),
                handle(&b),
                handle(&b0),
                dims,
                p,
            );
            let outputs = Shape::new(&[batch, dims.n_out()]);
            Ok(PoolForward {
                y: from_handle(o.y, Shape::new(&[batch, dims.n_out(), d]), dtype, device),
                w: from_handle(o.w, Shape::new(&[batch, dims.n_in()]), dtype, device),
                s: from_handle(o.s, outputs.clone(), dtype, device),
                denom: from_handle(o.denom, outputs, dtype, device),
            })
        })
    })
}

/// The gradients `(dx, [da; da0], [db; db0])` (the bias gradient last, `d + 1` elements).
#[allow(clippy::too_many_arguments)]
pub(crate) fn context_pool_backward(
    x: &Tensor,
    a: &Tensor,
    b: &Tensor,
    fwd: &PoolForward,
    g: &Tensor,
    geo: &crate::backend::cpu::context_pool::Geometry,
    params: &crate::backend::cpu::context_pool::Params,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (x, a, b, g) = (dense(x)?, dense(a)?, dense(b)?, dense(g)?);
    let (y, w, s, denom) = (
        dense(&fwd.y)?,
        dense(&fwd.w)?,
        dense(&fwd.s)?,
        dense(&fwd.denom)?,
    );
    let (dims, radius, causal) = pool_dims(&x, geo);
    let d = dims.d;
    let p = pool_params(radius, causal, params);
    let (dtype, device) = (x.dtype(), x.device());
    with_runtime!("context_pool backward", device, |R, client| {
        with_cube_float!("context_pool backward", dtype, |F| {
            let outs = cubegrad_ops::context_pool::PoolOutputs {
                y: handle(&y).clone(),
                w: handle(&w).clone(),
                s: handle(&s).clone(),
                denom: handle(&denom).clone(),
            };
            let (dx, da, db) = cubegrad_ops::context_pool::backward::<R, F>(
                &client,
                handle(&x),
                handle(&a),
                handle(&b),
                &outs,
                handle(&g),
                dims,
                p,
            );
            let bias_too = Shape::new(&[d + 1]);
            Ok((
                from_handle(dx, x.shape().clone(), dtype, device),
                from_handle(da, bias_too.clone(), dtype, device),
                from_handle(db, bias_too, dtype, device),
            ))
        })
    })
}

/// Layer norm of the rows of `x` (`cols` wide) on its device: `(y, mean, rstd)`.
pub(crate) fn layer_norm(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    cols: usize,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let x = dense(x)?;
    let (gamma, beta) = (gamma.map(dense).transpose()?, beta.map(dense).transpose()?);
    let rows = x.numel() / cols.max(1);
    let (dtype, device) = (x.dtype(), x.device());
    with_runtime!("layer_norm", device, |R, client| {
        with_cube_float!("layer_norm", dtype, |F| {
            let o = cubegrad_ops::norm::layer_norm::<R, F>(
                &client,
                handle(&x),
                gamma.as_ref().map(handle),
                beta.as_ref().map(handle),
                rows,
                cols,
                eps,
            );
            let per_row = Shape::new(&[rows]);
            Ok((
                from_handle(o.y, x.shape().clone(), dtype, device),
                from_handle(o.mean, per_row.clone(), dtype, device),
                from_handle(o.rstd, per_row, dtype, device),
            ))
        })
    })
}

/// The backward of [`layer_norm`]: `(dx, g·x̂)`, both of `x`'s shape.
pub(crate) fn layer_norm_backward(
    x: &Tensor,
    g: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    cols: usize,
) -> Result<(Tensor, Tensor)> {
    let (x, g) = (dense(x)?, dense(g)?);
    let gamma = gamma.map(dense).transpose()?;
    let rows = x.numel() / cols.max(1);
    let (dtype, device) = (x.dtype(), x.device());
    with_runtime!("layer_norm", device, |R, client| {
        with_cube_float!("layer_norm", dtype, |F| {
            let (dx, gxhat) = cubegrad_ops::norm::layer_norm_backward::<R, F>(
                &client,
                handle(&x),
                handle(&g),
                gamma.as_ref().map(handle),
                handle(mean),
                handle(rstd),
                rows,
                cols,
            );
            Ok((
                from_handle(dx, x.shape().clone(), dtype, device),
                from_handle(gxhat, x.shape().clone(), dtype, device),
            ))
        })
    })
}

/// The patch buffer `[N, G, K, L]` of `x` `[N, C, H, W]` on its device.
pub(crate) fn im2col(x: &Tensor, s: &cubegrad_ops::conv::ConvShape) -> Result<Tensor> {
    let x = dense(x)?;
    let (dtype, device) = (x.dtype(), x.device());
    let k = s.c / s.groups * s.kh * s.kw;
    let shape = Shape::new(&[s.n, s.groups, k, s.ho * s.wo]);
    with_runtime!("conv2d", device, |R, client| {
        with_cube_float!("conv2d", dtype, |F| {
            let h = cubegrad_ops::conv::im2col::<R, F>(&client, handle(&x), s);
            Ok(from_handle(h, shape, dtype, device))
        })
    })
}

/// The backward of [`im2col`]: patch gradients into `[N, C, H, W]`.
pub(crate) fn col2im(dcols: &Tensor, s: &cubegrad_ops::conv::ConvShape) -> Result<Tensor> {
    let dcols = dense(dcols)?;
    let (dtype, device) = (dcols.dtype(), dcols.device());
    let shape = Shape::new(&[s.n, s.c, s.h, s.w]);
    with_runtime!("conv2d", device, |R, client| {
        with_cube_float!("conv2d", dtype, |F| {
            let h = cubegrad_ops::conv::col2im::<R, F>(&client, handle(&dcols), s);
            Ok(from_handle(h, shape, dtype, device))
        })
    })
}

/// Max (`max`) or average pooling of `x` on its device, into `out`: the outputs and, for max
/// pooling, the i64 in-plane index of each maximum.
pub(crate) fn pool2d(
    x: &Tensor,
    s: &cubegrad_ops::pool::PoolShape,
    max: bool,
    count_include_pad: bool,
    out: Shape,
) -> Result<(Tensor, Option<Tensor>)> {
    let x = dense(x)?;
    let (dtype, device) = (x.dtype(), x.device());
    let op = if max { "max_pool2d" } else { "avg_pool2d" };
    with_runtime!(op, device, |R, client| {
        with_cube_float!(op, dtype, |F| {
            if max {
                let (y, idx) = cubegrad_ops::pool::max_pool::<R, F>(&client, handle(&x), s);
                let idx = from_handle(idx, out.clone(), DType::I64, device);
                Ok((from_handle(y, out, dtype, device), Some(idx)))
            } else {
                let y =
                    cubegrad_ops::pool::avg_pool::<R, F>(&client, handle(&x), s, count_include_pad);
                Ok((from_handle(y, out, dtype, device), None))
            }
        })
    })
}

/// The backward of [`pool2d`]: `gy` into the input's shape `from`.
pub(crate) fn pool2d_backward(
    gy: &Tensor,
    idx: Option<&Tensor>,
    s: &cubegrad_ops::pool::PoolShape,
    count_include_pad: bool,
    from: Shape,
) -> Result<Tensor> {
    let gy = dense(gy)?;
    let idx = idx.map(dense).transpose()?;
    let (dtype, device) = (gy.dtype(), gy.device());
    with_runtime!("pool2d backward", device, |R, client| {
        with_cube_float!("pool2d backward", dtype, |F| {
            let h = cubegrad_ops::pool::pool_backward::<R, F>(
                &client,
                handle(&gy),
                idx.as_ref().map(handle),
                s,
                count_include_pad,
            );
            Ok(from_handle(h, from, dtype, device))
        })
    })
}
