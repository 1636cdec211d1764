//! The PyTorch options people reach for, against PyTorch's own values:
//! `fixtures/options_reference.json` (made by `fixtures/make_options_reference.py`) holds
//! `F.cross_entropy` with class weights, label smoothing, ignore index, every reduction and the
//! class axis at dim 1, and `F.avg_pool2d` / `F.max_pool2d` with `ceil_mode`,
//! `count_include_pad` and `divisor_override`, each with its input's gradient for a cotangent
//! that weighs every element differently. Also `Module::to_dtype`.

use cubegrad::nn::{
    try_avg_pool2d_with, try_max_pool2d_with, AvgPool2dOptions, BatchNorm2d, Linear,
    MaxPool2dOptions, Module,
};
use cubegrad::ops::{CrossEntropyOptions, Reduction};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{DType, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/options_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let d = dims(v);
    (d[0], d[1])
}

#[test]
fn cross_entropy_options_match_pytorch() {
    let f = fixture();
    let cases = f["cross_entropy"].as_object().unwrap();
    assert!(cases.len() >= 7);
    for (name, c) in cases {
        let shape = dims(&c["x_shape"]);
        let x = Tensor::from_vec(floats(&c["x"]), shape.as_slice()).with_grad();
        let class_dim = c["class_dim"].as_i64().unwrap() as isize;
        let mut t_shape = shape.clone();
        t_shape.remove(if class_dim < 0 { shape.len() - 1 } else { 1 });
        let targets: Vec<i64> = c["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let t = Tensor::from_vec(targets, t_shape.as_slice());
        let opts = CrossEntropyOptions {
            ignore_index: Some(c["ignore_index"].as_i64().unwrap()),
            label_smoothing: c["label_smoothing"].as_f64().unwrap(),
            weight: (!c["weight"].is_null()).then(|| {
                let w = floats(&c["weight"]);
                let n = w.len();
                Tensor::from_vec(w, [n])
            }),
            reduction: match c["reduction"].as_str().unwrap() {
                "none" => Reduction::None,
                "sum" => Reduction::Sum,
                _ => Reduction::Mean,
            },
            class_dim,
        };
        let loss = x.try_cross_entropy(&t, opts).unwrap();
        assert_eq!(loss.dims(), dims(&c["loss_shape"]).as_slice(), "{name}");
        assert_close(
            &loss.to_vec::<f64>(),
            &floats(&c["loss"]),
            Tolerance::F64,
            name,
        );
        let seed = Tensor::from_vec(floats(&c["seed"]), loss.dims());
        let g = loss.backward_with(&seed);
        let gx = g.get(&x).unwrap().to_vec::<f64>();
        assert_close(
            &gx,
            &floats(&c["grad"]),
            Tolerance::F64,
            &format!("{name}: grad"),
        );
    }
}

#[test]
fn pooling_options_match_pytorch() {
    let f = fixture();
    let cases = f["pool2d"].as_object().unwrap();
    assert!(cases.len() >= 7);
    for (name, c) in cases {
        let x = Tensor::from_vec(floats(&c["x"]), dims(&c["x_shape"]).as_slice()).with_grad();
        let (kernel, stride, padding) =
            (pair(&c["kernel"]), pair(&c["stride"]), pair(&c["padding"]));
        let ceil_mode = c["ceil_mode"].as_bool().unwrap();
        let y = if c["kind"] == "max" {
            let o = MaxPool2dOptions {
                kernel,
                stride,
                padding,
                ceil_mode,
            };
            try_max_pool2d_with(&x, o).unwrap()
        } else {
            let o = AvgPool2dOptions {
                kernel,
                stride,
                padding,
                ceil_mode,
                count_include_pad: c["count_include_pad"].as_bool().unwrap(),
                divisor_override: c["divisor_override"].as_u64().map(|d| d as usize),
            };
            try_avg_pool2d_with(&x, o).unwrap()
        };
        assert_eq!(y.dims(), dims(&c["y_shape"]).as_slice(), "{name}");
        assert_close(&y.to_vec::<f64>(), &floats(&c["y"]), Tolerance::F64, name);
        let seed = Tensor::from_vec(floats(&c["seed"]), y.dims());
        let gx = y.backward_with(&seed).get(&x).unwrap().to_vec::<f64>();
        assert_close(
            &gx,
            &floats(&c["grad"]),
            Tolerance::F64,
            &format!("{name}: grad"),
        );
    }
    // A zero divisor is refused, as in PyTorch.
    let x = Tensor::zeros([1, 1, 4, 4]);
    let mut o = AvgPool2dOptions::new((2, 2));
    o.divisor_override = Some(0);
    let err = try_avg_pool2d_with(&x, o).unwrap_err().to_string();
    assert!(
        err.contains("avg_pool2d") && err.contains("divisor_override"),
        "{err}"
    );
}

/// `Module::to_dtype` converts the floating-point parameters and buffers and leaves integer
/// buffers alone (batch norm's step counter), as `module.double()` does.
#[test]
fn modules_convert_to_f64_like_module_double() {
    let mut lin = Linear::new(3, 2, true);
    let x32 = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], [1, 3]);
    let y32 = lin.forward(&x32).to_vec::<f64>();
    lin.to_dtype(DType::F64);
    for (name, p) in lin.parameters() {
        assert_eq!(p.dtype(), DType::F64, "{name}");
        assert!(p.requires_grad(), "{name} is still trained");
    }
    let y64 = lin.forward(&x32.to_dtype(DType::F64)).to_vec::<f64>();
    assert_close(&y64, &y32, Tolerance::F32, "the same function in f64");
    let mut bn = BatchNorm2d::new(4);
    bn.to_dtype(DType::F64);
    for (name, t) in bn.state_dict() {
        let want = if name == "num_batches_tracked" {
            DType::I64
        } else {
            DType::F64
        };
        assert_eq!(t.dtype(), want, "{name}");
    }
    let err = bn.try_to_dtype(DType::I64).unwrap_err().to_string();
    assert!(err.contains("Module::to_dtype"), "{err}");
}

/// PyTorch's N-d layout given without `class_dim` is an error that says how to ask for it.
#[test]
fn the_nd_layout_without_class_dim_names_the_option() {
    let x = Tensor::zeros([2, 4, 3]);
    let t = Tensor::from_vec(vec![0i64, 1, 2, 3, 0, 1], [2, 3]);
    let err = x
        .try_cross_entropy(&t, CrossEntropyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cross_entropy") && err.contains("class_dim"),
        "{err}"
    );
}
