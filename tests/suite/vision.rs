//! Vision pieces: the ViT patch embedding against a direct computation, a ViT block with
//! ContextPool over the patch grid, and CNN blocks with max, average and ContextPool pooling
//! (gradients, shapes, and a short training run).

use cubegrad::autograd::{gradcheck, GradcheckOptions};
use cubegrad::nn::{
    try_global_avg_pool2d, ContextPoolOptions, ConvBlock, EncoderOptions, Linear, Module,
    PatchEmbedding, TransformerEncoderLayer,
};
use cubegrad::optim::{AdamConfig, Optimizer};
use cubegrad::testing::naive::{self, Array};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{manual_seed, DType, Tensor};
use std::cell::RefCell;

fn randn64(shape: &[usize]) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0).to_dtype(DType::F64)
}

fn to_f64(m: &mut dyn Module) {
    m.visit_params_mut("", &mut |_, t| {
        *t = Tensor::randn(t.shape().clone(), 0.0, 0.4)
            .to_dtype(DType::F64)
            .with_grad()
    });
    m.visit_buffers_mut("", &mut |_, t| {
        if t.dtype() == DType::F32 {
            *t = t.to_dtype(DType::F64)
        }
    });
}

#[test]
fn patch_embedding_is_a_strided_convolution_plus_class_token_and_positions() {
    manual_seed(40);
    let mut pe = PatchEmbedding::new(3, (6, 4), 2, 5);
    to_f64(&mut pe);
    let x = randn64(&[2, 3, 6, 4]);
    let y = pe.forward(&x);
    assert_eq!(y.dims(), &[2, 1 + 3 * 2, 5]);
    // Direct: conv with kernel = stride = 2, then tokens in row-major patch order.
    let conv = naive::conv2d(
        &[
            Array::from_tensor(&x),
            Array::from_tensor(&pe.conv_proj.weight),
            Array::from_tensor(pe.conv_proj.bias.as_ref().unwrap()),
        ],
        (2, 2),
        (0, 0),
        (1, 1),
        1,
    );
    let (cls, pos) = (
        pe.class_token.to_vec::<f64>(),
        pe.pos_embedding.to_vec::<f64>(),
    );
    let mut want = Vec::new();
    for b in 0..2 {
        want.extend((0..5).map(|k| cls[k] + pos[k]));
        for t in 0..6 {
            want.extend((0..5).map(|k| conv.data[(b * 5 + k) * 6 + t] + pos[(1 + t) * 5 + k]));
        }
    }
    assert_close(&y.to_vec::<f64>(), &want, Tolerance::F64, "patch embedding");
    let names: Vec<String> = pe.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "conv_proj.weight",
            "conv_proj.bias",
            "class_token",
            "pos_embedding"
        ]
    );
}

#[test]
fn a_vit_block_with_grid_context_pooling_passes_gradcheck() {
    manual_seed(41);
    let mut o = EncoderOptions::new(4, 2);
    o.dim_feedforward = 6;
    o.dropout = 0.0;
    o.context_pool = Some(ContextPoolOptions {
        s_max: 2.0,
        ..Default::default()
    });
    o.pool_grid = Some((2, 3, true));
    let mut layer = TransformerEncoderLayer::new(o);
    to_f64(&mut layer);
    let x = randn64(&[2, 7, 4]).with_grad();
    let report = gradcheck(
        |x| layer.try_forward(&x[0], None),
        &[x],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");
}

#[test]
fn conv_blocks_halve_the_resolution_and_pass_gradcheck() {
    manual_seed(42);
    for pool in ["max", "avg", "contextpool"] {
        let mut block = ConvBlock::new(2, 3, pool).unwrap();
        to_f64(&mut block);
        let x = randn64(&[2, 2, 6, 5]);
        let y = block.forward(&x);
        assert_eq!(y.dims(), &[2, 3, 3, 2], "{pool}");
        // Max pooling's kinks are measure-zero; random inputs keep away from them.
        let cell = RefCell::new(block);
        let report = gradcheck(
            |x| cell.borrow_mut().try_forward(&x[0]),
            &[x.with_grad()],
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert!(report.max_error <= 1e-6, "{pool}: {report}");
    }
    assert!(ConvBlock::new(2, 3, "median").is_err());
}

#[test]
fn a_cnn_with_context_pooling_learns_a_spatial_task() {
    manual_seed(43);
    // Class 1: a bright 3×3 square in the top-left quadrant; class 0: bottom-right.
    let (n, s) = (32, 8);
    let mut data = vec![0f32; n * s * s];
    let mut labels = Vec::new();
    for i in 0..n {
        let top = i % 2 == 1;
        let off = if top { 1 } else { 4 };
        for r in off..off + 3 {
            for c in off..off + 3 {
                data[i * s * s + r * s + c] = 1.0;
            }
        }
        labels.push(i64::from(top));
    }
    let noise = Tensor::randn([n, 1, s, s], 0.0, 0.3);
    let x = Tensor::from_vec(data, [n, 1, s, s]).add(&noise);
    let y = Tensor::from_vec(labels, [n]);
    struct Net {
        block: ConvBlock,
        head: Linear,
    }
    impl Module for Net {
        cubegrad::module_tensors! {
            child "block" block;
            child "head" head;
        }
    }
    let mut net = Net {
        block: ConvBlock::new(1, 4, "contextpool").unwrap(),
        head: Linear::new(4 * 4 * 4, 2, true),
    };
    let mut opt = AdamConfig::adam().lr(0.02).init();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let h = net.block.forward(&x).reshape(&[n, 4 * 4 * 4]);
        let loss = net.head.forward(&h).cross_entropy(&y);
        losses.push(loss.item());
        let g = loss.backward();
        opt.step(&mut net, &g).unwrap();
    }
    assert!(
        losses[39] < 0.2 * losses[0],
        "loss {} → {}",
        losses[0],
        losses[39]
    );
    // Global average pooling has the shape a classifier head expects.
    assert_eq!(try_global_avg_pool2d(&x).unwrap().dims(), &[n, 1]);
}
