//! Making tensors: constants, ranges, host data, seeded random numbers and initialisers.
//! Random numbers come from the thread's seeded generator (`crate::random`).

use crate::backend::storage::{CpuData, HostElem};
use crate::backend::{self, host_tensor};
use crate::error::{Error, OrPanic, Result};
use crate::random::with_rng;
use crate::tensor::{DType, Device, Shape, Tensor};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A CPU tensor of `shape` filled with `value`.
fn filled(shape: Shape, dtype: DType, value: f64) -> Tensor {
    backend::on(Device::Cpu)
        .full(&shape, value, dtype, Device::Cpu)
        .expect("the CPU makes every dtype")
}

fn float_from_f64(values: Vec<f64>, dtype: DType, shape: Shape) -> Tensor {
    let data = match dtype {
        DType::F64 => CpuData::F64(values),
        _ => CpuData::F32(values.into_iter().map(|x| x as f32).collect()),
    };
    host_tensor(data, shape)
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
        Ok(host_tensor(T::into_data(data), shape))
    }
    /// A one-element tensor of rank 0.
    pub fn scalar<T: HostElem>(value: T) -> Tensor {
        host_tensor(T::into_data(vec![value]), Shape::scalar())
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
        // Written where it lives: zeros and ones are made on a device every step (gradient
        // seeds, padding), and an upload would cross the bus each time.
        backend::on(device)
            .full(&shape.into(), value, dtype, device)
            .or_panic()
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
        host_tensor(CpuData::F32(v), Shape::new(&[n]))
    }
    /// `0, 1, ..., n-1` as i64 indices.
    pub fn arange_i64(n: usize) -> Tensor {
        host_tensor(CpuData::I64((0..n as i64).collect()), Shape::new(&[n]))
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
        host_tensor(CpuData::Bool(v), shape)
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
