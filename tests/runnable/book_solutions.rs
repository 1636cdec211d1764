//! The book's exercise solutions (`book/solutions/`), compiled and run, and its listings and
//! figures checked: every `{{#include file:anchor}}` names a file that has that anchor, and
//! every figure a chapter shows exists.

#[path = "../../book/solutions/ch01.rs"]
mod ch01;
#[path = "../../book/solutions/ch02.rs"]
mod ch02;
#[path = "../../book/solutions/ch03.rs"]
mod ch03;
#[path = "../../book/solutions/ch04.rs"]
mod ch04;
#[path = "../../book/solutions/ch05.rs"]
mod ch05;
#[path = "../../book/solutions/ch06.rs"]
mod ch06;
#[path = "../../book/solutions/ch07.rs"]
mod ch07;
#[path = "../../book/solutions/ch08.rs"]
mod ch08;
#[path = "../../book/solutions/ch09.rs"]
mod ch09;
#[path = "../../book/solutions/ch10.rs"]
mod ch10;
#[path = "../../book/solutions/ch11.rs"]
mod ch11;
#[path = "../../book/solutions/ch12.rs"]
mod ch12;
#[path = "../../book/solutions/ch13.rs"]
mod ch13;
#[path = "../../book/solutions/ch14.rs"]
mod ch14;
#[path = "../../book/solutions/ch15.rs"]
mod ch15;

use cubegrad::{manual_seed, Tensor};
use std::path::{Path, PathBuf};

#[test]
fn ch01_broadcasting() {
    assert_eq!(ch01::making_tensors().dims(), &[2, 3]);
    assert_eq!(
        ch01::broadcast_shapes(),
        vec![vec![5, 3, 4], vec![2, 2], vec![2, 2]]
    );
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
    let b = Tensor::from_vec(vec![10.0f32, 20.0], [2]);
    assert_eq!(
        ch01::outer(&a, &b).to_vec::<f32>(),
        vec![10.0, 20.0, 20.0, 40.0, 30.0, 60.0]
    );
    let x = Tensor::from_vec(vec![0.0f32, 0.0, 1.0, 1.0], [2, 2]);
    let y = Tensor::from_vec(vec![3.0f32, 4.0, 1.0, 0.0, 0.0, 1.0], [3, 2]);
    // |(0,0)−(3,4)|² = 25, |(0,0)−(1,0)|² = 1, … , |(1,1)−(0,1)|² = 1
    assert_eq!(
        ch01::sq_distances(&x, &y).to_vec::<f32>(),
        vec![25.0, 1.0, 1.0, 13.0, 1.0, 1.0]
    );
    // The error the chapter shows, word for word.
    let e = Tensor::zeros([2, 3])
        .try_add(&Tensor::zeros([3, 2]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "add: [2, 3] and [3, 2]: cannot broadcast: dim -2 is 2 on the left and 3 on the right"
    );
}

#[test]
fn ch02_autodiff() {
    manual_seed(0);
    assert!(ch02::use_gradcheck().max_error < 1e-6);
    assert_eq!(ch02::grads_of_ab_plus_a(), (4.0, 2.0));
    assert!(ch02::check_square().unwrap().max_error < 1e-8);
    let (by_sum, check) = ch02::plain_sum_misses_what_gradcheck_finds();
    assert_eq!(by_sum, vec![2.0; 4], "a plain sum cannot see the reversal");
    assert!(check.unwrap_err().to_string().contains("gradcheck failed"));
}

#[test]
fn ch03_kernels_simulated() {
    let (naive, tiled) = ch03::global_reads(64, 128, 32);
    assert_eq!(naive, 64 * 32 * 2 * 128);
    assert_eq!(naive / tiled, 16);
    let v: Vec<f64> = (1..=8).map(f64::from).collect();
    assert_eq!(ch03::tree_sum(&v), 36.0);
    // Six units: strides 3, then 1; unit 2's sum (3 + 6) is never added in.
    let v6: Vec<f64> = (1..=6).map(f64::from).collect();
    assert_eq!(ch03::tree_sum(&v6), 21.0 - 9.0);
}

#[test]
fn ch04_optimizers() {
    let (hand, lib) = ch04::momentum_by_hand_and_with_sgd(20);
    for (h, l) in hand.iter().zip(&lib) {
        assert!((h - l).abs() < 1e-12, "{h} vs {l}");
    }
    for scale in [1e-3, 1.0, 1e3] {
        let step = ch04::adam_first_step(scale, 0.01);
        assert!((step - 0.01).abs() < 1e-4, "scale {scale}: step {step}");
    }
}

#[test]
fn ch05_attention_pooling() {
    let keys = [0.5f32, 1.0, 2.5, 4.0];
    let values = [1.0f32, 3.0, -2.0, 6.0];
    let mean = values.iter().sum::<f32>() / 4.0;
    let q = [0.9f32, 3.9];
    // w → 0: every weight 1/n, the average. w large: the nearest key's value.
    for p in ch05::gaussian_pool(&q, &keys, &values, 1e-3) {
        assert!((p - mean).abs() < 1e-3, "{p}");
    }
    let sharp = ch05::gaussian_pool(&q, &keys, &values, 1e3);
    assert!(
        (sharp[0] - 3.0).abs() < 1e-4 && (sharp[1] - 6.0).abs() < 1e-4,
        "{sharp:?}"
    );
    let laplace = ch05::laplace_pool(&q, &keys, &values, 1e3);
    assert!((laplace[0] - 3.0).abs() < 1e-4, "{laplace:?}");
    // Weights sum to one: a constant value comes back unchanged.
    for p in ch05::laplace_pool(&q, &keys, &[2.0; 4], 1.0) {
        assert!((p - 2.0).abs() < 1e-6);
    }
}

#[test]
fn ch06_scoring() {
    manual_seed(2);
    let (naive, safe) = ch06::naive_and_safe_softmax();
    assert!(naive.iter().all(|v| v.is_nan()), "{naive:?}");
    let e = std::f32::consts::E;
    assert!((safe[1] - e / (1.0 + e)).abs() < 1e-6, "{safe:?}");
    assert!(ch06::masked_softmax_gradcheck().unwrap().max_error < 1e-8);
    let (a, b) = ch06::additive_weights_ignore_padding();
    assert_eq!((a[2], a[3], b[2], b[3]), (0.0, 0.0, 0.0, 0.0));
    assert_eq!(a, b, "masked keys change nothing");
    assert!((a[0] + a[1] - 1.0).abs() < 1e-6);
}

#[test]
fn ch07_bahdanau() {
    assert_eq!(ch07::bleu_of_repetition(), 0.0);
    manual_seed(3);
    let gru = cubegrad::nn::Gru::new(3, 5, 2);
    let (whole, split) = ch07::whole_and_split(&gru, &Tensor::randn([2, 7, 3], 0.0, 1.0));
    for (a, b) in whole.iter().zip(&split) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn ch08_multihead() {
    manual_seed(4);
    let (a, b) = ch08::permuted_outputs(&[3, 0, 4, 1, 2]);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    let dots = ch08::dot_at_offset(3, &[0, 5, 17, 40], 16);
    for d in &dots {
        assert!((d - dots[0]).abs() < 1e-4, "{dots:?}");
    }
}

#[test]
fn ch09_transformer() {
    manual_seed(5);
    let (formula, counted) = ch09::encoder_params(64, 4, 256);
    assert_eq!(formula, counted);
    let (a, b) = ch09::causal_prefix_outputs(10, 6);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn ch10_vit() {
    manual_seed(6);
    assert_eq!(ch10::vit_tokens(), (197, 197, 197 * 197));
    // Patch (1, 2) of a 4 × 4 grid is patch 6, token 7 after the class token.
    assert_eq!(ch10::tokens_changed_by_one_patch(), vec![7]);
}

#[test]
fn ch11_cheaper_attention() {
    let s = [0.3, 2.0, -1.0, 5.0, 4.5, 0.0, 1.0, -3.0, 2.2];
    let v = [1.0, -2.0, 0.5, 3.0, 1.5, 0.0, 2.0, 1.0, -1.0];
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let direct = w.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() / w.iter().sum::<f64>();
    assert!((ch11::online_softmax_weighted_sum(&s, &v, 4) - direct).abs() < 1e-12);
    let (without, with) = ch11::scores_to_generate(1000);
    assert_eq!(with, 500_500);
    assert_eq!(without, 1000 * 1001 * 1002 / 6);
}

#[test]
fn ch12_contextpool() {
    let (hand, layer) = ch12::by_hand_and_layer();
    for (h, l) in hand.iter().zip(&layer) {
        assert!((h - *l as f64).abs() < 1e-4, "{h} vs {l}");
    }
    manual_seed(8);
    assert!(ch12::causal_gradcheck().unwrap().max_error < 1e-6);
}

#[test]
fn ch13_convnets() {
    manual_seed(7);
    let (max, cp) = ch13::block_shapes();
    assert_eq!(max, vec![2, 8, 14, 14]);
    assert_eq!(cp, max);
    let (y, centres) = ch13::tiny_pool_picks_centres();
    for (a, b) in y.iter().zip(&centres) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn ch14_your_own_layer() {
    manual_seed(1);
    assert!(ch14::check_scaled_tanh().unwrap().max_error < 1e-8);
    assert!(ch14::check_lean_swish().unwrap().max_error < 1e-8);
    assert!(ch14::check_scaled_tanh_loops().unwrap().max_error < 1e-8);
}

#[test]
fn ch15_counting() {
    let (add, matmul) = ch15::arithmetic_intensity();
    assert!(add < 0.1 && matmul > 100.0, "{add} {matmul}");
    let (p256, a256) = ch15::pooling_vs_attention(256);
    let (p4096, a4096) = ch15::pooling_vs_attention(4096);
    // Attention grows 16 times faster than pooling from n = 256 to n = 4096.
    let ratio = |a: u64, p: u64| a as f64 / p as f64;
    assert_eq!(ratio(a4096, p4096) / ratio(a256, p256), 16.0);
    assert_eq!(p4096 / p256, 16);
}

fn book() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("book")
}

fn chapters() -> Vec<(PathBuf, String)> {
    let mut v: Vec<_> = std::fs::read_dir(book().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_listing_and_figure_exists() {
    let mut includes = 0;
    for (path, text) in chapters() {
        let dir = path.parent().unwrap();
        for part in text.split("{{#include ").skip(1) {
            let spec = &part[..part.find("}}").unwrap()];
            // A whole file is included only for the examples' results tables.
            let Some((file, anchor)) = spec.split_once(':') else {
                assert!(
                    spec.starts_with("results/"),
                    "{}: {spec} names no anchor",
                    path.display()
                );
                assert!(
                    dir.join(spec).is_file(),
                    "{}: {spec} is missing (run book/figures.sh)",
                    path.display()
                );
                continue;
            };
            let src = std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", path.display()));
            assert!(
                src.contains(&format!("ANCHOR: {anchor}\n"))
                    && src.contains(&format!("ANCHOR_END: {anchor}\n")),
                "{}: {file} has no anchor {anchor:?}",
                path.display()
            );
            includes += 1;
        }
        for part in text.split("](figures/").skip(1) {
            let name = &part[..part.find(')').unwrap()];
            assert!(
                Path::new(dir).join("figures").join(name).is_file(),
                "{}: figure {name} is missing (run book/figures.sh)",
                path.display()
            );
        }
    }
    assert!(includes >= 8, "{includes} listings");
}

#[test]
fn summary_lists_every_chapter_file() {
    let summary = std::fs::read_to_string(book().join("src/SUMMARY.md")).unwrap();
    for (path, _) in chapters() {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
        }
    }
}
