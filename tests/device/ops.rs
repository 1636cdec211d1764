//! The op registry and the layers on each CubeCL device this build has (`--features wgpu` runs it on
//! lavapipe): every entry's forward and its gradients for a random cotangent, computed in f32
//! on the device, against the same op in f64 on the CPU. Entries whose op has no kernel yet
//! must fail with `Error::Unsupported` (never a wrong number or a panic), and the list of
//! them is pinned below, so that it only shrinks on purpose.

use cubegrad::nn::{try_layer_norm, Embedding, Module};
use cubegrad::testing::{assert_close, built_devices, device_or_skip, registry, Tolerance};
use cubegrad::{manual_seed, no_grad, DType, Device, Error, Tensor};

/// Registry entries that have no device kernel yet (forward or backward), in registry order.
const NOT_ON_DEVICE: &[&str] = &[];

fn check(device: Device) {
    let mut unsupported = Vec::new();
    for case in registry() {
        let base = case.make_inputs(DType::F64, 11);
        let x64: Vec<Tensor> = base
            .iter()
            .zip(&case.inputs)
            .map(|(t, spec)| {
                if spec.is_float() {
                    t.to_dtype(DType::F32).to_dtype(DType::F64).with_grad()
                } else {
                    t.clone()
                }
            })
            .collect();
        let xd: Vec<Tensor> = x64
            .iter()
            .zip(&case.inputs)
            .map(|(t, spec)| {
                if spec.is_float() {
                    t.detach()
                        .to_dtype(DType::F32)
                        .to_device(device)
                        .with_grad()
                } else {
                    t.to_device(device)
                }
            })
            .collect();
        let out64 = (case.run)(&x64).unwrap();
        let outd = match (case.run)(&xd) {
            Ok(o) => o,
            Err(Error::Unsupported { .. }) => {
                unsupported.push(case.name);
                continue;
            }
            Err(e) => panic!("{} on {device}: {e}", case.name),
        };
        assert_eq!(outd.device(), device, "{}: output device", case.name);
        assert_close(
            &outd.to_vec::<f64>(),
            &out64.to_vec::<f64>(),
            case.f32_tol,
            &format!("{} forward on {device}", case.name),
        );
        let seed: Vec<f64> = (0..out64.numel())
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let seed64 = Tensor::from_vec(seed, out64.shape().clone());
        let g64 = out64.backward_with(&seed64);
        let gd = match outd.try_backward_with(&seed64.to_dtype(DType::F32).to_device(device)) {
            Ok(g) => g,
            Err(Error::Unsupported { .. }) => {
                unsupported.push(case.name);
                continue;
            }
            Err(e) => panic!("{} backward on {device}: {e}", case.name),
        };
        for (i, (a, b)) in xd.iter().zip(&x64).enumerate() {
            if !a.requires_grad() {
                continue;
            }
            // An input the op does not differentiate (LSH's rotations) has a gradient on
            // neither side.
            let (ga, gb) = match (gd.get(a), g64.get(b)) {
                (Some(ga), Some(gb)) => (ga, gb),
                (None, None) => continue,
                (ga, gb) => panic!(
                    "{} input {i} on {device}: device gradient {}, CPU gradient {}",
                    case.name,
                    ga.is_some(),
                    gb.is_some()
                ),
            };
            assert_eq!(ga.device(), device, "{}: gradient device", case.name);
            assert_close(
                &ga.to_vec::<f64>(),
                &gb.to_vec::<f64>(),
                Tolerance::F32,
                &format!("{} gradient of input {i} on {device}", case.name),
            );
        }
    }
    assert_eq!(
        unsupported, NOT_ON_DEVICE,
        "registry entries without a kernel on {device}"
    );
}

#[test]
fn registry_on_every_built_device_matches_the_cpu() {
    for device in built_devices() {
        if let Some(d) = device_or_skip("registry_on_device", device) {
            check(d);
        }
    }
}

/// Comparisons (each kind, with broadcasting), arg-max/min (the first on ties) and dtype
/// conversions on the device against the CPU: they must agree exactly.
#[test]
fn comparisons_argmax_and_casts_on_every_built_device_match_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("comparisons on device", device) else {
            continue;
        };
        // Rounded to tenths so that ties (equal elements) occur.
        let a = (Tensor::randn([3, 1, 7], 0.0, 1.0).mul_scalar(3.0)).to_vec::<f64>();
        let b = (Tensor::randn([4, 7], 0.0, 1.0).mul_scalar(3.0)).to_vec::<f64>();
        let round = |v: Vec<f64>| v.iter().map(|x| x.round() / 10.0).collect::<Vec<f64>>();
        let a = Tensor::from_vec(round(a), [3, 1, 7]).to_dtype(DType::F32);
        let b = Tensor::from_vec(round(b), [4, 7]).to_dtype(DType::F32);
        let (da, db) = (a.to_device(device), b.to_device(device));
        type Case = (&'static str, fn(&Tensor, &Tensor) -> Tensor);
        let cases: [Case; 6] = [
            ("eq", |x, y| x.eq(y)),
            ("ne", |x, y| x.ne(y)),
            ("lt", |x, y| x.lt(y)),
            ("le", |x, y| x.le(y)),
            ("gt", |x, y| x.gt(y)),
            ("ge", |x, y| x.ge(y)),
        ];
        for (name, f) in cases {
            let (want, got) = (f(&a, &b), f(&da, &db));
            assert_eq!(got.dtype(), DType::Bool, "{name}");
            assert_eq!(
                got.to_vec::<bool>(),
                want.to_vec::<bool>(),
                "{name} on {device}"
            );
            let as_f64 = got.to_dtype(DType::F64);
            assert_eq!(as_f64.device(), device, "{name}: cast stays on the device");
            assert_eq!(
                as_f64.to_vec::<f64>(),
                want.to_vec::<f64>(),
                "{name} as f64"
            );
        }
        // i64 (signed, beyond 32 bits) and bool operands, broadcast.
        let i = Tensor::from_vec(vec![-5i64, 3, 1 << 40, -(1 << 33), 0, 7], [2, 3]);
        let j = Tensor::from_vec(vec![3i64, -(1 << 33), 0], [3]);
        let (p, q) = (i.gt(&Tensor::scalar(0i64)), j.lt(&Tensor::scalar(1i64)));
        for (name, f) in cases {
            assert_eq!(
                f(&i.to_device(device), &j.to_device(device)).to_vec::<bool>(),
                f(&i, &j).to_vec::<bool>(),
                "i64 {name} on {device}"
            );
            assert_eq!(
                f(&p.to_device(device), &q.to_device(device)).to_vec::<bool>(),
                f(&p, &q).to_vec::<bool>(),
                "bool {name} on {device}"
            );
        }
        // Arg-max/min along a middle axis (moved last on the device), ties included.
        for (axis, keep) in [(1isize, false), (2, true), (0, false)] {
            let (w, dw) = (a.add(&b), da.add(&db));
            assert_eq!(
                dw.argmax(axis, keep).to_vec::<i64>(),
                w.argmax(axis, keep).to_vec::<i64>(),
                "argmax over {axis} on {device}"
            );
            assert_eq!(
                dw.argmin(axis, keep).to_vec::<i64>(),
                w.argmin(axis, keep).to_vec::<i64>(),
                "argmin over {axis} on {device}"
            );
        }
        let x = Tensor::randn([5, 3], 0.0, 1.0).to_dtype(DType::F64);
        let back = x
            .to_device(device)
            .to_dtype(DType::F32)
            .to_dtype(DType::F64);
        assert_eq!(back.device(), device);
        assert_eq!(
            back.to_vec::<f64>(),
            x.to_dtype(DType::F32).to_vec::<f64>(),
            "f64 -> f32 -> f64 on {device}"
        );
    }
}

/// `to_device` is an op like any other: a CPU leaf used on the device gets its gradient
/// back on the CPU, `g · exp(x)` here.
#[test]
fn gradients_flow_back_through_to_device() {
    for device in built_devices() {
        let Some(device) = device_or_skip("to_device backward", device) else {
            continue;
        };
        let x = Tensor::randn([3, 5], 0.0, 1.0).with_grad();
        let g = Tensor::randn([3, 5], 0.0, 1.0);
        let y = x.to_device(device).exp().to_device(Device::Cpu);
        assert_eq!(y.device(), Device::Cpu);
        let grads = y.backward_with(&g);
        let gx = grads.get(&x).expect("a gradient for the CPU leaf");
        assert_eq!(gx.device(), Device::Cpu);
        assert_close(
            &gx.to_vec::<f64>(),
            &g.mul(&x.exp()).to_vec::<f64>(),
            Tolerance::F32,
            &format!("gradient through {device}"),
        );
    }
}

/// Filled tensors are written on the device (the fill kernel), in every float dtype.
#[test]
fn full_on_every_built_device_is_filled_there() {
    for device in built_devices() {
        let Some(device) = device_or_skip("full on device", device) else {
            continue;
        };
        for (value, dtype) in [(2.5, DType::F32), (-1.0, DType::F32), (0.0, DType::F64)] {
            let t = Tensor::full_on([4, 3, 37], value, dtype, device);
            assert_eq!((t.device(), t.dtype()), (device, dtype));
            assert_eq!(
                t.to_vec::<f64>(),
                vec![value; 4 * 3 * 37],
                "{value} {dtype}"
            );
        }
    }
}

/// Indices on the device: negative ones count from the end; one out of range gives NaN in
/// the row it feeds (a kernel cannot raise an error), while host indices for a device tensor
/// are checked first and raise the CPU's error. An embedding trains on the device with ids
/// that live there.
#[test]
fn device_indices_wrap_and_poison_and_embedding_trains() {
    for device in built_devices() {
        let Some(device) = device_or_skip("device indices", device) else {
            continue;
        };
        let w = Tensor::randn([4, 3], 0.0, 1.0);
        let dw = w.to_device(device);
        let ids = Tensor::from_vec(vec![-1i64, 2, 0], [3]);
        assert_eq!(
            dw.index_select(0, &ids.to_device(device)).to_vec::<f64>(),
            w.index_select(0, &ids).to_vec::<f64>(),
            "negative indices on {device}"
        );
        let bad = Tensor::from_vec(vec![1i64, 4], [2]);
        let rows = dw.index_select(0, &bad.to_device(device)).to_vec::<f64>();
        assert!(rows[..3].iter().all(|v| v.is_finite()), "{rows:?}");
        assert!(rows[3..].iter().all(|v| v.is_nan()), "{rows:?}");
        match dw.try_index_select(0, &bad) {
            Err(Error::IndexOutOfRange {
                index: 4, size: 4, ..
            }) => {}
            other => panic!("host indices out of range: {other:?}"),
        }
        let labels = Tensor::from_vec(vec![1i64, 7], [2]).to_device(device);
        let oh = labels.one_hot(3).to_vec::<f64>();
        assert_eq!(&oh[..3], &[0.0, 1.0, 0.0]);
        assert!(oh[3..].iter().all(|v| v.is_nan()), "{oh:?}");
        let t = Tensor::from_vec(vec![0i64, 9], [2]).to_device(device);
        let scores = Tensor::randn([2, 3], 0.0, 1.0).to_device(device);
        assert!(scores.log_softmax(-1).nll_loss(&t).item().is_nan());

        // Embedding → mean → squared error, with ids on the device: its gradient rows add up
        // where an id repeats, exactly as on the CPU.
        let mut emb = Embedding::new(6, 5);
        let ids = Tensor::from_vec(vec![3i64, 1, 3, 5, 3, 0, 1], [7]);
        let loss_on = |e: &Embedding, ids: &Tensor| e.forward(ids).square().mean();
        let g_cpu = loss_on(&emb, &ids).backward();
        let want = g_cpu.get(&emb.weight).unwrap().to_vec::<f64>();
        emb.to_device(device);
        let g_dev = loss_on(&emb, &ids.to_device(device)).backward();
        let got = g_dev.get(&emb.weight).unwrap();
        assert_eq!(got.device(), device);
        assert_close(
            &got.to_vec::<f64>(),
            &want,
            Tolerance::F32,
            &format!("embedding gradient on {device}"),
        );
    }
}

/// Layer norm with rows wider than a cube (301 > 128 units) and a large mean (the two-pass
/// variance must not cancel), against the f64 CPU result, forward and every gradient.
#[test]
fn layer_norm_with_wide_rows_matches_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("layer_norm on device", device) else {
            continue;
        };
        // f32 values held in f64, so that both sides start from the same numbers.
        let x = Tensor::randn([5, 301], 50.0, 3.0)
            .to_dtype(DType::F64)
            .with_grad();
        let w = Tensor::randn([301], 1.0, 0.5)
            .to_dtype(DType::F64)
            .with_grad();
        let b = Tensor::randn([301], 0.0, 0.5)
            .to_dtype(DType::F64)
            .with_grad();
        let g = Tensor::randn([5, 301], 0.0, 1.0).to_dtype(DType::F64);
        let y = try_layer_norm(&x, &[301], Some(&w), Some(&b), 1e-5).unwrap();
        let grads = y.backward_with(&g);
        let on = |t: &Tensor| {
            t.detach()
                .to_dtype(DType::F32)
                .to_device(device)
                .with_grad()
        };
        let (xd, wd, bd) = (on(&x), on(&w), on(&b));
        let yd = try_layer_norm(&xd, &[301], Some(&wd), Some(&bd), 1e-5).unwrap();
        let gd = yd.backward_with(&g.to_dtype(DType::F32).to_device(device));
        let tol = Tolerance::F32;
        assert_close(
            &yd.to_vec::<f64>(),
            &y.to_vec::<f64>(),
            tol,
            "layer_norm forward",
        );
        for (name, a, c) in [("x", &xd, &x), ("weight", &wd, &w), ("bias", &bd, &b)] {
            assert_close(
                &gd.get(a).unwrap().to_vec::<f64>(),
                &grads.get(c).unwrap().to_vec::<f64>(),
                tol,
                &format!("layer_norm gradient of {name} on {device}"),
            );
        }
    }
}

/// Running sums over more columns than one cube holds, along a middle axis and the last,
/// forwards and (through the gradient) backwards.
#[test]
fn running_sums_above_one_cube_match_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("cumsum on device", device) else {
            continue;
        };
        for (shape, axis) in [([7usize, 61, 53], 1isize), ([300, 2, 33], -1)] {
            let x = Tensor::randn(shape, 0.0, 1.0)
                .to_dtype(DType::F64)
                .with_grad();
            let g = Tensor::randn(shape, 0.0, 1.0).to_dtype(DType::F64);
            let y = x.cumsum(axis);
            let gx = y.backward_with(&g).get(&x).unwrap().to_vec::<f64>();
            let xd = x
                .detach()
                .to_dtype(DType::F32)
                .to_device(device)
                .with_grad();
            let yd = xd.cumsum(axis);
            let gd = yd.backward_with(&g.to_dtype(DType::F32).to_device(device));
            // Sums of up to 61 terms of size ~1 in f32.
            let tol = Tolerance {
                rel: 1e-5,
                abs: 1e-4,
            };
            let what = format!("cumsum {shape:?} along {axis} on {device}");
            assert_close(&yd.to_vec::<f64>(), &y.to_vec::<f64>(), tol, &what);
            assert_close(
                &gd.get(&xd).unwrap().to_vec::<f64>(),
                &gx,
                tol,
                &format!("{what}: gradient"),
            );
        }
    }
}

/// A whole pre-norm transformer layer on the device (layer norm, causal multi-head attention,
/// ContextPool before attention, GELU feed-forward, residuals) gives the CPU's output and
/// the CPU's gradient for every parameter: the model a language model stacks.
#[test]
fn causal_encoder_layer_with_context_pool_matches_the_cpu() {
    use cubegrad::nn::{ContextPoolOptions, EncoderOptions, TransformerEncoderLayer};
    for device in built_devices() {
        let Some(device) = device_or_skip("encoder layer on device", device) else {
            continue;
        };
        let mut opts = EncoderOptions::new(16, 4);
        opts.dropout = 0.0;
        opts.causal = true;
        opts.dim_feedforward = 24;
        opts.context_pool = Some(ContextPoolOptions {
            causal: true,
            ..ContextPoolOptions::default()
        });
        let mut layer = TransformerEncoderLayer::new(opts);
        let x = Tensor::randn([2, 11, 16], 0.0, 1.0);
        let g = Tensor::randn([2, 11, 16], 0.0, 1.0);
        let y = layer.forward(&x, None);
        let grads = y.backward_with(&g);
        let want: Vec<(String, Vec<f64>)> = layer
            .parameters()
            .into_iter()
            .map(|(name, p)| (name, grads.get(&p).unwrap().to_vec::<f64>()))
            .collect();
        layer.to_device(device);
        let yd = layer.forward(&x.to_device(device), None);
        assert_close(
            &yd.to_vec::<f64>(),
            &y.to_vec::<f64>(),
            Tolerance::F32,
            &format!("encoder layer output on {device}"),
        );
        let gd = yd.backward_with(&g.to_device(device));
        for ((name, p), (_, w)) in layer.parameters().into_iter().zip(&want) {
            let got = gd
                .get(&p)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            assert_eq!(got.device(), device, "{name}");
            assert_close(
                &got.to_vec::<f64>(),
                w,
                Tolerance::F32,
                &format!("gradient of {name} on {device}"),
            );
        }
    }
}

/// Convolution and pooling on sizes larger than one cube (odd planes, stride, padding,
/// dilation and groups together), forward and every gradient, against the f64 CPU result.
#[test]
fn conv_and_pooling_with_large_odd_shapes_match_the_cpu() {
    use cubegrad::nn::{try_avg_pool2d, try_conv2d, try_max_pool2d, Conv2dOptions};
    for device in built_devices() {
        let Some(device) = device_or_skip("conv on device", device) else {
            continue;
        };
        let f64_leaf = |t: Tensor| t.to_dtype(DType::F64).with_grad();
        let x = f64_leaf(Tensor::randn([2, 6, 17, 19], 0.0, 1.0));
        let w = f64_leaf(Tensor::randn([9, 2, 3, 3], 0.0, 0.3));
        let b = f64_leaf(Tensor::randn([9], 0.0, 0.3));
        let opts = Conv2dOptions {
            stride: (2, 1),
            padding: (1, 2),
            dilation: (1, 2),
            groups: 3,
        };
        let net = |x: &Tensor, w: &Tensor, b: &Tensor| {
            let y = try_conv2d(x, w, Some(b), opts).unwrap();
            let m = try_max_pool2d(&y, (3, 2), (2, 1), (1, 1)).unwrap();
            try_avg_pool2d(&m, (2, 3), (1, 2), (0, 1), false).unwrap()
        };
        let y = net(&x, &w, &b);
        let g = Tensor::randn(y.shape().clone(), 0.0, 1.0).to_dtype(DType::F64);
        let grads = y.backward_with(&g);
        let on = |t: &Tensor| {
            t.detach()
                .to_dtype(DType::F32)
                .to_device(device)
                .with_grad()
        };
        let (xd, wd, bd) = (on(&x), on(&w), on(&b));
        let yd = net(&xd, &wd, &bd);
        assert_close(
            &yd.to_vec::<f64>(),
            &y.to_vec::<f64>(),
            Tolerance::F32,
            &format!("conv → max pool → avg pool on {device}"),
        );
        let gd = yd.backward_with(&g.to_dtype(DType::F32).to_device(device));
        for (name, a, c) in [("x", &xd, &x), ("weight", &wd, &w), ("bias", &bd, &b)] {
            assert_close(
                &gd.get(a).unwrap().to_vec::<f64>(),
                &grads.get(c).unwrap().to_vec::<f64>(),
                Tolerance::F32,
                &format!("gradient of {name} on {device}"),
            );
        }
    }
}

/// BatchNorm2d on the device: three training steps leave the CPU's running estimates and
/// batch count, and evaluation then gives the CPU's output.
#[test]
fn batch_norm_running_statistics_on_the_device_match_the_cpu() {
    use cubegrad::nn::BatchNorm2d;
    for device in built_devices() {
        let Some(device) = device_or_skip("batch norm on device", device) else {
            continue;
        };
        let (mut cpu, mut dev) = (BatchNorm2d::new(3), BatchNorm2d::new(3));
        dev.to_device(device);
        let xs: Vec<Tensor> = (0..3)
            .map(|i| Tensor::randn([4, 3, 5, 7], i as f64, 2.0))
            .collect();
        for x in &xs {
            let (a, b) = (cpu.forward(x), dev.forward(&x.to_device(device)));
            assert_close(
                &b.to_vec::<f64>(),
                &a.to_vec::<f64>(),
                Tolerance::F32,
                "train",
            );
        }
        for (name, a, b) in [
            ("running_mean", &cpu.running_mean, &dev.running_mean),
            ("running_var", &cpu.running_var, &dev.running_var),
        ] {
            assert_eq!(b.device(), device, "{name}");
            assert_close(&b.to_vec::<f64>(), &a.to_vec::<f64>(), Tolerance::F32, name);
        }
        assert_eq!(dev.num_batches_tracked.to_vec::<i64>(), vec![3]);
        cpu.eval();
        dev.eval();
        assert_close(
            &dev.forward(&xs[0].to_device(device)).to_vec::<f64>(),
            &cpu.forward(&xs[0]).to_vec::<f64>(),
            Tolerance::F32,
            &format!("eval on {device}"),
        );
    }
}

/// ContextPool's image layouts on the device: the ConvNet pooling variant with a stride, and
/// a ViT grid with its class token passed through; outputs, gradients and the pooling sizes
/// kept for plots match the CPU.
#[test]
fn context_pool_on_images_matches_the_cpu() {
    use cubegrad::nn::{ContextPool, ContextPool2d, ContextPoolOptions};
    for device in built_devices() {
        let Some(device) = device_or_skip("ContextPool on images", device) else {
            continue;
        };
        let opts = ContextPoolOptions {
            radius: Some(3),
            ..ContextPoolOptions::default()
        };
        let mut conv_pool = ContextPool2d::new(5, 2, opts);
        let mut vit_pool = ContextPool::new(5, opts);
        let img = Tensor::randn([2, 5, 9, 10], 0.0, 1.0);
        let tokens = Tensor::randn([2, 1 + 4 * 6, 5], 0.0, 1.0);
        let run = |cp: &ContextPool2d, vp: &ContextPool, img: &Tensor, tok: &Tensor| {
            let a = cp.forward(img);
            let b = vp.forward_grid(tok, (4, 6), true);
            (a, b)
        };
        let (a, b) = run(&conv_pool, &vit_pool, &img, &tokens);
        let ga = Tensor::randn(a.shape().clone(), 0.0, 1.0);
        let gb = Tensor::randn(b.shape().clone(), 0.0, 1.0);
        let loss = |a: &Tensor, b: &Tensor, ga: &Tensor, gb: &Tensor| {
            a.mul(ga).sum().add(&b.mul(gb).sum())
        };
        let grads = loss(&a, &b, &ga, &gb).backward();
        let want: Vec<Vec<f64>> = conv_pool
            .parameters()
            .into_iter()
            .chain(vit_pool.parameters())
            .map(|(_, p)| grads.get(&p).unwrap().to_vec::<f64>())
            .collect();
        let sizes = conv_pool.last_stats().unwrap().sizes.to_vec::<f64>();
        conv_pool.to_device(device);
        vit_pool.to_device(device);
        let (ad, bd) = run(
            &conv_pool,
            &vit_pool,
            &img.to_device(device),
            &tokens.to_device(device),
        );
        let tol = Tolerance::F32;
        assert_close(
            &ad.to_vec::<f64>(),
            &a.to_vec::<f64>(),
            tol,
            "ContextPool2d",
        );
        assert_close(
            &bd.to_vec::<f64>(),
            &b.to_vec::<f64>(),
            tol,
            "grid + class token",
        );
        let dsizes = conv_pool.last_stats().unwrap().sizes;
        assert_eq!(dsizes.dims(), &[2, 4, 5]);
        assert_close(&dsizes.to_vec::<f64>(), &sizes, tol, "pooling sizes");
        let on = |t: &Tensor| t.to_device(device);
        let gd = loss(&ad, &bd, &on(&ga), &on(&gb)).backward();
        let params = conv_pool
            .parameters()
            .into_iter()
            .chain(vit_pool.parameters());
        for ((name, p), w) in params.zip(&want) {
            assert_close(
                &gd.get(&p).unwrap().to_vec::<f64>(),
                w,
                tol,
                &format!("gradient of {name} on {device}"),
            );
        }
    }
}

/// The language model's other paths on the device: token-by-token decoding with the KV cache
/// (and ContextPool's history) gives the full forward's outputs, and every baseline attention
/// pattern (local, strided, adaptive span) gives the CPU's output and span gradient.
#[test]
fn cached_decoding_and_attention_baselines_run_on_the_device() {
    use cubegrad::nn::{
        AttentionKind, ContextPoolOptions, EncoderOptions, LayerCache, TransformerEncoderLayer,
    };
    for device in built_devices() {
        let Some(device) = device_or_skip("decoding on device", device) else {
            continue;
        };
        let mut opts = EncoderOptions::new(12, 3);
        opts.dropout = 0.0;
        opts.causal = true;
        opts.context_pool = Some(ContextPoolOptions {
            causal: true,
            radius: Some(4),
            ..ContextPoolOptions::default()
        });
        let mut layer = TransformerEncoderLayer::new(opts);
        layer.to_device(device);
        layer.eval();
        let x = Tensor::randn([2, 9, 12], 0.0, 1.0).to_device(device);
        let full = no_grad(|| layer.forward(&x, None)).to_vec::<f64>();
        let mut cache = LayerCache::default();
        let mut steps = Vec::new();
        for t in 0..9 {
            let y = no_grad(|| layer.forward_cached(&x.narrow(1, t, 1), &mut cache));
            assert_eq!(y.device(), device);
            steps.push(y);
        }
        let refs: Vec<&Tensor> = steps.iter().collect();
        let cached = Tensor::concat(&refs, 1).to_vec::<f64>();
        assert_close(
            &cached,
            &full,
            Tolerance::F32,
            "cached decoding on the device",
        );

        for kind in [
            AttentionKind::Local { window: 2 },
            AttentionKind::Strided { stride: 3 },
            AttentionKind::Fixed {
                stride: 3,
                summary: 1,
            },
            AttentionKind::AdaptiveSpan {
                initial_span: 3.0,
                ramp: 2.0,
                max_span: 8.0,
            },
        ] {
            let mut opts = EncoderOptions::new(12, 3);
            opts.dropout = 0.0;
            opts.causal = true;
            opts.attention = kind;
            let mut layer = TransformerEncoderLayer::new(opts);
            let x = Tensor::randn([2, 10, 12], 0.0, 1.0);
            let g = Tensor::randn([2, 10, 12], 0.0, 1.0);
            let y = layer.forward(&x, None);
            let grads = y.backward_with(&g);
            let want: Vec<Vec<f64>> = layer
                .parameters()
                .into_iter()
                .map(|(_, p)| grads.get(&p).unwrap().to_vec::<f64>())
                .collect();
            layer.to_device(device);
            let yd = layer.forward(&x.to_device(device), None);
            let what = format!("{kind:?} on {device}");
            assert_close(
                &yd.to_vec::<f64>(),
                &y.to_vec::<f64>(),
                Tolerance::F32,
                &what,
            );
            let gd = yd.backward_with(&g.to_device(device));
            for ((name, p), w) in layer.parameters().into_iter().zip(&want) {
                let got = gd.get(&p).unwrap().to_vec::<f64>();
                assert_close(&got, w, Tolerance::F32, &format!("{what}: {name}"));
            }
        }

        // Spans clamped after a step stay on their device and trainable.
        let mut span = cubegrad::nn::AdaptiveSpan::new(3, 2.0, 1.0, 4.0);
        span.span = Tensor::from_vec(vec![-1.0f32, 2.5, 9.0], [3])
            .to_device(device)
            .detach()
            .with_grad();
        span.clamp_spans();
        assert_eq!(span.span.device(), device);
        assert!(span.span.requires_grad());
        assert_eq!(span.span.to_vec::<f32>(), vec![0.0, 2.5, 4.0]);
    }
}

/// Every function of the unary table on the device, through the tensor API (so the table's
/// kernel for each is the one launched), forward and backward, on more elements than one
/// cube holds, against the CPU's loops.
#[test]
fn unary_functions_above_one_cube_match_the_cpu() {
    use cubegrad::ops::Unary;
    for device in built_devices() {
        let Some(device) = device_or_skip("unary functions on device", device) else {
            continue;
        };
        let x = Tensor::randn([3, 347], 0.0, 1.5);
        let pos = Tensor::rand_uniform([3, 347], 0.1, 4.0);
        let g = Tensor::randn([3, 347], 0.0, 1.0);
        // exp, log, tanh and erf differ by a few ulps between the GPU and the CPU's fast
        // polynomials; derivatives chain several of them.
        let tol = Tolerance {
            rel: 1e-4,
            abs: 1e-5,
        };
        let cases = [
            (Unary::Neg, &x),
            (Unary::Exp, &x),
            (Unary::Log, &pos),
            (Unary::Sqrt, &pos),
            (Unary::Abs, &x),
            (Unary::Tanh, &x),
            (Unary::Sigmoid, &x),
            (Unary::Relu, &x),
            (Unary::GeluTanh, &x),
            (Unary::GeluErf, &x),
            (Unary::Powf(1.7), &pos),
            (
                Unary::Affine {
                    scale: -0.3,
                    shift: 2.0,
                },
                &x,
            ),
        ];
        for (f, input) in cases {
            let (xc, xd) = (
                input.detach().with_grad(),
                input.to_device(device).with_grad(),
            );
            let (yc, yd) = (xc.unary(f), xd.unary(f));
            assert_eq!(yd.device(), device);
            let what = format!("{} on {device}", f.name());
            assert_close(&yd.to_vec::<f64>(), &yc.to_vec::<f64>(), tol, &what);
            let gc = yc.backward_with(&g).get(&xc).unwrap().to_vec::<f64>();
            let gd = yd.backward_with(&g.to_device(device));
            let gd = gd.get(&xd).unwrap().to_vec::<f64>();
            assert_close(&gd, &gc, tol, &format!("{what}: backward"));
        }
    }
}

/// Dropout masks are drawn where the tensor lives from one seed (Philox), so a run on the
/// device and one on the CPU with the same seed drop the same elements: inverted dropout and
/// attention with dropout give the CPU's numbers.
#[test]
fn dropout_of_one_seed_is_the_same_on_the_device() {
    use cubegrad::nn::{dropout, scaled_dot_product_attention, SdpaOptions};
    for device in built_devices() {
        let Some(device) = device_or_skip("dropout on device", device) else {
            continue;
        };
        let x = Tensor::randn([5, 301], 0.0, 1.0);
        manual_seed(3);
        let yc = dropout(&x, 0.3, true);
        manual_seed(3);
        let yd = dropout(&x.to_device(device), 0.3, true);
        assert_eq!(yd.device(), device);
        assert_eq!(
            yd.to_vec::<f32>(),
            yc.to_vec::<f32>(),
            "dropout on {device}"
        );
        let kept = yc
            .ne(&Tensor::zeros([5, 301]))
            .to_dtype(DType::F64)
            .mean()
            .item();
        assert!((kept - 0.7).abs() < 0.05, "kept {kept} of the elements");

        let (q, k, v) = (
            Tensor::randn([2, 3, 9, 8], 0.0, 1.0),
            Tensor::randn([2, 3, 11, 8], 0.0, 1.0),
            Tensor::randn([2, 3, 11, 5], 0.0, 1.0),
        );
        let opts = SdpaOptions {
            dropout_p: 0.25,
            ..SdpaOptions::default()
        };
        manual_seed(4);
        let oc = scaled_dot_product_attention(&q, &k, &v, &opts);
        manual_seed(4);
        let on = |t: &Tensor| t.to_device(device);
        let od = scaled_dot_product_attention(&on(&q), &on(&k), &on(&v), &opts);
        assert_close(
            &od.to_vec::<f64>(),
            &oc.to_vec::<f64>(),
            Tolerance::F32,
            &format!("attention with dropout on {device}"),
        );
    }
}

/// Concatenation on the device moves 32-bit words, so it serves every dtype: i64 indices
/// and bool masks as well as floats.
#[test]
fn concat_of_every_dtype_on_the_device_matches_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("concat on device", device) else {
            continue;
        };
        let a = Tensor::from_vec(vec![-3i64, 1 << 40, 7, 0, -(1 << 35), 2], [2, 3]);
        let b = Tensor::from_vec(vec![5i64, -1], [2, 1]);
        let on = |t: &Tensor| t.to_device(device);
        let want = Tensor::concat(&[&a, &b], 1);
        let got = Tensor::concat(&[&on(&a), &on(&b)], 1);
        assert_eq!((got.device(), got.dtype()), (device, DType::I64));
        assert_eq!(got.to_vec::<i64>(), want.to_vec::<i64>(), "i64 on {device}");
        let (p, q) = (a.gt(&Tensor::scalar(0i64)), b.lt(&Tensor::scalar(0i64)));
        assert_eq!(
            Tensor::concat(&[&on(&q), &on(&p)], 1).to_vec::<bool>(),
            Tensor::concat(&[&q, &p], 1).to_vec::<bool>(),
            "bool on {device}"
        );
        let (x, y) = (
            Tensor::randn([3, 2, 5], 0.0, 1.0).to_dtype(DType::F64),
            Tensor::randn([3, 7, 5], 0.0, 1.0).to_dtype(DType::F64),
        );
        assert_eq!(
            Tensor::concat(&[&on(&x), &on(&y)], 1).to_vec::<f64>(),
            Tensor::concat(&[&x, &y], 1).to_vec::<f64>(),
            "f64 on {device}"
        );
    }
}
