//! The foundation's end-to-end check: the digits MLP example, run as it ships, reaches at least
//! 95% accuracy on its held-out test split (15% of the images, never used in training).

#[path = "../../examples/digits_mlp.rs"]
mod digits_mlp;

use digits_mlp::{train, Config};

#[test]
fn digits_mlp_reaches_95_percent_held_out() {
    let cfg = Config {
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz").into(),
        epochs: 30,
        hidden: 64,
        batch_size: 32,
        lr: 3e-3,
        seed: 0,
        device: cubegrad::Device::Cpu,
        quiet: true,
    };
    let r = train(&cfg).unwrap();
    assert!(
        r.last_epoch_loss < r.first_epoch_loss / 5.0,
        "loss {} -> {}",
        r.first_epoch_loss,
        r.last_epoch_loss
    );
    assert!(r.test_size > 250, "test split has {} images", r.test_size);
    assert!(
        r.test_accuracy >= 0.95,
        "held-out accuracy {:.4}",
        r.test_accuracy
    );
}

#[test]
fn digits_mlp_refuses_bad_flags_in_one_line() {
    use clap::Parser;
    let bad = |flags: &[&str]| {
        let cfg =
            Config::try_parse_from(std::iter::once("digits_mlp").chain(flags.iter().copied()))
                .unwrap();
        cfg.validate().unwrap_err()
    };
    assert_eq!(bad(&["--hidden", "0"]), "--hidden 0 must be at least 1");
    assert_eq!(bad(&["--lr=-1"]), "--lr -1 must be a finite number above 0");
    assert!(Config::try_parse_from(["digits_mlp"])
        .unwrap()
        .validate()
        .is_ok());
}
