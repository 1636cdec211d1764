//! Every op in the registry: forward against the naive f64 reference (in f64 and in f32), and
//! backward against central finite differences in f64.

use cubegrad::autograd::{gradcheck, GradcheckOptions};
use cubegrad::testing::{assert_close, registry, Tolerance};
use cubegrad::{DType, Tensor};

#[test]
fn forward_f64_matches_naive_reference() {
    for case in registry() {
        let inputs = case.make_inputs(DType::F64, 1);
        let out = (case.run)(&inputs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let want = case.reference_of(&inputs);
        assert_eq!(
            out.dims(),
            want.shape.as_slice(),
            "{}: output shape",
            case.name
        );
        assert_eq!(out.dtype(), DType::F64, "{}: dtype", case.name);
        assert_close(&out.to_vec::<f64>(), &want.data, Tolerance::F64, case.name);
    }
}

#[test]
fn forward_f32_matches_f64_reference() {
    for case in registry() {
        let inputs64 = case.make_inputs(DType::F64, 2);
        let inputs32: Vec<Tensor> = inputs64
            .iter()
            .map(|t| {
                if t.dtype() == DType::F64 {
                    t.to_dtype(DType::F32)
                } else {
                    t.clone()
                }
            })
            .collect();
        // The reference sees exactly the values the f32 op sees.
        let rounded: Vec<Tensor> = inputs32
            .iter()
            .map(|t| {
                if t.dtype() == DType::F32 {
                    t.to_dtype(DType::F64)
                } else {
                    t.clone()
                }
            })
            .collect();
        let out = (case.run)(&inputs32).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(out.dtype(), DType::F32, "{}: dtype", case.name);
        let want = case.reference_of(&rounded);
        assert_close(&out.to_vec::<f64>(), &want.data, case.f32_tol, case.name);
    }
}

#[test]
fn gradcheck_every_op_in_f64() {
    let opts = GradcheckOptions::default();
    for case in registry() {
        for seed in [3, 4] {
            let inputs: Vec<Tensor> = case
                .make_inputs(DType::F64, seed)
                .into_iter()
                .zip(&case.inputs)
                .map(|(t, spec)| if spec.is_float() { t.with_grad() } else { t })
                .collect();
            let report = gradcheck(|x| (case.run)(x), &inputs, &opts)
                .unwrap_or_else(|e| panic!("{} (seed {seed}): {e}", case.name));
            assert!(report.max_error <= 1e-6, "{}: {report}", case.name);
            assert!(report.checked > 0, "{}: nothing checked", case.name);
        }
    }
}

/// The foundation issue lists these ops; each must have a registry entry (and so a forward
/// test and a gradcheck).
#[test]
fn registry_covers_the_required_ops() {
    let names: Vec<&str> = registry().iter().map(|c| c.name).collect();
    let required = [
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "exp",
        "log",
        "sqrt",
        "powf",
        "abs",
        "tanh",
        "sigmoid",
        "relu",
        "gelu",
        "gelu_tanh",
        "gru",
        "matmul",
        "matmul_batched_broadcast",
        "sum_axis",
        "mean_axes_keepdim",
        "max_axis",
        "min_axes_keepdim",
        "softmax",
        "log_softmax",
        "masked_softmax",
        "masked_softmax_lens",
        "reshape",
        "permute",
        "transpose",
        "narrow",
        "concat",
        "stack",
        "index_select",
        "gather",
        "where",
        "masked_fill",
        "cross_entropy",
        "cross_entropy_ignore_smooth",
        "mse_loss",
        "nll_loss",
    ];
    for r in required {
        assert!(names.contains(&r), "no registry entry for {r}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate registry names");
}

/// The f32 backward of every op against its f64 backward (the oracle), on the same values.
#[test]
fn f32_gradients_match_f64_gradients() {
    for case in registry() {
        let base = case.make_inputs(DType::F64, 5);
        let as_dtype = |dt: DType| -> Vec<Tensor> {
            base.iter()
                .zip(&case.inputs)
                .map(|(t, spec)| {
                    if spec.is_float() {
                        t.to_dtype(DType::F32).to_dtype(dt).with_grad()
                    } else {
                        t.clone()
                    }
                })
                .collect()
        };
        let (x32, x64) = (as_dtype(DType::F32), as_dtype(DType::F64));
        let out64 = (case.run)(&x64).unwrap();
        let seed: Vec<f64> = (0..out64.numel())
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let seed64 = Tensor::from_vec(seed, out64.shape().clone());
        let g64 = out64.backward_with(&seed64);
        let g32 = (case.run)(&x32)
            .unwrap()
            .backward_with(&seed64.to_dtype(DType::F32));
        for (i, (a, b)) in x32.iter().zip(&x64).enumerate() {
            if !a.requires_grad() {
                continue;
            }
            // An input the op does not differentiate (LSH's rotations) has no gradient in
            // either precision.
            let (ga, gb) = match (g32.get(a), g64.get(b)) {
                (Some(ga), Some(gb)) => (ga, gb),
                (None, None) => continue,
                (ga, gb) => panic!(
                    "{} input {i}: f32 gradient {}, f64 gradient {}",
                    case.name,
                    ga.is_some(),
                    gb.is_some()
                ),
            };
            assert_eq!(ga.dtype(), DType::F32, "{}: gradient dtype", case.name);
            assert_close(
                &ga.to_vec::<f64>(),
                &gb.to_vec::<f64>(),
                Tolerance::F32,
                &format!("{} input {i}", case.name),
            );
        }
    }
}
