//! Learning-rate schedules: the rate as a function of the step number.

pub trait LrSchedule {
    fn lr(&self, step: usize) -> f64;
}

pub struct ConstantLr(pub f64);

impl LrSchedule for ConstantLr {
    fn lr(&self, _: usize) -> f64 {
        self.0
    }
}

/// "Attention Is All You Need": `factor · d_model^−½ · min(step^−½, step · warmup^−1.5)`,
/// a linear warm-up followed by inverse square-root decay. Step 0 is treated as step 1.
pub struct NoamSchedule {
    pub d_model: usize,
    pub warmup: usize,
    pub factor: f64,
}

impl LrSchedule for NoamSchedule {
    fn lr(&self, step: usize) -> f64 {
        let s = step.max(1) as f64;
        self.factor
            * (self.d_model as f64).powf(-0.5)
            * s.powf(-0.5).min(s * (self.warmup as f64).powf(-1.5))
    }
}

/// Linear warm-up from 0 to `base` over `warmup` steps, then cosine decay to `min` at `total`.
pub struct WarmupCosine {
    pub base: f64,
    pub min: f64,
    pub warmup: usize,
    pub total: usize,
}

impl LrSchedule for WarmupCosine {
    fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.base * step as f64 / self.warmup as f64;
        }
        let span = (self.total.saturating_sub(self.warmup)).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        self.min + 0.5 * (self.base - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}
