//! Making tensors: constants, ranges, host data, seeded random numbers and initialisers.
//!
//! Random numbers come from one ChaCha8 generator per thread, seeded with [`manual_seed`] (like
//! `torch.manual_seed`). Its state can be read and restored, so checkpoints resume exactly.

use super::{CpuData, CpuStorage, DType, Device, HostElem, Layout, Shape, Storage, Tensor};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::pool;
use crate::error::{Error, OrPanic, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Seeds this thread's generator.
pub fn manual_seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// The generator's position, enough to continue the exact same stream later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

pub fn rng_state() -> RngState {
    RNG.with(|r| {
        let r = r.borrow();
        RngState {
            seed: r.get_seed(),
            stream: r.get_stream(),
            word_pos: r.get_word_pos(),
        }
    })
}

pub fn set_rng_state(s: RngState) {
    RNG.with(|r| {
        let mut g = ChaCha8Rng::from_seed(s.seed);
        g.set_stream(s.stream);
        g.set_word_pos(s.word_pos);
        *r.borrow_mut() = g;
    })
}

/// Runs `f` with this thread's generator (for shuffling, dropout masks, sampling).
pub fn with_rng<T>(f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

fn filled(shape: Shape, dtype: DType, value: f64) -> Tensor {
    let n = shape.numel();
    let data = match dtype {
        DType::F32 => CpuData::F32(pool::filled(n, value as f32)),
        DType::F64 => CpuData::F64(pool::filled(n, value)),
        DType::I64 => CpuData::I64(vec![value as i64; n]),
        DType::Bool => CpuData::Bool(vec![value != 0.0; n]),
    };
    Tensor::from_cpu(data, shape)
}

fn float_from_f64(values: Vec<f64>, dtype: DType, shape: Shape) -> Tensor {
    let data = match dtype {
        DType::F64 => CpuData::F64(values),
        _ => CpuData::F32(values.into_iter().map(|x| x as f32).collect()),
    };
    Tensor::from_cpu(data, shape)
}

impl Tensor {
    /// A tensor from host data in row-major order.
    #[track_caller]
    pub fn from_vec<T: HostElem>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
        Tensor::try_from_vec(data, shape).or_panic()
    }
    pub fn try_from_vec<T: HostElem>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::bad_shape(
                "from_vec",
                &shape,
                format!(
                    "{} elements given, the shape holds {}",
                    data.len(),
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor::from_cpu(T::into_data(data), shape))
    }
    /// A one-element tensor of rank 0.
    pub fn scalar<T: HostElem>(value: T) -> Tensor {
        Tensor::from_cpu(T::into_data(vec![value]), Shape::scalar())
    }

    pub fn zeros(shape: impl Into<Shape>) -> Tensor {
        filled(shape.into(), DType::F32, 0.0)
    }
    pub fn ones(shape: impl Into<Shape>) -> Tensor {
        filled(shape.into(), DType::F32, 1.0)
    }
    pub fn full(shape: impl Into<Shape>, value: f64) -> Tensor {
        filled(shape.into(), DType::F32, value)
    }
    /// Like `full`, with an explicit dtype and device.
    #[track_caller]
    pub fn full_on(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Tensor {
        let shape = shape.into();
        if device != Device::Cpu {
            // Written on the device: zeros and ones are made there every step (gradient
            // seeds, padding), and an upload would cross the bus each time.
            if let Some(t) =
                crate::backend::cube::ops::full(&shape, value, dtype, device).or_panic()
            {
                return t;
            }
        }
        filled(shape, dtype, value).to_device(device)
    }
    pub fn zeros_like(t: &Tensor) -> Tensor {
        Tensor::full_on(t.shape().clone(), 0.0, t.dtype(), t.device())
    }
    pub fn ones_like(t: &Tensor) -> Tensor {
        Tensor::full_on(t.shape().clone(), 1.0, t.dtype(), t.device())
    }
    /// `[start, start + step, ...)` below `end`, as f32 (like `torch.arange` with floats).
    pub fn arange(start: f64, end: f64, step: f64) -> Tensor {
        assert!(step != 0.0, "arange: step must not be zero");
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f32> = (0..n).map(|i| (start + i as f64 * step) as f32).collect();
        Tensor::from_cpu(CpuData::F32(v), Shape::new(&[n]))
    }
    /// `0, 1, ..., n-1` as i64 indices.
    pub fn arange_i64(n: usize) -> Tensor {
        Tensor::from_cpu(CpuData::I64((0..n as i64).collect()), Shape::new(&[n]))
    }

    /// Uniform samples in `[low, high)` from the thread's seeded generator.
    pub fn rand_uniform(shape: impl Into<Shape>, low: f64, high: f64) -> Tensor {
        let shape = shape.into();
        let dist = Uniform::new(low, high);
        let v = with_rng(|r| (0..shape.numel()).map(|_| dist.sample(r)).collect());
        float_from_f64(v, DType::F32, shape)
    }
    /// Normal samples with the given mean and standard deviation.
    pub fn randn(shape: impl Into<Shape>, mean: f64, std: f64) -> Tensor {
        let shape = shape.into();
        let dist = Normal::new(mean, std).expect("randn: std must be finite and >= 0");
        let v = with_rng(|r| (0..shape.numel()).map(|_| dist.sample(r)).collect());
        float_from_f64(v, DType::F32, shape)
    }
    /// Bernoulli(p) as a bool mask (dropout).
    pub fn bernoulli(shape: impl Into<Shape>, p: f64) -> Tensor {
        let shape = shape.into();
        let v = with_rng(|r| (0..shape.numel()).map(|_| r.gen::<f64>() < p).collect());
        Tensor::from_cpu(CpuData::Bool(v), shape)
    }

    /// Xavier/Glorot uniform for a `[fan_out, fan_in, ...]` weight (PyTorch's
    /// `xavier_uniform_`): U(-a, a) with a = gain·sqrt(6 / (fan_in + fan_out)).
    #[track_caller]
    pub fn xavier_uniform(shape: impl Into<Shape>, gain: f64) -> Tensor {
        let shape = shape.into();
        let (fan_in, fan_out) = fans(&shape);
        let a = gain * (6.0 / (fan_in + fan_out) as f64).sqrt();
        Tensor::rand_uniform(shape, -a, a)
    }
    /// Kaiming/He normal for ReLU layers (PyTorch's `kaiming_normal_`, fan_in mode):
    /// N(0, gain / sqrt(fan_in)) with gain = sqrt(2).
    #[track_caller]
    pub fn kaiming_normal(shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        let (fan_in, _) = fans(&shape);
        Tensor::randn(shape, 0.0, (2.0 / fan_in as f64).sqrt())
    }
    /// Kaiming uniform with PyTorch's default for `nn.Linear` (a = sqrt(5)), which works out to
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    #[track_caller]
    pub fn kaiming_uniform_linear(shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        let (fan_in, _) = fans(&shape);
        let bound = 1.0 / (fan_in as f64).sqrt();
        Tensor::rand_uniform(shape, -bound, bound)
    }

    /// The same values in another element type (a new tensor without history).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        if self.cube().is_some() {
            if let Some(t) = crate::backend::cube::ops::cast(self, dtype).or_panic() {
                return t;
            }
        }
        let data = match dtype {
            DType::F32 => CpuData::F32(self.to_vec()),
            DType::F64 => CpuData::F64(self.to_vec()),
            DType::I64 => CpuData::I64(self.to_vec()),
            DType::Bool => CpuData::Bool(self.to_vec()),
        };
        // Other conversions on a device go through the host (no kernel for them yet).
        Tensor::from_cpu(data, self.shape().clone()).to_device(self.device())
    }

    /// Moves the tensor to `device`; panics with the reason if that device is unavailable.
    #[track_caller]
    pub fn to_device(&self, device: Device) -> Tensor {
        self.try_to_device(device).or_panic()
    }
    /// The same values on `device`. Differentiable, like PyTorch's `.to(device)`: the
    /// gradient goes back to the source device. (`Module::to_device` moves parameters as
    /// new leaves instead.)
    pub fn try_to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        apply(
            ToDevice {
                from: self.device(),
                to: device,
            },
            &[self],
        )
    }
}

/// Copies `t` to `device` without history. Only the viewed elements travel.
fn transfer(t: &Tensor, device: Device) -> Result<Tensor> {
    match (t.storage(), device) {
        (Storage::Cube(c), Device::Cpu) => {
            let data = crate::backend::cube::download(c)?;
            Ok(Tensor::from_storage(
                Storage::Cpu(CpuStorage::new(data)),
                t.layout().clone(),
            ))
        }
        (Storage::Cpu(_), _) => {
            let dense = t.try_contiguous_copy_if_view()?;
            let data = dense.cpu_data("to_device")?;
            let s = crate::backend::cube::upload(data, device)?;
            Ok(Tensor::from_storage(
                Storage::Cube(s),
                Layout::contiguous(t.shape().clone()),
            ))
        }
        // Between two devices: through the host.
        (Storage::Cube(_), _) => transfer(&transfer(t, Device::Cpu)?, device),
    }
}

/// `to_device` as an op: its backward moves the gradient back.
struct ToDevice {
    from: Device,
    to: Device,
}

impl Op for ToDevice {
    fn name(&self) -> &'static str {
        "to_device"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(transfer(inputs[0], self.to)?, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        debug_assert_eq!(g.device(), self.to);
        Ok(vec![Some(transfer(g, self.from)?)])
    }
}

impl Tensor {
    /// This tensor when it is dense (contiguous, no offset, the whole buffer), else a copy.
    fn try_contiguous_copy_if_view(&self) -> Result<Tensor> {
        let whole = match self.storage() {
            Storage::Cpu(s) => s.data().len() == self.numel(),
            Storage::Cube(c) => c.len == self.numel(),
        };
        if self.is_contiguous() && self.layout().offset == 0 && whole {
            Ok(self.clone())
        } else {
            self.try_contiguous_copy()
        }
    }
}

/// PyTorch's fan computation: fan_in = dim 1 × receptive field, fan_out = dim 0 × receptive field.
#[track_caller]
fn fans(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    assert!(
        d.len() >= 2,
        "initialiser: weight shape {shape} needs at least 2 dims"
    );
    let receptive: usize = d[2..].iter().product();
    (d[1] * receptive, d[0] * receptive)
}
