//! Training on a CubeCL device end to end: the digits MLP reaches the CPU's accuracy, the
//! examples run there unchanged (`--device`), and a training loop's device memory reaches a
//! steady state (buffers are reused, nothing leaks).

#[path = "../../examples/attention_pooling.rs"]
mod attention_pooling;
#[path = "../../examples/contextpool_lm/main.rs"]
mod contextpool_lm;
#[path = "../../examples/custom_kernel.rs"]
mod custom_kernel;
#[path = "../../examples/custom_layer.rs"]
mod custom_layer;
#[path = "../../examples/digits_mlp.rs"]
mod digits_mlp;
#[path = "../../examples/image_classify.rs"]
mod image_classify;
#[path = "../../examples/translate/main.rs"]
mod translate;

use cubegrad::backend::device_memory;
use cubegrad::nn::Module;
use cubegrad::optim::{Adam, AdamConfig, Optimizer};
use cubegrad::testing::{built_devices, device_or_skip};
use cubegrad::{manual_seed, Device, Tensor};
use digits_mlp::{train, Config, Mlp};

fn config(device: Device) -> Config {
    Config {
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz").into(),
        epochs: 30,
        hidden: 64,
        batch_size: 32,
        lr: 3e-3,
        seed: 0,
        device,
        quiet: true,
    }
}

#[test]
fn digits_mlp_trains_on_the_device_to_the_cpu_accuracy() {
    for device in built_devices() {
        let Some(device) = device_or_skip("digits_mlp on a device", device) else {
            continue;
        };
        let cpu = train(&config(Device::Cpu)).unwrap();
        let dev = train(&config(device)).unwrap();
        // The same seed draws the same initial weights and batches; f32 sums in another
        // order make the runs drift apart slowly, so the accuracies agree closely but not
        // to the last image.
        assert!(
            dev.last_epoch_loss < dev.first_epoch_loss / 5.0,
            "{device}: loss {} -> {}",
            dev.first_epoch_loss,
            dev.last_epoch_loss
        );
        assert!(
            (dev.test_accuracy - cpu.test_accuracy).abs() <= 0.015,
            "{device}: test accuracy {:.4}, on the CPU {:.4}",
            dev.test_accuracy,
            cpu.test_accuracy
        );
        assert!(
            (dev.first_epoch_loss - cpu.first_epoch_loss).abs() < 1e-3,
            "{device}: first epoch loss {} vs {} on the CPU",
            dev.first_epoch_loss,
            cpu.first_epoch_loss
        );
    }
}

#[test]
fn device_memory_in_use_is_the_same_after_step_2_and_step_100() {
    for device in built_devices() {
        let Some(device) = device_or_skip("device memory steady state", device) else {
            continue;
        };
        manual_seed(3);
        let mut model = Mlp::new(32);
        model.to_device(device);
        let mut opt: Adam = AdamConfig::adam().lr(1e-3).init();
        let x = Tensor::randn([16, 64], 0.0, 1.0).to_device(device);
        let y =
            Tensor::from_vec((0..16).map(|i| i % 10).collect::<Vec<i64>>(), [16]).to_device(device);
        let mut in_use = Vec::new();
        for step in 1..=100 {
            let loss = model.forward(&x).cross_entropy(&y);
            let grads = loss.backward();
            opt.step(&mut model, &grads).unwrap();
            // Reading the loss waits for the device, so every launch so far has finished.
            let value = loss.item();
            assert!(value.is_finite(), "step {step}: loss {value}");
            drop((loss, grads));
            if step == 2 || step == 100 {
                in_use.push(device_memory(device).unwrap().0);
            }
        }
        assert!(in_use[0] > 0, "{device}: no device memory in use at step 2");
        assert_eq!(
            in_use[0], in_use[1],
            "{device}: bytes in use after step 2 and after step 100"
        );
    }
}

/// The ContextPool language model and the custom layer, run with `--device` on a tiny
/// configuration: the first losses are the CPU's (same seed, same batches) and training works.
#[test]
fn examples_run_on_the_device_as_on_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("the examples on a device", device) else {
            continue;
        };
        let out = |name: &str| {
            let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "device-{name}-{}",
                device.to_string().replace(':', "-")
            ));
            d.to_string_lossy().into_owned()
        };
        let lm = |device: Device, dir: String| contextpool_lm::Config {
            data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/sotu.txt.gz").into(),
            model: contextpool_lm::ModelKind::Contextpool,
            layers: Some(1),
            compare: false,
            models: Vec::new(),
            d_model: 16,
            heads: 2,
            seq_len: 16,
            batch_size: 4,
            steps: 20,
            lr: 3e-3,
            eval_every: 10,
            eval_chars: 256,
            test_chars: 256,
            pool_placement: contextpool_lm::Placement::Input,
            pool_features: contextpool_lm::Features::Normalized,
            pool_init_size: 1.0,
            pool_s_min: 0.5,
            pool_s_max: 8.0,
            pool_unnormalized: false,
            seeds: 1,
            study: false,
            study_data: String::new(),
            window: 8,
            stride: 16,
            summary: 2,
            features: 16,
            chunk: 8,
            redraw_every: 1000,
            mem_len: 16,
            n_hashes: 2,
            buckets: 4,
            sample_chars: 8,
            prompt: "The".into(),
            temperature: 0.8,
            seed: 2,
            device,
            out: dir,
            resume: false,
            stop_at: None,
            quiet: true,
            skip_nonfinite: false,
            distributed: false,
            bucket_mib: 25.0,
            dist_timeout: 600.0,
        };
        let cpu = contextpool_lm::run(&lm(Device::Cpu, out("lm-cpu"))).unwrap();
        let dev = contextpool_lm::run(&lm(device, out("lm"))).unwrap();
        assert!(dev.finished && dev.sample.is_some());
        assert!(dev.last_train_bpc < dev.first_train_bpc, "{device}");
        assert!(
            (dev.first_train_bpc - cpu.first_train_bpc).abs() < 1e-3,
            "{device}: first train bpc {} vs {} on the CPU",
            dev.first_train_bpc,
            cpu.first_train_bpc
        );

        let cl = |device: Device, dir: String| custom_layer::Config {
            data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz").into(),
            epochs: 3,
            hidden: 16,
            batch_size: 64,
            lr: 3e-3,
            seed: 0,
            device,
            out: dir,
            resume: false,
            stop_at: None,
            quiet: true,
            skip_nonfinite: false,
        };
        let cpu = custom_layer::run(&cl(Device::Cpu, out("custom-cpu"))).unwrap();
        let dev = custom_layer::run(&cl(device, out("custom"))).unwrap();
        assert!(dev.finished);
        for (c, d) in cpu.runs.iter().zip(&dev.runs) {
            assert!(d.2 < d.1, "{device} {}: loss {} -> {}", d.0, d.1, d.2);
            assert!(
                (c.1 - d.1).abs() < 1e-3,
                "{device} {}: first loss {} vs {}",
                d.0,
                d.1,
                c.1
            );
        }
    }
}

/// A user's CubeCL kernels (`examples/custom_kernel.rs`) on the device: forward and both
/// gradients agree with the op's CPU hooks, and training with them on the device starts from
/// the CPU's loss and lowers it.
#[test]
fn custom_kernel_example_runs_on_the_device() {
    for device in built_devices() {
        let Some(device) = device_or_skip("a custom kernel on a device", device) else {
            continue;
        };
        let cfg = |device: Device, name: &str| custom_kernel::Config {
            data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz").into(),
            epochs: 3,
            hidden: 16,
            batch_size: 64,
            lr: 3e-3,
            seed: 0,
            device,
            out: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("device-custom-kernel-{name}"))
                .to_string_lossy()
                .into_owned(),
            resume: false,
            stop_at: None,
            quiet: true,
            skip_nonfinite: false,
        };
        let cpu = custom_kernel::run(&cfg(Device::Cpu, "cpu")).unwrap();
        let dev = custom_kernel::run(&cfg(device, "device")).unwrap();
        let err = dev
            .device_error
            .expect("the kernels were compared on the device");
        assert!(err < 1e-4, "kernels against the CPU hooks: {err}");
        assert!(dev.finished && dev.last_loss < dev.first_loss);
        assert!(
            (dev.first_loss - cpu.first_loss).abs() < 1e-3,
            "{device}: first loss {} vs {} on the CPU",
            dev.first_loss,
            cpu.first_loss
        );
    }
}

/// The other examples with `--device`, on tiny configurations: the same first losses as on the
/// CPU (same seed, same batches, no dropout), and training that lowers them.
#[test]
fn more_examples_run_on_the_device_as_on_the_cpu() {
    for device in built_devices() {
        let Some(device) = device_or_skip("the examples on a device", device) else {
            continue;
        };
        let out = |name: &str, on: Device| {
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!(
                    "device-{name}-{}",
                    on.to_string().replace(':', "-")
                ))
                .to_string_lossy()
                .into_owned()
        };
        let close = |what: &str, cpu: f64, dev: f64| {
            assert!(
                (cpu - dev).abs() <= 1e-3 * cpu.abs().max(1.0),
                "{device} {what}: {dev} vs {cpu} on the CPU"
            );
        };

        let ap = |on: Device| attention_pooling::Config {
            n_train: 50,
            epochs: 3,
            lr: 0.5,
            seed: 0,
            device: on,
            out: out("attention-pooling", on),
            resume: false,
            stop_at: None,
            quiet: true,
        };
        let (cpu, dev) = (
            attention_pooling::run(&ap(Device::Cpu)).unwrap(),
            attention_pooling::run(&ap(device)).unwrap(),
        );
        assert!(dev.finished && dev.last_loss < dev.first_loss);
        close(
            "attention pooling first loss",
            cpu.first_loss,
            dev.first_loss,
        );

        let ic = |on: Device| image_classify::Config {
            data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist").into(),
            models: vec![],
            epochs: 2,
            train_images: 128,
            test_images: 64,
            batch_size: 32,
            lr: 3e-3,
            d_model: 8,
            vit_layers: 1,
            vit_attention: image_classify::VitAttention::Full,
            vit_pool_placement: vec![image_classify::Placement::Input],
            seeds: 1,
            seed: 0,
            device: on,
            out: out("images", on),
            resume: false,
            stop_at: None,
            quiet: true,
            skip_nonfinite: false,
            distributed: false,
            bucket_mib: 25.0,
            dist_timeout: 600.0,
        };
        let (cpu, dev) = (
            image_classify::run(&ic(Device::Cpu)).unwrap(),
            image_classify::run(&ic(device)).unwrap(),
        );
        for (c, d) in cpu.iter().zip(&dev) {
            assert!(
                d.finished && d.last_loss < d.first_loss,
                "{device} {}",
                d.kind.name()
            );
            close(d.kind.name(), c.first_loss, d.first_loss);
        }

        let tr = |on: Device| translate::Config {
            data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/en_es_verses.tsv.gz").into(),
            max_chars: 30,
            max_tokens: 8,
            min_freq: 1,
            model: translate::Which::Both,
            hidden: 16,
            layers: 1,
            heads: 2,
            dropout: 0.0,
            epochs: 2,
            batch_size: 32,
            lr: 5e-3,
            bleu_sentences: 8,
            seed: 0,
            device: on,
            out: out("translate", on),
            resume: false,
            stop_at: None,
            quiet: true,
            skip_nonfinite: false,
        };
        let (cpu, dev) = (
            translate::run(&tr(Device::Cpu)).unwrap(),
            translate::run(&tr(device)).unwrap(),
        );
        for (c, d) in cpu.iter().zip(&dev) {
            assert!(
                d.finished && d.last_loss < d.first_loss,
                "{device} {}",
                d.name
            );
            close(&d.name, c.first_loss, d.first_loss);
        }
    }
}
