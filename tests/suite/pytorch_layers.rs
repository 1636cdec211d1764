//! PyTorch compatibility: state dicts saved by PyTorch load into cubegrad's layers under the
//! same names and give PyTorch's outputs. `fixtures/layers_reference.json` holds PyTorch's
//! weights, inputs and outputs (made by `fixtures/make_layers_reference.py`); each test writes
//! the weights to a safetensors file under PyTorch's names, loads it and replays the inputs.

use cubegrad::io::{save_tensors, Metadata};
use cubegrad::nn::{Embedding, LayerNorm, Linear, MhaOptions, Module, MultiheadAttention};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::Tensor;
use serde_json::Value;

/// f32 against PyTorch's f32: both sum in different orders.
const TOL: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 1e-5,
};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/layers_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn data(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect()
}

fn float(v: &Value) -> Tensor {
    let d: Vec<f32> = data(v).into_iter().map(|x| x as f32).collect();
    Tensor::from_vec(d, shape(v))
}

fn boolean(v: &Value) -> Tensor {
    let d: Vec<bool> = data(v).into_iter().map(|x| x != 0.0).collect();
    Tensor::from_vec(d, shape(v))
}

/// Checks a tensor against PyTorch's: the same shape, values within `TOL`.
fn expect(t: &Tensor, want: &Value, what: &str) {
    assert_eq!(t.dims(), shape(want).as_slice(), "{what}: shape");
    assert_close(&t.to_vec::<f64>(), &data(want), TOL, what);
}

/// Writes the fixture's state dict to a safetensors file with PyTorch's names and loads it.
fn load_state(module: &mut dyn Module, state: &Value, file: &str) {
    let tensors: Vec<(String, Tensor)> = state
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| (name.clone(), float(v)))
        .collect();
    let dir = std::env::temp_dir().join(format!("cubegrad-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    save_tensors(&path, &tensors, &Metadata::new()).unwrap();
    cubegrad::io::load_module(module, &path).unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn multihead_attention_with_padding_and_float_mask_matches_pytorch() {
    let f = fixture();
    let c = &f["mha"];
    let mut mha = MultiheadAttention::new(6, 2, 0.0);
    mha.eval();
    load_state(&mut mha, &c["state"], "mha.safetensors");
    let opts = MhaOptions {
        key_padding_mask: Some(boolean(&c["key_padding_mask"])),
        attn_mask: Some(float(&c["attn_mask"])),
        ..Default::default()
    };
    let (o, w) = mha.forward(
        &float(&c["query"]),
        &float(&c["key"]),
        &float(&c["value"]),
        &opts,
    );
    expect(&o, &c["output"], "MHA output");
    let w = w.expect("need_weights is PyTorch's default");
    expect(&w, &c["weights"], "MHA weights");
}

#[test]
fn multihead_attention_with_kdim_vdim_and_bool_mask_matches_pytorch() {
    let f = fixture();
    let c = &f["mha_kdim_vdim"];
    let mut mha = MultiheadAttention::with_dims(4, 2, 0.0, true, 3, 5);
    mha.eval();
    let names: Vec<String> = mha.parameters().into_iter().map(|(n, _)| n).collect();
    let mut torch_names: Vec<String> = c["state"].as_object().unwrap().keys().cloned().collect();
    torch_names.sort();
    let mut ours = names.clone();
    ours.sort();
    assert_eq!(ours, torch_names);
    load_state(&mut mha, &c["state"], "mha2.safetensors");
    let opts = MhaOptions {
        attn_mask: Some(boolean(&c["attn_mask"])),
        average_attn_weights: false,
        ..Default::default()
    };
    let (o, w) = mha.forward(
        &float(&c["query"]),
        &float(&c["key"]),
        &float(&c["value"]),
        &opts,
    );
    expect(&o, &c["output"], "MHA output");
    let w = w.unwrap();
    expect(&w, &c["weights"], "per-head weights");
}

#[test]
fn layer_norm_linear_and_embedding_match_pytorch() {
    let f = fixture();
    let c = &f["layer_norm"];
    let mut ln = LayerNorm::new(&[5]);
    load_state(&mut ln, &c["state"], "ln.safetensors");
    let y = ln.forward(&float(&c["input"]));
    expect(&y, &c["output"], "LayerNorm");

    let c = &f["linear"];
    let mut lin = Linear::new(4, 3, true);
    load_state(&mut lin, &c["state"], "linear.safetensors");
    let y = lin.forward(&float(&c["input"]));
    expect(&y, &c["output"], "Linear");

    let c = &f["embedding"];
    let mut emb = Embedding::with_padding(7, 3, 0);
    load_state(&mut emb, &c["state"], "emb.safetensors");
    let idx: Vec<i64> = data(&c["indices"]).into_iter().map(|x| x as i64).collect();
    let y = emb.forward(&Tensor::from_vec(idx, shape(&c["indices"])));
    expect(&y, &c["output"], "Embedding");
}

#[test]
fn pre_norm_encoder_and_decoder_layers_match_pytorch() {
    use cubegrad::nn::{EncoderOptions, TransformerDecoderLayer, TransformerEncoderLayer};
    let f = fixture();
    let c = &f["encoder_layer"];
    let mut opts = EncoderOptions::new(8, 2);
    opts.dim_feedforward = 12;
    opts.dropout = 0.0;
    opts.causal = true;
    let mut enc = TransformerEncoderLayer::new(opts);
    enc.eval();
    load_state(&mut enc, &c["state"], "enc.safetensors");
    let y = enc.forward(&float(&c["input"]), None);
    expect(&y, &c["output"], "encoder layer");

    let c = &f["decoder_layer"];
    let mut dec = TransformerDecoderLayer::new(8, 2, 12, 0.0);
    dec.eval();
    load_state(&mut dec, &c["state"], "dec.safetensors");
    let y = dec
        .try_forward(
            &float(&c["tgt"]),
            &float(&c["memory"]),
            Some(&boolean(&c["memory_key_padding_mask"])),
        )
        .unwrap();
    expect(&y, &c["output"], "decoder layer");
}

#[test]
fn conv2d_and_batch_norm2d_match_pytorch() {
    use cubegrad::nn::{BatchNorm2d, Conv2d, Conv2dOptions};
    let f = fixture();
    let c = &f["conv2d"];
    let opts = Conv2dOptions {
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
        groups: 2,
    };
    let mut conv = Conv2d::new(4, 6, (3, 2), opts, true);
    load_state(&mut conv, &c["state"], "conv.safetensors");
    let y = conv.forward(&float(&c["input"]));
    expect(&y, &c["output"], "Conv2d");

    let c = &f["batch_norm2d"];
    // The fixture stores every tensor as float, and PyTorch's num_batches_tracked is an
    // int64 scalar, so the state is assigned by hand rather than through a file.
    let mut bn = BatchNorm2d::new(3);
    for (name, v) in c["state"].as_object().unwrap() {
        let t = float(v);
        match name.as_str() {
            "weight" => bn.weight = Some(t.with_grad()),
            "bias" => bn.bias = Some(t.with_grad()),
            "running_mean" => bn.running_mean = t,
            "running_var" => bn.running_var = t,
            "num_batches_tracked" => assert_eq!(t.item(), 0.0),
            other => panic!("unexpected {other}"),
        }
    }
    let y = bn.forward(&float(&c["input"]));
    expect(&y, &c["train_output"], "BatchNorm2d train");
    expect(&bn.running_mean, &c["running_mean"], "running_mean");
    expect(&bn.running_var, &c["running_var"], "running_var");
    assert_eq!(bn.num_batches_tracked.to_vec::<i64>(), vec![1]);
    bn.eval();
    let y = bn.forward(&float(&c["eval_input"]));
    expect(&y, &c["eval_output"], "BatchNorm2d eval");
    let names: Vec<String> = bn.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked"
        ]
    );
}
