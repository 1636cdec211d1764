//! Every CubeCL kernel of `cubegrad-ops` launched directly, against its CPU twin (cubegrad's
//! CPU backend), on random inputs of odd sizes: 1-sized and broadcast dims, strided views,
//! and more elements than one cube holds. The checks are written once, generic over the
//! runtime, and instantiated per runtime feature (`wgpu`, `cuda`). The unary functions are
//! checked through the table that maps them to their kernels (`ops.rs`).

use cubegrad::ops::CrossEntropyOptions;
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{manual_seed, Tensor};
use cubegrad_ops::cubecl::prelude::*;
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::{
    binary, context_pool, index, layout, loss, matmul, matmul_cubek, optim, random, reduce, softmax,
};

/// Per-op tolerances of f32 kernels against the CPU's f32 results.
const EXACT_ISH: Tolerance = Tolerance {
    rel: 1e-6,
    abs: 1e-7,
};
/// exp, log, tanh: the GPU's and the CPU's approximations differ by a few ulps.
const TRANSCENDENTAL: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 1e-6,
};
/// Sums in a different order: relative error grows with the row length.
const REDUCTION: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 1e-5,
};
/// ContextPool: window sums of exps in another order, and gradients summed over windows.
const POOL: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 1e-5,
};
const MATMUL: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 1e-5,
};

fn upload<R: Runtime>(client: &ComputeClient<R>, t: &Tensor) -> Handle {
    client.create_from_slice(f32::as_bytes(&t.contiguous().to_vec::<f32>()))
}

fn download<R: Runtime>(client: &ComputeClient<R>, h: Handle) -> Vec<f64> {
    let bytes = client.read_one(h).expect("read back");
    f32::from_bytes(&bytes).iter().map(|&v| v as f64).collect()
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Strides of `shape` (right-aligned) broadcast to `out` (0 along broadcast dims).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = row_major(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|d| {
            if d < off || shape[d - off] == 1 {
                0
            } else {
                own[d - off]
            }
        })
        .collect()
}

fn binary<R: Runtime>(client: &ComputeClient<R>) {
    let cases: [(&[usize], &[usize], &[usize]); 3] = [
        (&[3, 1, 5], &[4, 5], &[3, 4, 5]),
        (&[7, 301], &[301], &[7, 301]),
        (&[1], &[2, 1, 3], &[2, 1, 3]),
    ];
    for (sa, sb, out) in cases {
        let a = Tensor::randn(sa, 0.0, 1.0);
        let b = Tensor::rand_uniform(sb, 0.5, 2.0);
        let (ha, hb) = (upload(client, &a), upload(client, &b));
        type Launch<R> = fn(&ComputeClient<R>, &layout::View, &layout::View, &[usize]) -> Handle;
        let ops: [(&str, Launch<R>, Tensor); 4] = [
            ("add", binary::binary::<R, f32, binary::Add>, a.add(&b)),
            ("sub", binary::binary::<R, f32, binary::Sub>, a.sub(&b)),
            ("mul", binary::binary::<R, f32, binary::Mul>, a.mul(&b)),
            ("div", binary::binary::<R, f32, binary::Div>, a.div(&b)),
        ];
        for (op, launch, want) in ops {
            let (stra, strb) = (broadcast_strides(sa, out), broadcast_strides(sb, out));
            let va = layout::View {
                handle: &ha,
                len: a.numel(),
                strides: &stra,
                offset: 0,
            };
            let vb = layout::View {
                handle: &hb,
                len: b.numel(),
                strides: &strb,
                offset: 0,
            };
            let h = launch(client, &va, &vb, out);
            assert_close(
                &download(client, h),
                &want.to_vec::<f64>(),
                EXACT_ISH,
                &format!("{op} {sa:?} {sb:?}"),
            );
        }
    }
}

fn layout<R: Runtime>(client: &ComputeClient<R>) {
    let x = Tensor::randn([3, 4, 5], 0.0, 1.0);
    let hx = upload(client, &x);
    // A permutation, read through the permuted strides.
    let p = x.permute(&[2, 0, 1]);
    let strides = [1, 20, 5];
    let view = layout::View {
        handle: &hx,
        len: 60,
        strides: &strides,
        offset: 0,
    };
    let h = layout::contiguous::<R, f32>(client, p.dims(), &view);
    assert_close(
        &download(client, h),
        &p.contiguous().to_vec::<f64>(),
        EXACT_ISH,
        "permute",
    );
    // A narrow along the middle axis: an offset.
    let n = x.narrow(1, 1, 2);
    let view = layout::View {
        handle: &hx,
        len: 60,
        strides: &[20, 5, 1],
        offset: 5,
    };
    let h = layout::contiguous::<R, f32>(client, n.dims(), &view);
    assert_close(
        &download(client, h),
        &n.contiguous().to_vec::<f64>(),
        EXACT_ISH,
        "narrow",
    );
    // Concatenation along the last axis.
    let y = Tensor::randn([3, 4, 2], 0.0, 1.0);
    let hy = upload(client, &y);
    let (h, shape) = layout::concat::<R, f32>(client, &[(&hx, &[3, 4, 5]), (&hy, &[3, 4, 2])], 2);
    assert_eq!(shape, vec![3, 4, 7]);
    assert_close(
        &download(client, h),
        &Tensor::concat(&[&x, &y], 2).to_vec::<f64>(),
        EXACT_ISH,
        "concat",
    );
}

fn reduce<R: Runtime>(client: &ComputeClient<R>) {
    for (rows, cols) in [(37, 301), (1, 1), (5, 1), (2, 1000)] {
        let x = Tensor::randn([rows, cols], 0.0, 1.0);
        let hx = upload(client, &x);
        type Launch<R> = fn(&ComputeClient<R>, &Handle, usize, usize) -> Handle;
        let ops: [(&str, Launch<R>, Tensor); 3] = [
            (
                "sum",
                reduce::reduce_rows::<R, f32, reduce::Sum>,
                x.sum_axes(&[1], false),
            ),
            (
                "max",
                reduce::reduce_rows::<R, f32, reduce::Max>,
                x.max_axes(&[1], false),
            ),
            (
                "min",
                reduce::reduce_rows::<R, f32, reduce::Min>,
                x.min_axes(&[1], false),
            ),
        ];
        for (op, launch, want) in ops {
            let h = launch(client, &hx, rows, cols);
            assert_close(
                &download(client, h),
                &want.to_vec::<f64>(),
                REDUCTION,
                &format!("{op} [{rows}, {cols}]"),
            );
        }
    }
}

fn softmax<R: Runtime>(client: &ComputeClient<R>) {
    for (rows, cols) in [(13, 257), (3, 1), (2, 700)] {
        let x = Tensor::randn([rows, cols], 0.0, 2.0);
        let g = Tensor::randn([rows, cols], 0.0, 1.0);
        let hx = upload(client, &x);
        for log in [false, true] {
            let xg = x.clone().with_grad();
            let y_cpu = if log {
                xg.log_softmax(-1)
            } else {
                xg.softmax(-1)
            };
            let dx_cpu = y_cpu.backward_with(&g).get(&xg).unwrap().to_vec::<f64>();
            let y = softmax::softmax_rows::<R, f32>(client, &hx, None, rows, cols, log);
            let dx = softmax::softmax_rows_backward::<R, f32>(
                client,
                &y,
                &upload(client, &g),
                rows,
                cols,
                log,
            );
            let what = if log { "log_softmax" } else { "softmax" };
            assert_close(
                &download(client, y),
                &y_cpu.to_vec::<f64>(),
                TRANSCENDENTAL,
                what,
            );
            assert_close(&download(client, dx), &dx_cpu, TRANSCENDENTAL, what);
        }
        // Masked, with one row fully masked (all zeros on both sides).
        let keep: Vec<bool> = (0..rows * cols).map(|i| i >= cols && i % 3 != 0).collect();
        let mask_cpu = Tensor::from_vec(keep.clone(), [rows, cols]);
        let mask: Vec<u32> = keep.iter().map(|&k| u32::from(k)).collect();
        let hm = client.create_from_slice(u32::as_bytes(&mask));
        let y = softmax::softmax_rows::<R, f32>(client, &hx, Some(&hm), rows, cols, false);
        assert_close(
            &download(client, y),
            &x.masked_softmax(&mask_cpu, -1).to_vec::<f64>(),
            TRANSCENDENTAL,
            "masked softmax",
        );
    }
}

fn matmul<R: Runtime>(client: &ComputeClient<R>) {
    // [3, 17, 33] @ [33, 19]: B broadcast over the batch (batch stride 0).
    let a = Tensor::randn([3, 17, 33], 0.0, 1.0);
    let b = Tensor::randn([33, 19], 0.0, 1.0);
    let (ha, hb) = (upload(client, &a), upload(client, &b));
    let sa = matmul::Strides {
        row: 33,
        col: 1,
        batch: 17 * 33,
        offset: 0,
    };
    let sb = matmul::Strides {
        row: 19,
        col: 1,
        batch: 0,
        offset: 0,
    };
    let h = matmul::matmul::<R, f32>(
        client,
        &ha,
        a.numel(),
        sa,
        &hb,
        b.numel(),
        sb,
        3,
        17,
        33,
        19,
    );
    assert_close(
        &download(client, h),
        &a.matmul(&b).to_vec::<f64>(),
        MATMUL,
        "batched matmul",
    );
    // A @ Bᵀ with B stored [19, 33]: read through swapped strides.
    let bt = Tensor::randn([19, 33], 0.0, 1.0);
    let sbt = matmul::Strides {
        row: 1,
        col: 33,
        batch: 0,
        offset: 0,
    };
    let h = matmul::matmul::<R, f32>(
        client,
        &ha,
        a.numel(),
        sa,
        &upload(client, &bt),
        bt.numel(),
        sbt,
        3,
        17,
        33,
        19,
    );
    assert_close(
        &download(client, h),
        &a.matmul(&bt.t()).to_vec::<f64>(),
        MATMUL,
        "matmul with a transposed view",
    );
}

/// cubek-matmul, which the backend prefers: it must take these problems (a `None` would
/// mean every device matmul silently ran on the fallback) and match the CPU. Shapes are odd
/// and larger than its tiles; operands are batch-broadcast or transposed through strides.
fn matmul_cubek<R: Runtime>(client: &ComputeClient<R>) {
    let (batch, m, k, n) = (3, 37, 129, 65);
    let a = Tensor::randn([batch, m, k], 0.0, 1.0);
    let b = Tensor::randn([k, n], 0.0, 1.0);
    let bt = Tensor::randn([n, k], 0.0, 1.0);
    let st = |row, col, batch, offset| matmul::Strides {
        row,
        col,
        batch,
        offset,
    };
    let sa = st(k, 1, m * k, 0);
    let (ha, hb, hbt) = (upload(client, &a), upload(client, &b), upload(client, &bt));
    let cases = [
        ("batch-broadcast rhs", &hb, st(n, 1, 0, 0), a.matmul(&b)),
        ("transposed rhs", &hbt, st(1, k, 0, 0), a.matmul(&bt.t())),
    ];
    for (name, h, sb, want) in cases {
        let got = matmul_cubek::matmul::<R, f32>(client, &ha, sa, h, sb, batch, m, k, n)
            .unwrap_or_else(|| panic!("cubek-matmul declined the {name} case"));
        assert_close(
            &download(client, got),
            &want.to_vec::<f64>(),
            MATMUL,
            &format!("cubek-matmul, {name}"),
        );
    }
    // An operand that starts inside its buffer is left to the fallback kernel.
    let big = upload(client, &Tensor::randn([m + 4, k], 0.0, 1.0));
    let hb2 = (&hb, st(n, 1, 0, 0));
    let offset =
        matmul_cubek::matmul::<R, f32>(client, &big, st(k, 1, 0, 4 * k), hb2.0, hb2.1, 1, m, k, n);
    assert!(offset.is_none(), "an offset operand goes to the fallback");
}

/// The device passes the kernels' requirements, and one with fewer units per cube or less
/// shared memory is refused with the limit named.
fn device_limits<R: Runtime>(client: &ComputeClient<R>) {
    let props = client.properties();
    assert_eq!(cubegrad_ops::check_device(props), Ok(()));
    let mut small = props.clone();
    small.hardware.max_units_per_cube = 64;
    let err = cubegrad_ops::check_device(&small).unwrap_err();
    assert!(err.contains("256 units per cube"), "{err}");
    let mut small = props.clone();
    small.hardware.max_shared_memory_size = 1024;
    let err = cubegrad_ops::check_device(&small).unwrap_err();
    assert!(err.contains("shared memory"), "{err}");
}

fn optimizers<R: Runtime>(client: &ComputeClient<R>) {
    use cubegrad::backend::cpu::optim as cpu;
    let n = 517;
    let p0 = Tensor::randn([n], 0.0, 1.0).to_vec::<f32>();
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|_| Tensor::randn([n], 0.0, 1.0).to_vec::<f32>())
        .collect();
    for decoupled in [false, true] {
        let h = optim::AdamHyper {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            decoupled,
        };
        let hc = h;
        let (mut p, mut m, mut v) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
        let dp = client.create_from_slice(f32::as_bytes(&p0));
        let dm = client.create_from_slice(f32::as_bytes(&vec![0f32; n]));
        let dv = client.create_from_slice(f32::as_bytes(&vec![0f32; n]));
        for (t, g) in grads.iter().enumerate() {
            cpu::adam_step(&mut p, g, &mut m, &mut v, t as u64 + 1, hc);
            let dg = client.create_from_slice(f32::as_bytes(g));
            optim::adam_step::<R, f32>(client, &dp, &dg, &dm, &dv, n, t as u64 + 1, h);
        }
        let want: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        assert_close(&download(client, dp), &want, TRANSCENDENTAL, "adam");
    }
    let h = optim::SgdHyper {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.01,
        nesterov: true,
    };
    let hc = h;
    let (mut p, mut buf) = (p0.clone(), vec![0f32; n]);
    let dp = client.create_from_slice(f32::as_bytes(&p0));
    let db = client.create_from_slice(f32::as_bytes(&vec![0f32; n]));
    for (t, g) in grads.iter().enumerate() {
        cpu::sgd_step(&mut p, g, Some(&mut buf), t == 0, hc);
        let dg = client.create_from_slice(f32::as_bytes(g));
        optim::sgd_step::<R, f32>(client, &dp, &dg, &db, n, t == 0, h);
    }
    let want: Vec<f64> = p.iter().map(|&x| x as f64).collect();
    assert_close(&download(client, dp), &want, EXACT_ISH, "sgd");
}

/// i64 indices as the device stores them: two little-endian u32 words each.
fn i64_words<R: Runtime>(client: &ComputeClient<R>, v: &[i64]) -> Handle {
    let words: Vec<u32> = v
        .iter()
        .flat_map(|&i| [i as u64 as u32, ((i as u64) >> 32) as u32])
        .collect();
    client.create_from_slice(u32::as_bytes(&words))
}

fn index<R: Runtime>(client: &ComputeClient<R>) {
    // x [outer 2, r 37, inner 3]; 300 indices (more than one cube, not a power of two, so
    // the sort pads) that repeat, skip rows and count from the end when negative.
    let (r, n) = (37usize, 300usize);
    let x = Tensor::randn([2, r, 3], 0.0, 1.0).with_grad();
    let idx: Vec<i64> = (0..n as i64)
        .map(|i| (i * 17 % 31) - if i % 5 == 0 { 31 } else { 0 })
        .collect();
    let it = Tensor::from_vec(idx.clone(), [n]);
    let y = x.index_select(1, &it);
    let g = Tensor::randn([2, n, 3], 0.0, 1.0);
    let gx = y.backward_with(&g).get(&x).unwrap().to_vec::<f64>();
    let hi = i64_words(client, &idx);
    let h = index::index_select::<R, f32>(client, &upload(client, &x), &hi, 2, r, 3, n);
    assert_close(
        &download(client, h),
        &y.to_vec::<f64>(),
        EXACT_ISH,
        "index_select",
    );
    let h = index::index_add::<R, f32>(client, &upload(client, &g), &hi, 2, r, 3, n);
    assert_close(&download(client, h), &gx, REDUCTION, "index_add");

    // gather along the middle axis of [2, 5, 4] with q = 3 per column.
    let x = Tensor::randn([2, 5, 4], 0.0, 1.0).with_grad();
    let gi: Vec<i64> = (0..24)
        .map(|i| (i * 7 % 5) as i64 - (i % 2) as i64 * 5)
        .collect();
    let git = Tensor::from_vec(gi.clone(), [2, 3, 4]);
    let y = x.gather(1, &git);
    let g = Tensor::randn([2, 3, 4], 0.0, 1.0);
    let gx = y.backward_with(&g).get(&x).unwrap().to_vec::<f64>();
    let hi = i64_words(client, &gi);
    let h = index::gather::<R, f32>(client, &upload(client, &x), &hi, 2, 5, 4, 3);
    assert_close(
        &download(client, h),
        &y.to_vec::<f64>(),
        EXACT_ISH,
        "gather",
    );
    let h = index::scatter_add::<R, f32>(client, &upload(client, &g), &hi, 2, 5, 4, 3);
    assert_close(&download(client, h), &gx, EXACT_ISH, "scatter_add");

    // one_hot, with a negative label.
    let labels = [2i64, 0, -1, 4, 1];
    let want = Tensor::from_vec(labels.to_vec(), [5])
        .one_hot(5)
        .to_vec::<f64>();
    let h = index::one_hot::<R, f32>(client, &i64_words(client, &labels), 5, 5);
    assert_close(&download(client, h), &want, EXACT_ISH, "one_hot");
}

fn cross_entropy<R: Runtime>(client: &ComputeClient<R>) {
    let (rows, classes) = (9, 301);
    let x = Tensor::randn([rows, classes], 0.0, 2.0).with_grad();
    let targets: Vec<i64> = (0..rows as i64)
        .map(|r| if r == 4 { -100 } else { r * 31 % 301 })
        .collect();
    let t = Tensor::from_vec(targets.clone(), [rows]);
    // i64 targets as the device stores them: two little-endian u32 words each.
    let words: Vec<u32> = targets
        .iter()
        .flat_map(|&v| [v as u64 as u32, ((v as u64) >> 32) as u32])
        .collect();
    let ht = client.create_from_slice(u32::as_bytes(&words));
    for smoothing in [0.0, 0.1] {
        let opts = CrossEntropyOptions {
            ignore_index: Some(-100),
            label_smoothing: smoothing,
            ..CrossEntropyOptions::default()
        };
        let loss_cpu = x.cross_entropy_with(&t, opts);
        let gx = loss_cpu.backward().get(&x).unwrap().to_vec::<f64>();
        let o = loss::cross_entropy::<R, f32>(
            client,
            &upload(client, &x),
            &ht,
            rows,
            classes,
            Some(-100),
            smoothing,
        );
        let counted = download(client, o.counted);
        assert_eq!(
            counted.iter().sum::<f64>(),
            (rows - 1) as f64,
            "counted rows"
        );
        let n = (rows - 1) as f64;
        let mean = download(client, o.loss).iter().sum::<f64>() / n;
        let what = format!("cross-entropy, label smoothing {smoothing}");
        assert_close(&[mean], &[loss_cpu.item()], TRANSCENDENTAL, &what);
        let dx: Vec<f64> = download(client, o.dx).iter().map(|v| v / n).collect();
        assert_close(&dx, &gx, TRANSCENDENTAL, &what);
    }
    // A target out of range gives a NaN loss (the kernel cannot raise an error).
    let bad: Vec<u32> = vec![classes as u32, 0];
    let o = loss::cross_entropy::<R, f32>(
        client,
        &upload(client, &x.detach().narrow(0, 0, 1)),
        &client.create_from_slice(u32::as_bytes(&bad)),
        1,
        classes,
        None,
        0.0,
    );
    assert!(download(client, o.loss)[0].is_nan(), "out-of-range target");
}

fn context_pool<R: Runtime>(client: &ComputeClient<R>) {
    use cubegrad::backend::context_pool::{Geometry, Params};
    use cubegrad::backend::cpu::context_pool as cpu;
    let seq = |n, stride, radius, causal| Geometry::Seq {
        n,
        stride,
        radius,
        causal,
    };
    let grid = |h, w, stride, radius| Geometry::Grid {
        h,
        w,
        stride,
        radius,
    };
    // d = 80 is more features than a cube has units; n = 70 is longer than a window; the
    // grids have odd sides, windows cut by the border, and a stride that drops the last row.
    for (batch, d, normalize, geo) in [
        (2, 19, true, seq(37, 1, 24, false)),
        (1, 80, true, seq(70, 1, 24, true)),
        (2, 5, false, seq(23, 1, 3, false)),
        (2, 7, true, seq(41, 2, 5, true)),
        (2, 70, true, grid(9, 11, 1, 3)),
        (1, 6, true, grid(11, 12, 2, 2)),
    ] {
        let (n, n_out) = (geo.n_in(), geo.n_out());
        let x = Tensor::randn([batch, n, d], 0.0, 1.0).to_vec::<f32>();
        let a = Tensor::randn([d], 0.0, 0.3).to_vec::<f32>();
        let b = Tensor::randn([d], 0.0, 0.3).to_vec::<f32>();
        let g = Tensor::randn([batch, n_out, d], 0.0, 1.0).to_vec::<f32>();
        let (a0, b0) = (0.2f32, -0.4f32);
        let params = Params {
            s_min: 0.5,
            s_max: 8.0,
            normalize,
            eps: 1e-6,
        };
        let (dims, radius, causal) = match geo {
            Geometry::Seq {
                n,
                stride,
                radius,
                causal,
            } => (
                context_pool::PoolDims::seq(batch, n, d, stride),
                radius,
                causal,
            ),
            Geometry::Grid {
                h,
                w,
                stride,
                radius,
            } => (
                context_pool::PoolDims::grid(batch, h, w, d, stride),
                radius,
                false,
            ),
        };
        let f = cpu::forward(&x, batch, d, geo, params, &a, a0, &b, b0);
        let saved = cpu::Saved {
            x: &x,
            y: &f.y,
            w: &f.w,
            s: &f.s,
            denom: &f.denom,
        };
        let gr = cpu::backward(saved, batch, d, geo, params, &a, &b, &g);

        let p = context_pool::PoolParams {
            s_min: 0.5,
            s_max: 8.0,
            radius: radius as u32,
            causal,
            normalize,
            eps: 1e-6,
        };
        let up = |v: &[f32]| client.create_from_slice(f32::as_bytes(v));
        let (hx, ha, hb) = (up(&x), up(&a), up(&b));
        let (ha0, hb0) = (up(&[a0]), up(&[b0]));
        let out = context_pool::forward::<R, f32>(client, &hx, &ha, &ha0, &hb, &hb0, dims, p);
        let (dx, da, db) =
            context_pool::backward::<R, f32>(client, &hx, &ha, &hb, &out, &up(&g), dims, p);
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let what = format!("context_pool {geo:?} d={d} normalize={normalize}");
        assert_close(
            &download(client, out.y),
            &f64s(&f.y),
            POOL,
            &format!("{what}: y"),
        );
        assert_close(
            &download(client, out.s),
            &f64s(&f.s),
            POOL,
            &format!("{what}: s"),
        );
        assert_close(
            &download(client, dx),
            &f64s(&gr.dx),
            POOL,
            &format!("{what}: dx"),
        );
        let mut want_da = f64s(&gr.da);
        want_da.push(gr.da0 as f64);
        let mut want_db = f64s(&gr.db);
        want_db.push(gr.db0 as f64);
        assert_close(
            &download(client, da),
            &want_da,
            POOL,
            &format!("{what}: da, da0"),
        );
        assert_close(
            &download(client, db),
            &want_db,
            POOL,
            &format!("{what}: db, db0"),
        );
    }
}

/// Philox on the device gives the CPU's words bit for bit, so a dropout mask of one seed is
/// the same on both; sizes are odd and larger than a cube, and not multiples of four.
fn dropout_masks<R: Runtime>(client: &ComputeClient<R>) {
    use cubegrad::backend::cpu::random::philox;
    for (n, seed, p) in [
        (1usize, 7u64, 0.5),
        (1027, 1 << 40, 0.1),
        (70_001, 12345, 0.9),
    ] {
        let threshold = cubegrad::backend::random::keep_threshold(p);
        let scale = 1.0 / (1.0 - p);
        let h = random::dropout_mask::<R, f32>(client, n, seed, threshold, scale);
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let w = philox((i / 4) as u32, 0, seed)[i % 4];
                if (w >> 8) < threshold {
                    scale as f32 as f64
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(
            download(client, h),
            want,
            "dropout mask n={n} seed={seed} p={p}"
        );
    }
}

/// The client for this runtime's device, or `None` (with the reason printed) when there is
/// none and `CUBEGRAD_REQUIRE_DEVICE` does not ask for it.
fn client_or_skip<R: Runtime>(name: &str, device: R::Device) -> Option<ComputeClient<R>> {
    cubegrad::testing::validate_kernel_bounds();
    let required =
        std::env::var("CUBEGRAD_REQUIRE_DEVICE").is_ok_and(|v| v.split(',').any(|d| d == name));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| R::client(&device))) {
        Ok(c) => Some(c),
        Err(_) if required => {
            panic!("CUBEGRAD_REQUIRE_DEVICE={name}, but no {name} device could be opened")
        }
        Err(_) => {
            eprintln!(
                "skipped: no {name} device (set CUBEGRAD_REQUIRE_DEVICE={name} to fail instead)"
            );
            None
        }
    }
}

macro_rules! parity_tests {
    ($name:literal, $runtime:ty, $device:expr; $($check:ident),*) => {
        fn client() -> Option<ComputeClient<$runtime>> {
            manual_seed(7);
            super::client_or_skip::<$runtime>($name, $device)
        }
        $(
            #[test]
            fn $check() {
                if let Some(c) = client() {
                    super::$check(&c)
                }
            }
        )*
    };
}

/// Instantiates every check for one runtime.
macro_rules! all_parity_tests {
    ($name:literal, $runtime:ty, $device:expr) => {
        parity_tests!($name, $runtime, $device; binary, layout, reduce, softmax, matmul,
            matmul_cubek, index, cross_entropy, context_pool, optimizers, dropout_masks,
            device_limits);
    };
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use cubegrad_ops::cubecl::wgpu::{WgpuDevice, WgpuRuntime};
    all_parity_tests!("wgpu", WgpuRuntime, WgpuDevice::DefaultDevice);
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use cubegrad_ops::cubecl::cuda::{CudaDevice, CudaRuntime};
    all_parity_tests!("cuda", CudaRuntime, CudaDevice::new(0));
}
