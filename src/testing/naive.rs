//! A deliberately simple reference: f64 arrays and the plainest possible loops, sharing no code
//! with the kernels, so that tests compare two independent implementations.

/// A row-major f64 array. Index and mask inputs are stored as f64 too (0/1 for masks).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        Array {
            shape: shape.to_vec(),
            data,
        }
    }
    pub fn from_tensor(t: &crate::Tensor) -> Self {
        Array::new(t.dims(), t.to_vec())
    }
    fn strides(shape: &[usize]) -> Vec<usize> {
        let mut s = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * shape[i + 1];
        }
        s
    }
    /// Multi-index of flat position `i`.
    pub fn unravel(shape: &[usize], mut i: usize) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        idx
    }
    pub fn at(&self, idx: &[usize]) -> f64 {
        let s = Array::strides(&self.shape);
        self.data[idx.iter().zip(&s).map(|(a, b)| a * b).sum::<usize>()]
    }
    /// Reads `self` at an output index under broadcasting (aligning trailing dims).
    fn at_broadcast(&self, out_idx: &[usize]) -> f64 {
        let off = out_idx.len() - self.shape.len();
        let idx: Vec<usize> = self
            .shape
            .iter()
            .enumerate()
            .map(|(d, &n)| if n == 1 { 0 } else { out_idx[d + off] })
            .collect();
        self.at(&idx)
    }
}

pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            if x == 1 {
                y
            } else {
                x
            }
        })
        .collect()
}

pub fn map(a: &Array, f: impl Fn(f64) -> f64) -> Array {
    Array::new(&a.shape, a.data.iter().map(|&x| f(x)).collect())
}

pub fn zip(a: &Array, b: &Array, f: impl Fn(f64, f64) -> f64) -> Array {
    let shape = broadcast_shape(&a.shape, &b.shape);
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let idx = Array::unravel(&shape, i);
            f(a.at_broadcast(&idx), b.at_broadcast(&idx))
        })
        .collect();
    Array::new(&shape, data)
}

pub fn where_(c: &Array, a: &Array, b: &Array) -> Array {
    let shape = broadcast_shape(&broadcast_shape(&a.shape, &b.shape), &c.shape);
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let idx = Array::unravel(&shape, i);
            if c.at_broadcast(&idx) != 0.0 {
                a.at_broadcast(&idx)
            } else {
                b.at_broadcast(&idx)
            }
        })
        .collect();
    Array::new(&shape, data)
}

/// `[.., m, k] @ [.., k, n]` with broadcast batch dims.
pub fn matmul(a: &Array, b: &Array) -> Array {
    let (ra, rb) = (a.shape.len(), b.shape.len());
    let (m, k, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    let batch = broadcast_shape(&a.shape[..ra - 2], &b.shape[..rb - 2]);
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let total: usize = shape.iter().product();
    let data = (0..total)
        .map(|i| {
            let idx = Array::unravel(&shape, i);
            let (bi, r, c) = (&idx[..batch.len()], idx[batch.len()], idx[batch.len() + 1]);
            (0..k)
                .map(|j| {
                    let mut ia: Vec<usize> = bi.to_vec();
                    ia.extend([r, j]);
                    let mut ib: Vec<usize> = bi.to_vec();
                    ib.extend([j, c]);
                    a.at_broadcast(&ia) * b.at_broadcast(&ib)
                })
                .sum()
        })
        .collect();
    Array::new(&shape, data)
}

/// Reduces over `axes` with `f` starting from the first element met; keeps reduced dims as 1.
pub fn reduce(a: &Array, axes: &[usize], f: impl Fn(f64, f64) -> f64) -> Array {
    let out_shape: Vec<usize> = a
        .shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    let mut out: Vec<Option<f64>> = vec![None; out_shape.iter().product()];
    let os = Array::strides(&out_shape);
    for (i, &v) in a.data.iter().enumerate() {
        let idx = Array::unravel(&a.shape, i);
        let o: usize = idx
            .iter()
            .enumerate()
            .map(|(d, &x)| if axes.contains(&d) { 0 } else { x * os[d] })
            .sum();
        out[o] = Some(match out[o] {
            None => v,
            Some(acc) => f(acc, v),
        });
    }
    Array::new(
        &out_shape,
        out.into_iter().map(|v| v.unwrap_or(0.0)).collect(),
    )
}

/// Softmax over the last axis; where `keep` is 0 the weight is 0.
pub fn softmax_last(a: &Array, keep: Option<&Array>, log: bool) -> Array {
    let r = *a.shape.last().unwrap();
    let mut data = Vec::with_capacity(a.data.len());
    for (row_i, row) in a.data.chunks(r).enumerate() {
        let kept: Vec<bool> = (0..r)
            .map(|j| keep.is_none_or(|k| k.data[row_i * r + j] != 0.0))
            .collect();
        let z: f64 = row
            .iter()
            .zip(&kept)
            .filter(|(_, &k)| k)
            .map(|(&x, _)| x.exp())
            .sum();
        for (&x, &k) in row.iter().zip(&kept) {
            data.push(match (k, log) {
                (true, false) => x.exp() / z,
                (true, true) => x - z.ln(),
                (false, false) => 0.0,
                (false, true) => f64::NEG_INFINITY,
            });
        }
    }
    Array::new(&a.shape, data)
}

pub fn permute(a: &Array, perm: &[usize]) -> Array {
    let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
    let n = a.data.len();
    let data = (0..n)
        .map(|i| {
            let out_idx = Array::unravel(&shape, i);
            let mut idx = vec![0; perm.len()];
            for (o, &p) in perm.iter().enumerate() {
                idx[p] = out_idx[o];
            }
            a.at(&idx)
        })
        .collect();
    Array::new(&shape, data)
}

/// Elements whose index along `axis` is picked by `pick(out_index)`.
pub fn take_along(
    a: &Array,
    axis: usize,
    out_len: usize,
    pick: impl Fn(&[usize]) -> usize,
) -> Array {
    let mut shape = a.shape.clone();
    shape[axis] = out_len;
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let mut idx = Array::unravel(&shape, i);
            idx[axis] = pick(&idx);
            a.at(&idx)
        })
        .collect();
    Array::new(&shape, data)
}

pub fn concat(parts: &[&Array], axis: usize) -> Array {
    let mut shape = parts[0].shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let mut idx = Array::unravel(&shape, i);
            let mut p = 0;
            while idx[axis] >= parts[p].shape[axis] {
                idx[axis] -= parts[p].shape[axis];
                p += 1;
            }
            parts[p].at(&idx)
        })
        .collect();
    Array::new(&shape, data)
}

/// Mean cross-entropy with ignore index and label smoothing, straight from the definition.
pub fn cross_entropy(logits: &Array, target: &Array, ignore: Option<i64>, smoothing: f64) -> f64 {
    let c = *logits.shape.last().unwrap();
    let logp = softmax_last(logits, None, true);
    let (mut total, mut count) = (0.0, 0);
    for (row, &t) in target.data.iter().enumerate() {
        if ignore == Some(t as i64) {
            continue;
        }
        let lp = &logp.data[row * c..(row + 1) * c];
        let q = |j: usize| {
            smoothing / c as f64
                + if j == t as usize {
                    1.0 - smoothing
                } else {
                    0.0
                }
        };
        total -= (0..c).map(|j| q(j) * lp[j]).sum::<f64>();
        count += 1;
    }
    total / count.max(1) as f64
}

/// Running sums along `axis`, one element at a time.
pub fn cumsum(x: &Array, axis: usize) -> Array {
    let r = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = x.data.clone();
    for (i, v) in out.iter_mut().enumerate() {
        let k = (i / inner) % r;
        let first = i - k * inner;
        *v = (0..=k).map(|j| x.data[first + j * inner]).sum();
    }
    Array::new(&x.shape, out)
}

/// `F.cross_entropy` in full, written from its definition: logits with the classes on axis
/// `class_axis`, targets with that axis removed, optional class weights, ignore index, label
/// smoothing and reduction. Each element's loss is `−Σ_c w_c·q_c·log p_c` with
/// `q = (1−ε)·onehot + ε/C` (PyTorch weights the smoothing term by class, too); the mean
/// divides by the summed weights of the counted targets.
pub fn cross_entropy_full(
    logits: &Array,
    target: &Array,
    class_axis: usize,
    weight: Option<&Array>,
    ignore: Option<i64>,
    smoothing: f64,
    reduction: crate::ops::Reduction,
) -> Array {
    let c = logits.shape[class_axis];
    let outer: usize = logits.shape[..class_axis].iter().product();
    let inner: usize = logits.shape[class_axis + 1..].iter().product();
    let w = |j: usize| weight.map_or(1.0, |w| w.data[j]);
    let (mut losses, mut norm) = (Vec::new(), 0.0);
    for o in 0..outer {
        for i in 0..inner {
            let t = target.data[o * inner + i];
            if ignore == Some(t as i64) {
                losses.push(0.0);
                continue;
            }
            let z: Vec<f64> = (0..c)
                .map(|j| logits.data[(o * c + j) * inner + i])
                .collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let q = |j: usize| {
                smoothing / c as f64
                    + if j == t as usize {
                        1.0 - smoothing
                    } else {
                        0.0
                    }
            };
            losses.push(-(0..c).map(|j| w(j) * q(j) * (z[j] - lse)).sum::<f64>());
            norm += w(t as usize);
        }
    }
    let total: f64 = losses.iter().sum();
    match reduction {
        crate::ops::Reduction::None => Array::new(&target.shape, losses),
        crate::ops::Reduction::Sum => Array::new(&[], vec![total]),
        crate::ops::Reduction::Mean => Array::new(&[], vec![total / norm]),
    }
}

/// The layout and options of a dense ContextPool reference (see [`context_pool`]).
#[derive(Clone, Copy, Debug)]
pub struct DensePool {
    /// Tokens on an `h × w` grid; a sequence is `h = 1`.
    pub h: usize,
    pub w: usize,
    pub stride: usize,
    pub radius: usize,
    pub causal: bool,
    pub s_min: f64,
    pub s_max: f64,
    pub normalize: bool,
    pub eps: f64,
}

/// ContextPool written straight from the spec with the full n_out × n_in matrix of weights:
/// inputs `[x [B, n, d], a [d], a0 [1], b [d], b0 [1]]`. O(n²): for tests only.
pub fn context_pool(inputs: &[Array], c: DensePool) -> Array {
    let (x, a, a0, b, b0) = (
        &inputs[0],
        &inputs[1],
        inputs[2].data[0],
        &inputs[3],
        inputs[4].data[0],
    );
    let (bsz, n, d) = (x.shape[0], x.shape[1], x.shape[2]);
    assert_eq!(n, c.h * c.w);
    let (ho, wo) = (c.h / c.stride, c.w / c.stride);
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let feat = |bt: usize, j: usize| &x.data[(bt * n + j) * d..(bt * n + j + 1) * d];
    let lin = |v: &[f64], wts: &Array, bias: f64| -> f64 {
        v.iter().zip(&wts.data).map(|(p, q)| p * q).sum::<f64>() + bias
    };
    let mut out = vec![0.0; bsz * ho * wo * d];
    for bt in 0..bsz {
        for o in 0..ho * wo {
            let (ri, ci) = (c.stride * (o / wo), c.stride * (o % wo));
            let centre = ri * c.w + ci;
            let s = c.s_min + (c.s_max - c.s_min) * sigmoid(lin(feat(bt, centre), b, b0));
            let mut u = vec![0.0; n];
            for (j, uj) in u.iter_mut().enumerate() {
                let (rj, cj) = (j / c.w, j % c.w);
                let (dr, dc) = (ri as f64 - rj as f64, ci as f64 - cj as f64);
                let inside = dr.abs() <= c.radius as f64
                    && dc.abs() <= c.radius as f64
                    && (!c.causal || j <= centre);
                if inside {
                    let wj = sigmoid(lin(feat(bt, j), a, a0));
                    *uj = wj * (-(dr * dr + dc * dc) / (2.0 * s * s)).exp();
                }
            }
            let z: f64 = if c.normalize { u.iter().sum() } else { 1.0 };
            for k in 0..d {
                let num: f64 = (0..n).map(|j| u[j] * feat(bt, j)[k]).sum();
                out[(bt * ho * wo + o) * d + k] = num / (z + c.eps);
            }
        }
    }
    Array::new(&[bsz, ho * wo, d], out)
}

/// Layer norm over the last `row` elements: inputs `[x, γ?, β?]` (γ, β with `row` elements).
pub fn layer_norm(inputs: &[Array], row: usize, eps: f64) -> Array {
    let x = &inputs[0];
    let mut out = Vec::with_capacity(x.data.len());
    for r in x.data.chunks(row) {
        let mean = r.iter().sum::<f64>() / row as f64;
        let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / row as f64;
        for (k, v) in r.iter().enumerate() {
            let mut h = (v - mean) / (var + eps).sqrt();
            if let Some(g) = inputs.get(1) {
                h *= g.data[k];
            }
            if let Some(b) = inputs.get(2) {
                h += b.data[k];
            }
            out.push(h);
        }
    }
    Array::new(&x.shape, out)
}

/// Random-feature attention written from its definition: inputs `[q [.., n, d], k [.., n, d],
/// v [.., n, e], Ω [m, d]]`; with `x' = x·d^(-1/4)` and `l_f(x) = Ω_f·x' − |x'|²/2`,
/// `φ(q) = exp(l(q) − max_f l_f(q)) + 10⁻⁴` and `φ(k) = exp(l(k) − max over all keys and
/// features) + 10⁻⁴` (Performer's stabilisers and ε), no chunks; each query's output the
/// φ-weighted mean of the values it sees.
pub fn random_feature_attention(inputs: &[Array], causal: bool) -> Array {
    let (q, k, v, w) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
    let r = q.shape.len();
    let (n, d, e, m) = (q.shape[r - 2], q.shape[r - 1], v.shape[r - 1], w.shape[0]);
    let batches = q.data.len() / (n * d);
    let logits = |x: &[f64]| -> Vec<f64> {
        let x: Vec<f64> = x.iter().map(|a| a * (d as f64).powf(-0.25)).collect();
        let sq: f64 = x.iter().map(|a| a * a).sum::<f64>() / 2.0;
        (0..m)
            .map(|f| (0..d).map(|c| w.data[f * d + c] * x[c]).sum::<f64>() - sq)
            .collect()
    };
    let features =
        |l: &[f64], max: f64| -> Vec<f64> { l.iter().map(|x| (x - max).exp() + 1e-4).collect() };
    let phi_rows = |rows: Vec<Vec<f64>>, per_row: bool| -> Vec<Vec<f64>> {
        let all = rows
            .iter()
            .flatten()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        rows.iter()
            .map(|l| {
                let max = if per_row {
                    l.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    all
                };
                features(l, max)
            })
            .collect()
    };
    let mut out = Vec::with_capacity(batches * n * e);
    for b in 0..batches {
        let row = |a: &Array, i: usize| a.data[(b * n + i) * d..(b * n + i + 1) * d].to_vec();
        let fk = phi_rows((0..n).map(|j| logits(&row(k, j))).collect(), false);
        let fqs = phi_rows((0..n).map(|i| logits(&row(q, i))).collect(), true);
        for (i, fq) in fqs.iter().enumerate() {
            let seen = if causal { i + 1 } else { n };
            let weights: Vec<f64> = (0..seen)
                .map(|j| fq.iter().zip(&fk[j]).map(|(a, b)| a * b).sum())
                .collect();
            let z: f64 = weights.iter().sum();
            for c in 0..e {
                let s: f64 = (0..seen)
                    .map(|j| weights[j] * v.data[(b * n + j) * e + c])
                    .sum();
                out.push(s / z);
            }
        }
    }
    let mut shape = q.shape.clone();
    shape[r - 1] = e;
    Array::new(&shape, out)
}

/// FLASH's mixed chunk attention written from its definition: inputs `[quad_q, quad_k,
/// lin_q, lin_k [.., n, s], v [.., n, e], bias [C, C]]` (the bias optional). Query `i` in
/// chunk `g`: `Σ relu(q·k/C + b)² v` over its chunk's keys (up to `i` when causal) plus the
/// mean of `(q'·k') v` over the tokens of earlier chunks (causal) or of all tokens.
pub fn mixed_chunk_attention(inputs: &[Array], chunk: usize, causal: bool) -> Array {
    let (qq, qk, lq, lk, v) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4]);
    let bias = inputs.get(5);
    let r = qq.shape.len();
    let (n, s, e) = (qq.shape[r - 2], qq.shape[r - 1], v.shape[r - 1]);
    let batches = qq.data.len() / (n * s);
    let mut out = Vec::with_capacity(batches * n * e);
    for b in 0..batches {
        let dot = |x: &Array, i: usize, y: &Array, j: usize| -> f64 {
            (0..s)
                .map(|c| x.data[(b * n + i) * s + c] * y.data[(b * n + j) * s + c])
                .sum()
        };
        for i in 0..n {
            let g = i / chunk;
            let mut acc = vec![0.0; e];
            for j in g * chunk..((g + 1) * chunk).min(n) {
                if causal && j > i {
                    continue;
                }
                let bij = bias.map_or(0.0, |w| w.data[(i % chunk) * chunk + j % chunk]);
                let a = (dot(qq, i, qk, j) / chunk as f64 + bij).max(0.0).powi(2);
                for (c, o) in acc.iter_mut().enumerate() {
                    *o += a * v.data[(b * n + j) * e + c];
                }
            }
            let seen = if causal { 0..g * chunk } else { 0..n };
            let count = seen.len();
            for j in seen {
                let a = dot(lq, i, lk, j) / count as f64;
                for (c, o) in acc.iter_mut().enumerate() {
                    *o += a * v.data[(b * n + j) * e + c];
                }
            }
            out.extend(acc);
        }
    }
    let mut shape = qq.shape.clone();
    shape[r - 1] = e;
    Array::new(&shape, out)
}

/// Transformer-XL's relative attention from its definition: inputs `[q [.., h, L, e],
/// k, v [.., h, K, e], r [h, K, e], u [h, e], v_bias [h, e]]`, with `r`'s row `t` the encoding
/// of distance `K − 1 − t`; query `i` (at position `K − L + i`) scores key `j ≤ K − L + i` by
/// `((q_i + u)·k_j + (q_i + v_bias)·r_{dist}) / √e`.
pub fn relative_attention(inputs: &[Array]) -> Array {
    let (q, k, v, r, u, vb) = (
        &inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], &inputs[5],
    );
    let rank = q.shape.len();
    let (h, l, e, kl) = (
        q.shape[rank - 3],
        q.shape[rank - 2],
        q.shape[rank - 1],
        k.shape[rank - 2],
    );
    let mem = kl - l;
    let groups = q.data.len() / (l * e);
    let mut out = Vec::with_capacity(q.data.len());
    for g in 0..groups {
        let head = g % h;
        let qrow = |i: usize, c: usize| q.data[(g * l + i) * e + c];
        let krow = |j: usize, c: usize| k.data[(g * kl + j) * e + c];
        for i in 0..l {
            let seen = mem + i + 1;
            let scores: Vec<f64> = (0..seen)
                .map(|j| {
                    let t = kl - 1 - (mem + i - j);
                    (0..e)
                        .map(|c| {
                            (qrow(i, c) + u.data[head * e + c]) * krow(j, c)
                                + (qrow(i, c) + vb.data[head * e + c])
                                    * r.data[(head * kl + t) * e + c]
                        })
                        .sum::<f64>()
                        / (e as f64).sqrt()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = w.iter().sum();
            for c in 0..e {
                out.push(
                    (0..seen)
                        .map(|j| w[j] / z * v.data[(g * kl + j) * e + c])
                        .sum(),
                );
            }
        }
    }
    Array::new(&q.shape, out)
}

/// Reformer's LSH attention written as the softmax over the union of a query's windows:
/// inputs `[qk [.., n, d], v [.., n, e], rotations [R, d, b/2]]`. Each round hashes every
/// token to `argmax([x·R; −x·R])`, sorts by (bucket, position), cuts chunks of `chunk`; a
/// query's window is its chunk and the one before (cyclic). Its output is the softmax of
/// `q_i·q_j/|q_j|` over the keys in any of its windows, each once, minus `10⁵` for itself,
/// without later keys when causal.
pub fn lsh_attention(inputs: &[Array], chunk: usize, causal: bool) -> Array {
    let (qk, v, rot) = (&inputs[0], &inputs[1], &inputs[2]);
    let r = qk.shape.len();
    let (n, d, e) = (qk.shape[r - 2], qk.shape[r - 1], v.shape[r - 1]);
    let (rounds, half) = (rot.shape[0], rot.shape[2]);
    let groups = qk.data.len() / (n * d);
    let chunks = n / chunk;
    let mut out = Vec::with_capacity(groups * n * e);
    for g in 0..groups {
        let row = |i: usize| &qk.data[(g * n + i) * d..(g * n + i + 1) * d];
        // The union of every query's windows.
        let mut union: Vec<Vec<bool>> = vec![vec![false; n]; n];
        for round in 0..rounds {
            let bucket = |i: usize| -> usize {
                let proj: Vec<f64> = (0..half)
                    .map(|b| {
                        (0..d)
                            .map(|c| row(i)[c] * rot.data[(round * d + c) * half + b])
                            .sum()
                    })
                    .collect();
                let mut best = (f64::NEG_INFINITY, 0);
                for (b, &x) in proj.iter().enumerate() {
                    if x > best.0 {
                        best = (x, b);
                    }
                }
                for (b, &x) in proj.iter().enumerate() {
                    if -x > best.0 {
                        best = (-x, half + b);
                    }
                }
                best.1
            };
            let mut sorted: Vec<usize> = (0..n).collect();
            sorted.sort_by_key(|&i| (bucket(i), i));
            for (slot, &i) in sorted.iter().enumerate() {
                let ch = slot / chunk;
                for other in [ch, (ch + chunks - 1) % chunks] {
                    for &j in &sorted[other * chunk..(other + 1) * chunk] {
                        union[i][j] = true;
                    }
                }
            }
        }
        for (i, reached) in union.iter().enumerate() {
            let keys: Vec<usize> = (0..n)
                .filter(|&j| reached[j] && (!causal || j <= i))
                .collect();
            let scores: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    let norm = row(j).iter().map(|x| x * x).sum::<f64>().sqrt();
                    let s: f64 = (0..d).map(|c| row(i)[c] * row(j)[c]).sum::<f64>() / norm;
                    if j == i {
                        s - 1e5
                    } else {
                        s
                    }
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = w.iter().sum();
            for c in 0..e {
                out.push(
                    keys.iter()
                        .zip(&w)
                        .map(|(&j, wj)| wj / z * v.data[(g * n + j) * e + c])
                        .sum(),
                );
            }
        }
    }
    let mut shape = qk.shape.clone();
    shape[r - 1] = e;
    Array::new(&shape, out)
}

/// LARA from its definition (`ops::lara`): inputs `[q, k [.., n, d], v [.., n, e], noise
/// [.., C, d]]`, everything per query in plain loops over proposals and keys.
pub fn lara_attention(inputs: &[Array]) -> Array {
    let (q, k, v, noise) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
    let r = q.shape.len();
    let (n, d, e, c) = (
        q.shape[r - 2],
        q.shape[r - 1],
        v.shape[r - 1],
        noise.shape[r - 2],
    );
    let groups = q.data.len() / (n * d);
    let scale = (d as f64).powf(-0.25);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let lse = |xs: &[f64]| {
        let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    };
    let mut out = Vec::with_capacity(groups * n * e);
    for g in 0..groups {
        let row = |a: &Array, i: usize| a.data[(g * n + i) * d..(g * n + i + 1) * d].to_vec();
        // Segment c: tokens [start_c, start_c + len_c), the first n mod C one longer.
        let (base, extra) = (n / c, n % c);
        let mut bounds = Vec::new();
        let mut start = 0;
        for s in 0..c {
            let len = base + usize::from(s < extra);
            bounds.push((start, len));
            start += len;
        }
        let mean = |a: &Array, (s, len): (usize, usize)| -> Vec<f64> {
            (0..d)
                .map(|j| (s..s + len).map(|i| row(a, i)[j]).sum::<f64>() / len as f64)
                .collect()
        };
        let q_bar: Vec<Vec<f64>> = bounds.iter().map(|&b| mean(q, b)).collect();
        let k_bar: Vec<Vec<f64>> = bounds.iter().map(|&b| mean(k, b)).collect();
        let mu: Vec<Vec<f64>> = (0..c)
            .map(|s| {
                (0..d)
                    .map(|j| scale * (q_bar[s][j] + k_bar[s][j]))
                    .collect()
            })
            .collect();
        let omega: Vec<Vec<f64>> = (0..c)
            .map(|s| {
                (0..d)
                    .map(|j| mu[s][j] + noise.data[(g * c + s) * d + j])
                    .collect()
            })
            .collect();
        let log_xi = |x: &[f64], w: &[f64]| {
            let xs: Vec<f64> = x.iter().map(|a| a * scale).collect();
            dot(w, &xs) - dot(&xs, &xs) / 2.0
        };
        let log_prop = |w: &[f64], m: &[f64]| dot(w, m) - dot(m, m) / 2.0;
        // Per sample: f(ω_c), log Σ_m ξ(k_m, ω_c), log q_c(ω_c), the balance heuristic.
        let mut f = vec![vec![0.0; e]; c];
        let (mut log_sum_k, mut own, mut balance) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        for s in 0..c {
            let lk: Vec<f64> = (0..n).map(|m| log_xi(&row(k, m), &omega[s])).collect();
            log_sum_k[s] = lse(&lk);
            for (m, l) in lk.iter().enumerate() {
                let w = (l - log_sum_k[s]).exp();
                for (j, fj) in f[s].iter_mut().enumerate() {
                    *fj += w * v.data[(g * n + m) * e + j];
                }
            }
            own[s] = log_prop(&omega[s], &mu[s]);
            let all: Vec<f64> = (0..c).map(|t| log_prop(&omega[s], &mu[t])).collect();
            balance[s] = (own[s] - lse(&all)).exp();
        }
        for i in 0..n {
            let qi = row(q, i);
            let scores: Vec<f64> = (0..c)
                .map(|s| dot(&qi, &q_bar[s]) / (d as f64).sqrt())
                .collect();
            let z = lse(&scores);
            let r_n: Vec<f64> = scores.iter().map(|x| (x - z).exp()).collect();
            let r_mean = r_n.iter().sum::<f64>() / c as f64;
            let logits: Vec<f64> = (0..c)
                .map(|s| {
                    let alpha = (balance[s] + r_n[s] - r_mean).max(1e-8);
                    alpha.ln() + log_xi(&qi, &omega[s]) + log_sum_k[s] - own[s]
                })
                .collect();
            let zl = lse(&logits);
            let weights: Vec<f64> = logits.iter().map(|l| (l - zl).exp()).collect();
            out.extend((0..e).map(|j| (0..c).map(|s| weights[s] * f[s][j]).sum::<f64>()));
        }
    }
    let mut shape = q.shape.clone();
    shape[r - 1] = e;
    Array::new(&shape, out)
}

/// MRA from its definition (`ops::mra_attention`): inputs `[q, k [.., n, d], v [.., n, e]]`;
/// blocks of `block` tokens, the `refined` blocks with the largest `S̃_IJ + ln |J|` exact, the
/// others by their means.
pub fn mra_attention(inputs: &[Array], block: usize, refined: usize) -> Array {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let r = q.shape.len();
    let (n, d, e) = (q.shape[r - 2], q.shape[r - 1], v.shape[r - 1]);
    let groups = q.data.len() / (n * d);
    let nb = n.div_ceil(block);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = Vec::with_capacity(groups * n * e);
    for g in 0..groups {
        let row =
            |a: &Array, w: usize, i: usize| a.data[(g * n + i) * w..(g * n + i + 1) * w].to_vec();
        let members = |j: usize| (j * block)..((j + 1) * block).min(n);
        let mean = |a: &Array, j: usize| -> Vec<f64> {
            let m = members(j);
            let len = m.len() as f64;
            (0..d)
                .map(|c| m.clone().map(|i| row(a, d, i)[c]).sum::<f64>() / len)
                .collect()
        };
        let q_bar: Vec<Vec<f64>> = (0..nb).map(|j| mean(q, j)).collect();
        let k_bar: Vec<Vec<f64>> = (0..nb).map(|j| mean(k, j)).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for i in 0..n {
            let big_i = i / block;
            let coarse: Vec<f64> = (0..nb)
                .map(|j| dot(&q_bar[big_i], &k_bar[j]) * scale)
                .collect();
            let mut order: Vec<usize> = (0..nb).collect();
            let mass = |j: usize| coarse[j] + (members(j).len() as f64).ln();
            order.sort_by(|&a, &c| mass(c).total_cmp(&mass(a)).then(a.cmp(&c)));
            let fine: Vec<usize> = order[..refined.min(nb)].to_vec();
            let (mut num, mut den) = (vec![0.0; e], 0.0);
            for (j, &coarse_j) in coarse.iter().enumerate() {
                if fine.contains(&j) {
                    for t in members(j) {
                        let w = (dot(&row(q, d, i), &row(k, d, t)) * scale).exp();
                        den += w;
                        for (c, x) in num.iter_mut().enumerate() {
                            *x += w * row(v, e, t)[c];
                        }
                    }
                } else {
                    let w = coarse_j.exp();
                    den += w * members(j).len() as f64;
                    for t in members(j) {
                        for (c, x) in num.iter_mut().enumerate() {
                            *x += w * row(v, e, t)[c];
                        }
                    }
                }
            }
            out.extend(num.iter().map(|x| x / den));
        }
    }
    let mut shape = q.shape.clone();
    shape[r - 1] = e;
    Array::new(&shape, out)
}

/// Scaled dot-product attention: inputs `[q [.., L, E], k [.., S, E], v [.., S, Ev]]` with
/// the same leading dims, an optional keep-mask (`keep`, 1 = attend) and additive mask
/// (`add`), each `[L, S]` or the scores' full shape, and causal masking. A row with nothing to attend to is zero.
pub fn sdpa(inputs: &[Array], keep: Option<&Array>, add: Option<&Array>, causal: bool) -> Array {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let r = q.shape.len();
    let (l, e) = (q.shape[r - 2], q.shape[r - 1]);
    let (s, ev) = (k.shape[r - 2], v.shape[r - 1]);
    let batches = q.data.len() / (l * e);
    let scale = 1.0 / (e as f64).sqrt();
    let mut out = Vec::with_capacity(batches * l * ev);
    for b in 0..batches {
        for i in 0..l {
            let mut scores = vec![f64::NEG_INFINITY; s];
            for (j, sc) in scores.iter_mut().enumerate() {
                let at = |m: &Array| {
                    let per_batch = if m.data.len() == batches * l * s {
                        b * l * s
                    } else {
                        0
                    };
                    m.data[per_batch + i * s + j]
                };
                let allowed = keep.is_none_or(|m| at(m) != 0.0) && (!causal || j <= i);
                if allowed {
                    let dot: f64 = (0..e)
                        .map(|c| q.data[(b * l + i) * e + c] * k.data[(b * s + j) * e + c])
                        .sum();
                    *sc = dot * scale + add.map_or(0.0, at);
                }
            }
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores
                .iter()
                .map(|&x| {
                    if m == f64::NEG_INFINITY {
                        0.0
                    } else {
                        (x - m).exp()
                    }
                })
                .collect();
            let z: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            for c in 0..ev {
                out.push(
                    (0..s)
                        .map(|j| w[j] / z * v.data[(b * s + j) * ev + c])
                        .sum(),
                );
            }
        }
    }
    let mut shape = q.shape.clone();
    shape[r - 1] = ev;
    Array::new(&shape, out)
}

/// Direct 2-D convolution: inputs `[x [N, C, H, W], w [O, C/g, kh, kw], b? [O]]`.
pub fn conv2d(
    inputs: &[Array],
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Array {
    let (x, w) = (&inputs[0], &inputs[1]);
    let (n, h, wd) = (x.shape[0], x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let ho = (h + 2 * padding.0 - dilation.0 * (kh - 1) - 1) / stride.0 + 1;
    let wo = (wd + 2 * padding.1 - dilation.1 * (kw - 1) - 1) / stride.1 + 1;
    let og = o / groups;
    let mut out = Vec::with_capacity(n * o * ho * wo);
    for s in 0..n {
        for oc in 0..o {
            let gi = oc / og;
            for y in 0..ho {
                for xo in 0..wo {
                    let mut acc = inputs.get(2).map_or(0.0, |b| b.data[oc]);
                    for cl in 0..cg {
                        let ch = gi * cg + cl;
                        for i in 0..kh {
                            for j in 0..kw {
                                let yy =
                                    (y * stride.0 + i * dilation.0) as isize - padding.0 as isize;
                                let xx =
                                    (xo * stride.1 + j * dilation.1) as isize - padding.1 as isize;
                                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                    acc += x.at(&[s, ch, yy as usize, xx as usize])
                                        * w.at(&[oc, cl, i, j]);
                                }
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    Array::new(&[n, o, ho, wo], out)
}

/// Max (`avg = None`) or average (`avg = Some(count_include_pad)`) pooling of `[.., H, W]`.
pub fn pool2d(
    x: &Array,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    avg: Option<bool>,
) -> Array {
    pool2d_full(x, kernel, stride, padding, false, avg.map(|c| (c, None)))
}

/// Pooling with all of PyTorch's arguments: `ceil_mode`, and for average pooling
/// `avg = Some((count_include_pad, divisor_override))`. With `ceil_mode` the output size is
/// `ceil((n + 2p − k) / s) + 1`, less one when the last window would start at or beyond
/// `n + p` (PyTorch's rule).
pub fn pool2d_full(
    x: &Array,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
    avg: Option<(bool, Option<usize>)>,
) -> Array {
    let r = x.shape.len();
    let (h, w) = (x.shape[r - 2], x.shape[r - 1]);
    let size = |n: usize, k: usize, s: usize, p: usize| {
        let span = (n + 2 * p - k) as f64 / s as f64;
        let mut out = if ceil_mode { span.ceil() } else { span.floor() } as usize + 1;
        if ceil_mode && (out - 1) * s >= n + p {
            out -= 1;
        }
        out
    };
    let ho = size(h, kernel.0, stride.0, padding.0);
    let wo = size(w, kernel.1, stride.1, padding.1);
    let mut out = Vec::new();
    for plane in x.data.chunks(h * w) {
        for oy in 0..ho {
            for ox in 0..wo {
                let (mut best, mut sum, mut inside) = (f64::NEG_INFINITY, 0.0, 0usize);
                let mut padded = 0usize;
                for i in 0..kernel.0 {
                    for j in 0..kernel.1 {
                        let yy = (oy * stride.0 + i) as isize - padding.0 as isize;
                        let xx = (ox * stride.1 + j) as isize - padding.1 as isize;
                        let in_pad = yy < (h + padding.0) as isize && xx < (w + padding.1) as isize;
                        if in_pad {
                            padded += 1;
                        }
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            let v = plane[yy as usize * w + xx as usize];
                            best = best.max(v);
                            sum += v;
                            inside += 1;
                        }
                    }
                }
                out.push(match avg {
                    None => best,
                    Some((_, Some(d))) => sum / d as f64,
                    Some((true, None)) => sum / padded as f64,
                    Some((false, None)) => sum / inside as f64,
                });
            }
        }
    }
    let mut shape = x.shape.clone();
    shape[r - 2] = ho;
    shape[r - 1] = wo;
    Array::new(&shape, out)
}

/// Batch norm of `[N, C, H, W]` with the batch's statistics (`stats = None`) or given
/// per-channel `(mean, var)`; inputs `[x, γ, β]`.
pub fn batch_norm(inputs: &[Array], stats: Option<(f64, f64)>, eps: f64) -> Array {
    let x = &inputs[0];
    let (n, c) = (x.shape[0], x.shape[1]);
    let l = x.data.len() / (n * c);
    let mut out = x.data.clone();
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|s| x.data[(s * c + ch) * l..(s * c + ch + 1) * l].to_vec())
            .collect();
        let (mean, var) = stats.unwrap_or_else(|| {
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            (
                m,
                vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64,
            )
        });
        for s in 0..n {
            for k in 0..l {
                let i = (s * c + ch) * l + k;
                out[i] = (x.data[i] - mean) / (var + eps).sqrt() * inputs[1].data[ch]
                    + inputs[2].data[ch];
            }
        }
    }
    Array::new(&x.shape, out)
}

/// A GRU layer, PyTorch's equations element by element: inputs `[x [B, T, I], h0 [B, H],
/// w_ih [3H, I], w_hh [3H, H], b_ih [3H], b_hh [3H]]` → every hidden state `[B, T, H]`.
pub fn gru(inputs: &[Array]) -> Array {
    let (x, h0, w_ih, w_hh, b_ih, b_hh) = (
        &inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], &inputs[5],
    );
    let (b, t, i_size, hs) = (x.shape[0], x.shape[1], x.shape[2], h0.shape[1]);
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mut out = Vec::with_capacity(b * t * hs);
    for bi in 0..b {
        let mut h: Vec<f64> = h0.data[bi * hs..(bi + 1) * hs].to_vec();
        for ti in 0..t {
            let xt = &x.data[(bi * t + ti) * i_size..(bi * t + ti + 1) * i_size];
            // Row `r` of W_ih x + b_ih, and of W_hh h + b_hh.
            let gi = |r: usize| {
                b_ih.data[r]
                    + (0..i_size)
                        .map(|k| w_ih.data[r * i_size + k] * xt[k])
                        .sum::<f64>()
            };
            let gh = |r: usize, h: &[f64]| {
                b_hh.data[r] + (0..hs).map(|k| w_hh.data[r * hs + k] * h[k]).sum::<f64>()
            };
            let next: Vec<f64> = (0..hs)
                .map(|j| {
                    let r = sigmoid(gi(j) + gh(j, &h));
                    let z = sigmoid(gi(hs + j) + gh(hs + j, &h));
                    let n = (gi(2 * hs + j) + r * gh(2 * hs + j, &h)).tanh();
                    (1.0 - z) * n + z * h[j]
                })
                .collect();
            h = next;
            out.extend_from_slice(&h);
        }
    }
    Array::new(&[b, t, hs], out)
}
