use cubegrad::{no_grad, Tensor};
use std::time::Instant;
fn t(name: &str, f: impl Fn() -> Tensor) {
    f();
    let s = Instant::now();
    for _ in 0..20 {
        let _ = f();
    }
    println!(
        "{name:20} {:.3} ms",
        s.elapsed().as_secs_f64() * 1000.0 / 20.0
    );
}
fn main() {
    let x = Tensor::randn([4096, 512], 0.0, 1.0);
    let w = Tensor::randn([512], 0.0, 1.0);
    let y = Tensor::randn([4096, 512], 0.0, 1.0);
    let s = Tensor::randn([16384, 256], 0.0, 1.0);
    no_grad(|| {
        t("add", || x.add(&y));
        t("mul bcast", || x.mul(&w));
        t("gelu_tanh", || x.gelu_tanh());
        t("tanh", || x.tanh());
        t("exp", || x.exp());
        t("relu", || x.relu());
        t("affine", || x.affine(2.0, 1.0));
        t("softmax", || s.softmax(-1));
    });
}
