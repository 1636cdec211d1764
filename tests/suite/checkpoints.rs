//! safetensors state dicts and training checkpoints: round trips, strict loading with errors
//! that name the tensors, corrupt files as errors, atomic writes, and exact resumption.

use cubegrad::autograd::Gradients;
use cubegrad::io::{load_checkpoint, load_tensors, save_checkpoint, save_tensors, Metadata};
use cubegrad::nn::{Linear, Module};
use cubegrad::optim::{AdamConfig, Optimizer, SgdConfig};
use cubegrad::{manual_seed, Tensor};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cubegrad-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

struct Net {
    a: Linear,
    b: Linear,
}
impl Net {
    fn new() -> Self {
        Net {
            a: Linear::new(4, 6, true),
            b: Linear::new(6, 3, false),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.b.forward(&self.a.forward(x).tanh())
    }
}
impl Module for Net {
    cubegrad::module_tensors! {
        child "a" a;
        child "b" b;
    }
}

fn params(m: &dyn Module) -> Vec<(String, Vec<f32>)> {
    m.parameters()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec()))
        .collect()
}

#[test]
fn module_round_trip_with_pytorch_names() {
    let net = Net::new();
    let names: Vec<String> = net.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a.weight", "a.bias", "b.weight"]);
    assert_eq!(
        net.a.weight.dims(),
        &[6, 4],
        "weight is [out, in] as in PyTorch"
    );
    let path = tmp("net.safetensors");
    net.save(&path).unwrap();
    let mut other = Net::new();
    assert_ne!(params(&net), params(&other));
    other.load(&path).unwrap();
    assert_eq!(params(&net), params(&other));
    // Every dtype survives.
    let t = vec![
        ("f64".to_string(), Tensor::from_vec(vec![1.5f64, -2.0], [2])),
        (
            "i64".to_string(),
            Tensor::from_vec(vec![7i64, -3, 0], [3, 1]),
        ),
        ("bool".to_string(), Tensor::from_vec(vec![true, false], [2])),
    ];
    let p = tmp("dtypes.safetensors");
    let mut meta = Metadata::new();
    meta.insert("note".into(), "hello".into());
    save_tensors(&p, &t, &meta).unwrap();
    let (back, m) = load_tensors(&p).unwrap();
    assert_eq!(m.get("note").map(String::as_str), Some("hello"));
    assert_eq!(back[0].1.to_vec::<bool>(), vec![true, false]);
    assert_eq!(back[1].1.to_vec::<f64>(), vec![1.5, -2.0]);
    assert_eq!(back[2].1.to_vec::<i64>(), vec![7, -3, 0]);
    assert_eq!(back[2].1.dims(), &[3, 1]);
}

#[test]
fn strict_load_names_missing_extra_and_misshaped_tensors() {
    let path = tmp("bad-state.safetensors");
    let tensors = vec![
        ("a.weight".to_string(), Tensor::zeros([6, 5])),
        ("a.bias".to_string(), Tensor::zeros([6])),
        ("c.weight".to_string(), Tensor::zeros([1])),
    ];
    save_tensors(&path, &tensors, &Metadata::new()).unwrap();
    let mut net = Net::new();
    let before = params(&net);
    let e = net.load(&path).unwrap_err().to_string();
    assert!(e.contains("bad-state.safetensors"), "{e}");
    assert!(
        e.contains("\"a.weight\" has shape [6, 5] in the file but [6, 4] in the model"),
        "{e}"
    );
    assert!(e.contains("missing \"b.weight\""), "{e}");
    assert!(e.contains("unexpected \"c.weight\""), "{e}");
    assert_eq!(params(&net), before, "a failed load changes nothing");
}

#[test]
fn corrupt_or_missing_files_are_errors_not_panics() {
    let mut net = Net::new();
    let path = tmp("net-corrupt.safetensors");
    net.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = net.load(&path).unwrap_err().to_string();
        assert!(e.contains("net-corrupt.safetensors"), "cut {cut}: {e}");
    }
    let mut garbage = bytes.clone();
    garbage[8..16].copy_from_slice(b"{{{{{{{{");
    std::fs::write(&path, &garbage).unwrap();
    assert!(net.load(&path).is_err());
    assert!(net
        .load(tmp("does-not-exist.safetensors"))
        .unwrap_err()
        .to_string()
        .contains("does-not-exist"));
}

#[test]
fn writes_are_atomic_and_leave_no_temporary_files() {
    let dir = tmp("atomic");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let net = Net::new();
    net.save(&path).unwrap();
    net.save(&path).unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("w.safetensors")]);
}

/// Trains `steps` steps on a fixed stream of batches drawn from the seeded RNG.
fn run(net: &mut Net, opt: &mut dyn Optimizer, steps: usize) {
    for _ in 0..steps {
        let x = Tensor::randn([8, 4], 0.0, 1.0);
        let y = Tensor::randn([8, 3], 0.0, 1.0);
        let loss = net.forward(&x).mse_loss(&y);
        let grads: Gradients = loss.backward();
        opt.step(net, &grads).unwrap();
    }
}

#[test]
fn resume_from_checkpoint_is_exact() {
    for adam in [true, false] {
        let make_opt = |adam: bool| -> Box<dyn Optimizer> {
            if adam {
                Box::new(AdamConfig::adamw().lr(0.01).init())
            } else {
                Box::new(
                    SgdConfig {
                        lr: 0.05,
                        momentum: 0.9,
                        nesterov: true,
                        ..Default::default()
                    }
                    .init(),
                )
            }
        };
        // One uninterrupted run of 10 steps.
        manual_seed(42);
        let mut net = Net::new();
        let mut opt = make_opt(adam);
        run(&mut net, opt.as_mut(), 10);
        let straight = params(&net);

        // The same run stopped after 4 steps, saved, and resumed in fresh objects.
        manual_seed(42);
        let mut net = Net::new();
        let mut opt = make_opt(adam);
        run(&mut net, opt.as_mut(), 4);
        let path = tmp(&format!("ckpt-{adam}.safetensors"));
        let mut extra = Metadata::new();
        extra.insert("step".into(), "4".into());
        save_checkpoint(&path, &net, opt.as_ref(), &extra).unwrap();
        manual_seed(999);
        let mut net2 = Net::new();
        let mut opt2 = make_opt(adam);
        let ck = load_checkpoint(&path, &mut net2, opt2.as_mut()).unwrap();
        assert_eq!(ck.get::<usize>("step"), Some(4));
        run(&mut net2, opt2.as_mut(), 6);
        assert_eq!(
            params(&net2),
            straight,
            "resumed run differs (adam = {adam})"
        );

        // The checkpoint is also a plain state dict: the model loads from it directly.
        let (tensors, _) = load_tensors(&path).unwrap();
        assert!(tensors.iter().any(|(n, _)| n == "a.weight"));
        assert!(tensors.iter().any(|(n, _)| n.starts_with("optimizer.")));
    }
}

/// The checkpoint of generation `gen`: every parameter filled with `gen`, which the header
/// repeats, so that a load can tell a whole checkpoint from a mix of two.
fn write_generation(path: &std::path::Path, net: &mut Linear, gen: usize) {
    net.visit_params_mut("", &mut |_, p| {
        *p = Tensor::full(p.dims(), gen as f64).with_grad();
    });
    let opt = AdamConfig::adam().init();
    let mut extra = Metadata::new();
    extra.insert("generation".into(), gen.to_string());
    save_checkpoint(path, net, &opt, &extra).unwrap();
}

const KILL_PATH: &str = "CUBEGRAD_KILL_TEST_PATH";

/// Run as a child process by `killed_writers_leave_the_old_or_the_new_checkpoint`: writes
/// checkpoints of increasing generations to the path it is given until it is killed.
#[test]
#[ignore = "the child of killed_writers_leave_the_old_or_the_new_checkpoint, started by it"]
fn checkpoint_writer_child() {
    let path = PathBuf::from(std::env::var(KILL_PATH).expect("started by the kill test"));
    let first: usize = std::env::var("CUBEGRAD_KILL_TEST_FIRST")
        .unwrap()
        .parse()
        .unwrap();
    // 256 KB of weights: long enough to write that kills land inside writes.
    let mut net = Linear::new(256, 256, true);
    for gen in first.. {
        write_generation(&path, &mut net, gen);
    }
}

#[test]
fn killed_writers_leave_the_old_or_the_new_checkpoint() {
    use std::process::{Command, Stdio};
    let dir = tmp("killed-writes");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ck.safetensors");
    let mut net = Linear::new(256, 256, true);
    write_generation(&path, &mut net, 0);
    let (mut last, mut seed) = (0usize, 12345u64);
    for round in 0..200 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "checkpoints::checkpoint_writer_child",
                "--test-threads=1",
            ])
            .env(KILL_PATH, &path)
            .env("CUBEGRAD_KILL_TEST_FIRST", (last + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A pseudo-random moment: during start-up, between writes or inside one.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(std::time::Duration::from_micros(
            2_000 + (seed >> 33) % 60_000,
        ));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut back = Linear::new(256, 256, true);
        let mut opt = AdamConfig::adam().init();
        let ck = load_checkpoint(&path, &mut back, &mut opt)
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint does not load: {e}"));
        let gen: usize = ck.get("generation").unwrap();
        assert!(gen >= last, "round {round}: generation {gen} after {last}");
        for (name, p) in back.parameters() {
            assert!(
                p.to_vec::<f32>().iter().all(|&v| v == gen as f32),
                "round {round}: {name} is not all generation {gen}: a mix of two checkpoints"
            );
        }
        last = gen;
    }
    assert!(last > 0, "no child finished a single write in 200 rounds");
    // The next write removes what the killed writers left behind.
    write_generation(&path, &mut net, last + 1);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("ck.safetensors")]);
}
