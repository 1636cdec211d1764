//! The op registry on each CubeCL device this build has (`--features wgpu` runs it on
//! lavapipe): every entry's forward and its gradients for a random cotangent, computed in f32
//! on the device, against the same op in f64 on the CPU. Entries whose op has no kernel yet
//! must fail with `Error::Unsupported` (never a wrong number or a panic), and the list of
//! them is pinned below, so that it only shrinks on purpose.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use cubegrad::testing::{assert_close, built_devices, device_or_skip, registry, Tolerance};
use cubegrad::{DType, Device, Error, Tensor};

/// Registry entries that have no device kernel yet (forward or backward), in registry order.
const NOT_ON_DEVICE: &[&str] = &[
    "max_axis",
    "min_axes_keepdim",
    "index_select",
    "gather",
    "where",
    "masked_fill",
    "nll_loss",
    "conv2d",
    "conv2d_stride_padding_dilation",
    "conv2d_groups",
    "conv1d",
    "max_pool2d",
    "avg_pool2d",
    "avg_pool2d_exclude_pad",
    "batch_norm2d_train",
    "batch_norm2d_eval",
    "sdpa",
    "sdpa_causal_heads",
    "sdpa_bool_mask",
    "sdpa_broadcast_heads_padding_mask",
    "sdpa_float_mask",
    "layer_norm",
    "layer_norm_two_dims",
    "layer_norm_bias_only_two_dims",
    "layer_norm_no_affine",
    "context_pool_1d",
    "context_pool_1d_causal_window",
    "context_pool_1d_unnormalized",
    "context_pool_2d",
    "context_pool_2d_stride2",
];

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
            let (ga, gb) = (gd.get(a).unwrap(), g64.get(b).unwrap());
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
