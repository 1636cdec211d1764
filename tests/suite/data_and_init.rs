//! Loaders name the file and line on bad input; splits and batches are deterministic and
//! complete; initialisers have the spread their formulas promise.

use cubegrad::data::{load_digits, Dataset};
use cubegrad::{manual_seed, Tensor};
use std::io::Write;

fn digits_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz").to_string()
}

fn write_tmp(name: &str, text: &str, gz: bool) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cubegrad-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    if gz {
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
    } else {
        f.write_all(text.as_bytes()).unwrap();
    }
    p
}

#[test]
fn digits_load_with_the_right_shapes_and_ranges() {
    let d = load_digits(digits_path()).unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.x.dims(), &[1797, 64]);
    let x = d.x.to_vec::<f32>();
    assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let y = d.y.to_vec::<i64>();
    for c in 0..10 {
        let n = y.iter().filter(|&&v| v == c).count();
        assert!((150..=210).contains(&n), "class {c} has {n} images");
    }
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
    let short = write_tmp("short.csv", &format!("{}1,2,3\n", row("4")), false);
    let e = load_digits(&short).unwrap_err().to_string();
    assert!(
        e.contains("short.csv") && e.contains("line 2") && e.contains("expected 65"),
        "{e}"
    );
    let bad_label = write_tmp("label.csv.gz", &row("12"), true);
    let e = load_digits(&bad_label).unwrap_err().to_string();
    assert!(
        e.contains("label.csv.gz") && e.contains("line 1") && e.contains("not a digit"),
        "{e}"
    );
    let not_num = write_tmp("nan.csv", &row("x"), false);
    assert!(load_digits(&not_num)
        .unwrap_err()
        .to_string()
        .contains("line 1"));
    let not_gz = write_tmp("fake.csv.gz", "plain text", false);
    assert!(load_digits(&not_gz)
        .unwrap_err()
        .to_string()
        .contains("gzip"));
    let e = load_digits("no/such/file.csv").unwrap_err().to_string();
    assert!(e.contains("no/such/file.csv"), "{e}");
}

#[test]
fn splits_are_deterministic_disjoint_and_complete() {
    let n = 103;
    let d = Dataset::new(
        Tensor::arange(0.0, n as f64, 1.0).reshape(&[n, 1]),
        Tensor::arange_i64(n),
    );
    let a = d.split(&[0.7, 0.15, 0.15], 5);
    let b = d.split(&[0.7, 0.15, 0.15], 5);
    let c = d.split(&[0.7, 0.15, 0.15], 6);
    let ids = |s: &[Dataset]| s.iter().map(|p| p.y.to_vec::<i64>()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&c));
    assert_eq!(
        a.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![72, 15, 16]
    );
    let mut all: Vec<i64> = ids(&a).concat();
    all.sort();
    assert_eq!(all, (0..n as i64).collect::<Vec<_>>());
    // x and y stay paired.
    assert_eq!(
        a[1].x
            .to_vec::<f32>()
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>(),
        a[1].y.to_vec::<i64>()
    );
}

#[test]
fn batches_cover_every_example_once_in_seeded_order() {
    let n = 50;
    let d = Dataset::new(Tensor::zeros([n, 2]), Tensor::arange_i64(n));
    manual_seed(3);
    let first: Vec<Vec<i64>> = d.batches(16, true).map(|(_, y)| y.to_vec()).collect();
    manual_seed(3);
    let again: Vec<Vec<i64>> = d.batches(16, true).map(|(_, y)| y.to_vec()).collect();
    assert_eq!(first, again);
    assert_eq!(
        first.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![16, 16, 16, 2]
    );
    let mut seen: Vec<i64> = first.concat();
    assert_ne!(seen, (0..n as i64).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());
    let ordered: Vec<i64> = d
        .batches(16, false)
        .flat_map(|(_, y)| y.to_vec::<i64>())
        .collect();
    assert_eq!(ordered, (0..n as i64).collect::<Vec<_>>());
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[test]
fn initialisers_follow_their_formulas() {
    manual_seed(0);
    // Xavier uniform on [200, 300]: U(-a, a), a = sqrt(6 / 500); std = a / sqrt(3).
    let w = Tensor::xavier_uniform([200, 300], 1.0).to_vec::<f32>();
    let a = (6.0f64 / 500.0).sqrt();
    let (m, s) = mean_std(&w);
    assert!(w.iter().all(|&v| (v as f64).abs() <= a));
    assert!(
        m.abs() < 0.005 && (s - a / 3f64.sqrt()).abs() < 0.005,
        "mean {m} std {s}"
    );
    // Kaiming normal for a conv weight [64, 32, 3, 3]: fan_in = 288, std = sqrt(2 / 288).
    let k = Tensor::kaiming_normal([64, 32, 3, 3]).to_vec::<f32>();
    let (m, s) = mean_std(&k);
    assert!(
        m.abs() < 0.005 && (s - (2.0f64 / 288.0).sqrt()).abs() < 0.004,
        "mean {m} std {s}"
    );
    // Seeding reproduces the same draws.
    manual_seed(9);
    let r1 = Tensor::randn([10], 0.0, 1.0).to_vec::<f32>();
    manual_seed(9);
    assert_eq!(Tensor::randn([10], 0.0, 1.0).to_vec::<f32>(), r1);
}

/// Transformer-XL's batching: row `b` of segment `t + 1` starts where row `b` of segment `t`
/// ended, the targets are the next tokens, and too short a text is refused by name.
#[test]
fn stream_batches_continue_each_row_across_segments() {
    let ids: Vec<i64> = (0..23).collect();
    // 22 predictable tokens in 2 streams of 11: 3 segments of 3.
    assert_eq!(
        cubegrad::data::lm_stream_segments(ids.len(), 2, 3).unwrap(),
        3
    );
    let rows = |t: usize| {
        let (x, y) = cubegrad::data::lm_stream_batch(&ids, 2, 3, t).unwrap();
        (x.to_vec::<i64>(), y.to_vec::<i64>())
    };
    assert_eq!(rows(0).0, [0, 1, 2, 11, 12, 13]);
    assert_eq!(rows(1).0, [3, 4, 5, 14, 15, 16]);
    assert_eq!(
        rows(2),
        (vec![6, 7, 8, 17, 18, 19], vec![7, 8, 9, 18, 19, 20])
    );
    assert!(cubegrad::data::lm_stream_batch(&ids, 2, 3, 3).is_err());
    let err = cubegrad::data::lm_stream_segments(5, 4, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lm_stream_batch"), "{err}");
}
