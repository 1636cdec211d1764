//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019): the same update, with weight
//! decay either added to the gradient (Adam's L2) or applied to the weights (AdamW, decoupled).

use super::{expect_kind, for_each_param_with_grad, Optimizer, OptimizerState, Slots};
use crate::autograd::Gradients;
use crate::backend;
use crate::backend::optim::AdamHyper;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// true: AdamW's decoupled decay; false: Adam's L2 penalty.
    pub decoupled_weight_decay: bool,
}

impl AdamConfig {
    /// `torch.optim.Adam` defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay.
    pub fn adam() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
    /// `torch.optim.AdamW` defaults: as Adam, with decoupled weight decay 0.01.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 0.01,
            decoupled_weight_decay: true,
            ..AdamConfig::adam()
        }
    }
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.betas = (b1, b2);
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn init(self) -> Adam {
        Adam {
            config: self,
            slots: Slots::default(),
        }
    }
}

struct Slot {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Steps taken by this parameter (PyTorch counts per parameter too).
    step: u64,
}

pub struct Adam {
    pub config: AdamConfig,
    slots: Slots<Slot>,
}

impl Adam {
    fn update(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()> {
        let c = self.config;
        let h = AdamHyper {
            lr: c.lr,
            beta1: c.betas.0,
            beta2: c.betas.1,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled: c.decoupled_weight_decay,
        };
        let slots = &mut self.slots;
        for_each_param_with_grad("Adam", model, grads, |i, name, p, g| {
            let s = slots.get_or_insert(i, name, || Slot {
                exp_avg: Tensor::zeros_like(p),
                exp_avg_sq: Tensor::zeros_like(p),
                step: 0,
            });
            s.step += 1;
            // State loaded from a checkpoint arrives on the CPU; it follows the parameter.
            s.exp_avg = s.exp_avg.try_to_device(p.device())?;
            s.exp_avg_sq = s.exp_avg_sq.try_to_device(p.device())?;
            backend::of(p).adam_step(p, g, &mut s.exp_avg, &mut s.exp_avg_sq, s.step, h)
        })
    }

    fn kind(&self) -> &'static str {
        if self.config.decoupled_weight_decay {
            "adamw"
        } else {
            "adam"
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()> {
        crate::profile::scope("optimizer step", || self.update(model, grads))
    }
    fn lr(&self) -> f64 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }
    fn state(&self) -> OptimizerState {
        let c = self.config;
        let mut tensors = Vec::new();
        for (n, s) in self.slots.iter() {
            tensors.push((format!("{n}.exp_avg"), s.exp_avg.clone()));
            tensors.push((format!("{n}.exp_avg_sq"), s.exp_avg_sq.clone()));
            tensors.push((format!("{n}.step"), Tensor::scalar(s.step as i64)));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        OptimizerState {
            kind: self.kind().into(),
            hyper: [
                ("lr", c.lr),
                ("beta1", c.betas.0),
                ("beta2", c.betas.1),
                ("eps", c.eps),
                ("weight_decay", c.weight_decay),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            tensors,
        }
    }
    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        expect_kind(state, self.kind())?;
        let h = |k: &str| state.hyper_value(k);
        self.config = AdamConfig {
            lr: h("lr")?,
            betas: (h("beta1")?, h("beta2")?),
            eps: h("eps")?,
            weight_decay: h("weight_decay")?,
            decoupled_weight_decay: self.config.decoupled_weight_decay,
        };
        // exp_avg, exp_avg_sq and step of each parameter, as they turn up.
        type Parts = (Option<Tensor>, Option<Tensor>, Option<u64>);
        let mut parts: HashMap<String, Parts> = HashMap::new();
        for (n, t) in &state.tensors {
            let bad =
                || Error::invalid("load_state", format!("unexpected adam state tensor {n:?}"));
            let (param, slot) = n.rsplit_once('.').ok_or_else(bad)?;
            let e = parts.entry(param.to_string()).or_default();
            match slot {
                "exp_avg" => e.0 = Some(t.contiguous()),
                "exp_avg_sq" => e.1 = Some(t.contiguous()),
                "step" => e.2 = Some(t.item() as u64),
                _ => return Err(bad()),
            }
        }
        self.slots.clear();
        for (name, (m, v, step)) in parts {
            let incomplete = || {
                Error::invalid(
                    "load_state",
                    format!("adam state for {name:?} is incomplete"),
                )
            };
            let slot = Slot {
                exp_avg: m.ok_or_else(incomplete)?,
                exp_avg_sq: v.ok_or_else(incomplete)?,
                step: step.ok_or_else(incomplete)?,
            };
            self.slots.push(name, slot);
        }
        Ok(())
    }
}
