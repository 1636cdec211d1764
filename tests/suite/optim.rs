//! Optimizers, clipping and schedules against PyTorch: `tests/fixtures/optim_reference.json`
//! holds `torch.optim` trajectories for a deterministic gradient rule (see the script beside
//! it); here the same gradients go through cubegrad's optimizers, in f64.

use cubegrad::autograd::Gradients;
use cubegrad::nn::Module;
use cubegrad::optim::{
    clip_grad_norm, AdamConfig, LrSchedule, NoamSchedule, Optimizer, SgdConfig, WarmupCosine,
};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::Tensor;
use serde_json::Value;

struct Params {
    w: Tensor,
    b: Tensor,
}

impl Module for Params {
    cubegrad::module_tensors! {
        param "w" w;
        param "b" b;
    }
}

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/optim_reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        _ => panic!("not a number array"),
    }
}

fn initial(r: &Value) -> Params {
    Params {
        w: Tensor::from_vec(flat(&r["w0"]), [3, 4]).with_grad(),
        b: Tensor::from_vec(flat(&r["b0"]), [4]).with_grad(),
    }
}

/// The fixture's gradient rule, from the current parameters.
fn grads_at(t: usize, p: &Params) -> Gradients {
    let (w, b) = (p.w.to_vec::<f64>(), p.b.to_vec::<f64>());
    let gw: Vec<f64> = (0..12)
        .map(|k| (0.7 * t as f64 + 0.3 * k as f64).sin() + 0.1 * w[k])
        .collect();
    let gb: Vec<f64> = (0..4)
        .map(|j| (0.5 * t as f64 + 0.9 * j as f64).cos() - 0.2 * b[j])
        .collect();
    let mut g = Gradients::default();
    g.insert(&p.w, Tensor::from_vec(gw, [3, 4]));
    g.insert(&p.b, Tensor::from_vec(gb, [4]));
    g
}

fn optimizer(name: &str, cfg: &Value) -> Box<dyn Optimizer> {
    let f = |k: &str| cfg[k].as_f64().unwrap_or(0.0);
    let betas = || {
        (
            cfg["betas"][0].as_f64().unwrap(),
            cfg["betas"][1].as_f64().unwrap(),
        )
    };
    match name {
        n if n.starts_with("sgd") => Box::new(
            SgdConfig {
                lr: f("lr"),
                momentum: f("momentum"),
                dampening: f("dampening"),
                weight_decay: f("weight_decay"),
                nesterov: cfg["nesterov"].as_bool().unwrap_or(false),
            }
            .init(),
        ),
        "adam" | "adam_l2" => Box::new(
            AdamConfig::adam()
                .lr(f("lr"))
                .betas(betas().0, betas().1)
                .eps(f("eps"))
                .weight_decay(f("weight_decay"))
                .init(),
        ),
        "adamw" => Box::new(
            AdamConfig::adamw()
                .lr(f("lr"))
                .betas(betas().0, betas().1)
                .eps(f("eps"))
                .weight_decay(f("weight_decay"))
                .init(),
        ),
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn trajectories_match_torch_optim() {
    let r = reference();
    let steps = r["T"].as_u64().unwrap() as usize;
    let cases = r["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 6);
    for (name, case) in cases {
        let mut p = initial(&r);
        let mut opt = optimizer(name, &case["config"]);
        for t in 1..=steps {
            let g = grads_at(t, &p);
            opt.step(&mut p, &g).unwrap();
            let what = format!("{name} step {t}");
            assert_close(
                &p.w.to_vec::<f64>(),
                &flat(&case["w"][t - 1]),
                Tolerance::F64,
                &what,
            );
            assert_close(
                &p.b.to_vec::<f64>(),
                &flat(&case["b"][t - 1]),
                Tolerance::F64,
                &what,
            );
        }
    }
}

#[test]
fn optimizer_state_round_trips() {
    let r = reference();
    let case = &r["cases"]["adam_l2"];
    // Four steps, then move the state into a fresh optimizer and take the remaining four.
    let mut p = initial(&r);
    let mut first = optimizer("adam_l2", &case["config"]);
    for t in 1..=4 {
        let g = grads_at(t, &p);
        first.step(&mut p, &g).unwrap();
    }
    let mut second = optimizer(
        "adam",
        &serde_json::json!({"lr": 1.0, "betas": [0.5, 0.5], "eps": 1.0}),
    );
    second.load_state(&first.state()).unwrap();
    for t in 5..=8 {
        let g = grads_at(t, &p);
        second.step(&mut p, &g).unwrap();
    }
    assert_close(
        &p.w.to_vec::<f64>(),
        &flat(&case["w"][7]),
        Tolerance::F64,
        "resumed adam",
    );
    // A state of another kind is refused.
    let mut sgd = optimizer("sgd_plain", &case["config"]);
    assert!(sgd.load_state(&first.state()).is_err());
}

#[test]
fn clip_grad_norm_matches_torch() {
    let r = reference();
    let c = &r["clip_grad_norm"];
    let p = initial(&r);
    let mut g = grads_at(1, &p);
    let total = clip_grad_norm(&p, &mut g, c["max_norm"].as_f64().unwrap());
    assert!(
        (total - c["total_norm"].as_f64().unwrap()).abs() < 1e-12,
        "{total}"
    );
    assert_close(
        &g.get(&p.w).unwrap().to_vec::<f64>(),
        &flat(&c["gw"]),
        Tolerance::F64,
        "clipped gw",
    );
    assert_close(
        &g.get(&p.b).unwrap().to_vec::<f64>(),
        &flat(&c["gb"]),
        Tolerance::F64,
        "clipped gb",
    );
}

#[test]
fn schedules_match_their_formulas() {
    let r = reference();
    let noam = NoamSchedule {
        d_model: 128,
        warmup: 100,
        factor: 1.0,
    };
    let got: Vec<f64> = (1..=300).map(|s| noam.lr(s)).collect();
    assert_close(&got, &flat(&r["noam"]["lr"]), Tolerance::F64, "noam");
    let c = &r["cosine"];
    let cos = WarmupCosine {
        base: 0.1,
        min: 0.001,
        warmup: 10,
        total: 100,
    };
    let got: Vec<f64> = (0..=100).map(|s| cos.lr(s)).collect();
    assert_close(&got, &flat(&c["lr"]), Tolerance::F64, "cosine");
    // The peak of the Noam schedule is at the end of warm-up.
    assert!(noam.lr(100) > noam.lr(99) && noam.lr(100) > noam.lr(101));
}

#[test]
fn parameters_without_gradients_are_left_alone() {
    let r = reference();
    let mut p = initial(&r);
    let before = p.b.to_vec::<f64>();
    let mut g = Gradients::default();
    g.insert(&p.w, Tensor::ones([3, 4]).to_dtype(cubegrad::DType::F64));
    let mut opt = AdamConfig::adam().init();
    opt.step(&mut p, &g).unwrap();
    assert_eq!(p.b.to_vec::<f64>(), before);
    // A gradient of the wrong shape is an error naming the parameter.
    let mut bad = Gradients::default();
    bad.insert(&p.w, Tensor::ones([4, 3]).to_dtype(cubegrad::DType::F64));
    let e = opt.step(&mut p, &bad).unwrap_err().to_string();
    assert!(e.contains("\"w\""), "{e}");
}

#[test]
fn adam_keeps_each_parameters_state_when_some_steps_leave_it_out() {
    // Steps that give gradients to `w` only, to `b` only, then to both: each parameter's
    // state follows it (slots are found by position, and by name when the position moved),
    // so it ends exactly where a run over that parameter alone ends.
    let rule = |t: usize, n: usize| -> Tensor {
        Tensor::from_vec(
            (0..n)
                .map(|k| ((t * 7 + k) as f64 * 0.37).sin())
                .collect::<Vec<_>>(),
            [n],
        )
    };
    let start = || Params {
        w: Tensor::from_vec(vec![0.1f64; 12], [3, 4]).with_grad(),
        b: Tensor::from_vec(vec![-0.2f64; 4], [4]).with_grad(),
    };
    let mut both = start();
    let mut opt = AdamConfig::adam().lr(0.1).init();
    // (w gets a gradient, b gets one) per step.
    let plan = [
        (true, false),
        (false, true),
        (true, true),
        (false, true),
        (true, true),
    ];
    for (t, &(gw, gb)) in plan.iter().enumerate() {
        let mut g = Gradients::default();
        if gw {
            g.insert(&both.w, rule(t, 12).reshape(&[3, 4]));
        }
        if gb {
            g.insert(&both.b, rule(t + 100, 4));
        }
        opt.step(&mut both, &g).unwrap();
    }
    // Each parameter alone, with only its own steps.
    for (which, n) in [(0, 12), (1, 4)] {
        let mut alone = start();
        let mut opt = AdamConfig::adam().lr(0.1).init();
        for (t, &(gw, gb)) in plan.iter().enumerate() {
            let mut g = Gradients::default();
            if which == 0 && gw {
                g.insert(&alone.w, rule(t, 12).reshape(&[3, 4]));
            } else if which == 1 && gb {
                g.insert(&alone.b, rule(t + 100, 4));
            } else {
                continue;
            }
            opt.step(&mut alone, &g).unwrap();
        }
        let (got, want) = if which == 0 {
            (both.w.to_vec::<f64>(), alone.w.to_vec::<f64>())
        } else {
            (both.b.to_vec::<f64>(), alone.b.to_vec::<f64>())
        };
        assert_eq!(got.len(), n);
        assert_eq!(got, want, "parameter {which}");
    }
}
