//! `nn.GRU(batch_first=True)`: a stack of GRU layers with PyTorch's names (`weight_ih_l{k}`
//! `[3H, I]`, `weight_hh_l{k}` `[3H, H]`, `bias_ih_l{k}`, `bias_hh_l{k}` `[3H]`). Each layer is
//! the fused op `ops::gru`, with backpropagation through time written out by hand.

use super::module::Module;
use crate::error::{Error, OrPanic, Result};
use crate::ops::gru::try_gru_layer;
use crate::tensor::Tensor;

/// Parameters of one layer.
pub struct GruLayer {
    pub weight_ih: Tensor,
    pub weight_hh: Tensor,
    pub bias_ih: Tensor,
    pub bias_hh: Tensor,
}

/// A stack of GRU layers, batch-first, like PyTorch's `nn.GRU(I, H, num_layers,
/// batch_first=True)`; weights start uniform in ±1/√H, as there.
pub struct Gru {
    pub input_size: usize,
    pub hidden_size: usize,
    pub layers: Vec<GruLayer>,
}

impl Gru {
    pub fn new(input_size: usize, hidden_size: usize, num_layers: usize) -> Self {
        let k = 1.0 / (hidden_size as f64).sqrt();
        let u = |shape: &[usize]| Tensor::rand_uniform(shape, -k, k).with_grad();
        let layers = (0..num_layers)
            .map(|l| {
                let i = if l == 0 { input_size } else { hidden_size };
                GruLayer {
                    weight_ih: u(&[3 * hidden_size, i]),
                    weight_hh: u(&[3 * hidden_size, hidden_size]),
                    bias_ih: u(&[3 * hidden_size]),
                    bias_hh: u(&[3 * hidden_size]),
                }
            })
            .collect();
        Gru {
            input_size,
            hidden_size,
            layers,
        }
    }

    /// `x` `[B, T, I]` and the initial state `h0` `[layers, B, H]` (zeros when `None`) → the
    /// last layer's outputs `[B, T, H]` and the final state of each layer `[layers, B, H]`.
    pub fn try_forward(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, l) = (x.dims().first().copied().unwrap_or(0), self.layers.len());
        if let Some(h0) = h0 {
            if h0.dims() != [l, b, self.hidden_size] {
                return Err(Error::invalid(
                    "Gru",
                    format!(
                        "h0 {} must be [layers, B, H] = [{l}, {b}, {}]",
                        h0.shape(),
                        self.hidden_size
                    ),
                ));
            }
        }
        let mut input = x.clone();
        let mut finals = Vec::with_capacity(l);
        for (k, layer) in self.layers.iter().enumerate() {
            let h = match h0 {
                Some(h0) => h0.try_narrow(0, k, 1)?.try_squeeze(0)?,
                None => Tensor::full_on([b, self.hidden_size], 0.0, x.dtype(), x.device()),
            };
            let out = try_gru_layer(
                &input,
                &h,
                &layer.weight_ih,
                &layer.weight_hh,
                &layer.bias_ih,
                &layer.bias_hh,
            )?;
            let t = out.dims()[1];
            finals.push(out.try_narrow(1, t - 1, 1)?.try_squeeze(1)?);
            input = out;
        }
        let state = Tensor::try_stack(&finals.iter().collect::<Vec<_>>(), 0)?;
        Ok((input, state))
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor, h0: Option<&Tensor>) -> (Tensor, Tensor) {
        self.try_forward(x, h0).or_panic()
    }
}

/// PyTorch names a stack's tensors by layer with a suffix: `weight_ih_l0`, `weight_ih_l1`, …
impl Module for Gru {
    crate::module_tensors! {
        indexed "_l" layers;
    }
}

impl Module for GruLayer {
    crate::module_tensors! {
        param "weight_ih" weight_ih;
        param "weight_hh" weight_hh;
        param "bias_ih" bias_ih;
        param "bias_hh" bias_hh;
    }
}
