//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use super::{expect_kind, for_each_param_with_grad, Optimizer, OptimizerState, Slots};
use crate::autograd::Gradients;
use crate::backend;
use crate::backend::optim::SgdHyper;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    pub fn init(self) -> Sgd {
        Sgd {
            config: self,
            momentum: Slots::default(),
        }
    }
}

pub struct Sgd {
    pub config: SgdConfig,
    /// Momentum buffer per parameter.
    momentum: Slots<Tensor>,
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()> {
        let c = self.config;
        if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
            return Err(Error::invalid(
                "Sgd",
                "Nesterov momentum needs momentum > 0 and dampening = 0",
            ));
        }
        let h = SgdHyper {
            lr: c.lr,
            momentum: c.momentum,
            dampening: c.dampening,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
        };
        let bufs = &mut self.momentum;
        for_each_param_with_grad("Sgd", model, grads, |i, name, p, g| {
            let mut first = false;
            let buf = match c.momentum != 0.0 {
                true => {
                    let b = bufs.get_or_insert(i, name, || {
                        first = true;
                        Tensor::zeros_like(p)
                    });
                    // A buffer loaded from a checkpoint arrives on the CPU.
                    *b = b.try_to_device(p.device())?;
                    Some(b)
                }
                false => None,
            };
            backend::of(p).sgd_step(p, g, buf, first, h)
        })
    }
    fn lr(&self) -> f64 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }
    fn state(&self) -> OptimizerState {
        let c = self.config;
        let mut tensors: Vec<(String, Tensor)> = self
            .momentum
            .iter()
            .map(|(n, t)| (format!("{n}.momentum_buffer"), t.clone()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        OptimizerState {
            kind: "sgd".into(),
            hyper: [
                ("lr", c.lr),
                ("momentum", c.momentum),
                ("dampening", c.dampening),
                ("weight_decay", c.weight_decay),
                ("nesterov", c.nesterov as u8 as f64),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            tensors,
        }
    }
    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        expect_kind(state, "sgd")?;
        let h = |k: &str| state.hyper_value(k);
        self.config = SgdConfig {
            lr: h("lr")?,
            momentum: h("momentum")?,
            dampening: h("dampening")?,
            weight_decay: h("weight_decay")?,
            nesterov: h("nesterov")? != 0.0,
        };
        self.momentum.clear();
        for (n, t) in &state.tensors {
            let name = n.strip_suffix(".momentum_buffer").ok_or_else(|| {
                Error::invalid("load_state", format!("unexpected sgd state tensor {n:?}"))
            })?;
            self.momentum.push(name.to_string(), t.contiguous());
        }
        Ok(())
    }
}
