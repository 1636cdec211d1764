//! Bad input gets a clear error that names the op and the shapes (or the file); the panicking
//! forms report the caller's line.

use cubegrad::{DType, Error, Tensor};
use std::panic;
use std::sync::{Arc, Mutex};

#[test]
fn matmul_error_names_op_shapes_and_dims() {
    let a = Tensor::zeros([2, 3]);
    let b = Tensor::zeros([4, 5]);
    let e = a.try_matmul(&b).unwrap_err();
    assert_eq!(e.to_string(), "matmul: [2, 3] @ [4, 5]: inner dims 3 != 4");
    assert!(matches!(e, Error::ShapeMismatch { op: "matmul", .. }));
    // The usual slip, a forgotten transpose, gets a hint.
    let w = Tensor::zeros([5, 3]);
    let e = a.try_matmul(&w).unwrap_err().to_string();
    assert!(
        e.contains("inner dims 3 != 5") && e.contains("transpose"),
        "{e}"
    );
}

#[test]
fn broadcast_error_says_which_dim() {
    let e = Tensor::zeros([2, 3])
        .try_add(&Tensor::zeros([4]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "add: [2, 3] and [4]: cannot broadcast: dim -1 is 3 on the left and 4 on the right"
    );
}

#[test]
fn other_shape_errors_name_the_op() {
    let x = Tensor::zeros([2, 3]);
    for (e, op) in [
        (x.try_reshape(&[4, 2]).unwrap_err(), "reshape"),
        (x.try_permute(&[0, 0]).unwrap_err(), "permute"),
        (x.try_narrow(1, 2, 2).unwrap_err(), "narrow"),
        (x.try_sum_axes(&[2], false).unwrap_err(), "sum"),
        (
            Tensor::try_concat(&[&x, &Tensor::zeros([3, 3])], 1).unwrap_err(),
            "concat",
        ),
        (
            x.try_index_select(0, &Tensor::from_vec(vec![5i64], [1]))
                .unwrap_err(),
            "index_select",
        ),
        (
            x.try_cross_entropy(&Tensor::from_vec(vec![0i64, 7], [2]), Default::default())
                .unwrap_err(),
            "cross_entropy",
        ),
        (x.try_add(&x.to_dtype(DType::F64)).unwrap_err(), "add"),
    ] {
        let s = e.to_string();
        assert!(s.starts_with(op), "{op}: {s}");
    }
}

#[test]
fn panicking_form_reports_the_callers_line() {
    let seen: Arc<Mutex<Option<(String, u32, String)>>> = Arc::default();
    let s2 = seen.clone();
    let prev = panic::take_hook();
    // The hook is the whole process's, and other tests run in other threads: keep only this
    // thread's panic.
    let me = std::thread::current().id();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            return;
        }
        let loc = info.location().unwrap();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        *s2.lock().unwrap() = Some((loc.file().to_string(), loc.line(), msg));
    }));
    let a = Tensor::zeros([2, 3]);
    let b = Tensor::zeros([4, 5]);
    let line = line!() + 1;
    let r = panic::catch_unwind(|| a.matmul(&b));
    panic::set_hook(prev);
    assert!(r.is_err());
    let (file, at, msg) = seen.lock().unwrap().clone().unwrap();
    assert!(file.ends_with("tests/suite/errors.rs"), "{file}");
    assert_eq!(at, line);
    assert_eq!(msg, "matmul: [2, 3] @ [4, 5]: inner dims 3 != 4");
}
