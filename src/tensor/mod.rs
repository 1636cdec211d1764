//! The tensor: shared storage, a layout (shape, strides, offset) and, when it takes part in
//! autograd, a reference to the tape node that produced it.
//!
//! Cloning a tensor is cheap: it clones an `Arc`. Views share storage. Math on tensors lives in
//! `crate::ops`, one file per family, each op's forward and backward side by side.

mod create;
mod device;
mod dtype;
mod shape;
mod storage;

pub use create::{manual_seed, rng_state, set_rng_state, with_rng, RngState};
pub use device::Device;
pub use dtype::{DType, Float};
pub use shape::{Dims, Layout, Shape};
pub use storage::{cpu_memory_in_use, CpuData, CpuStorage, Storage};

use crate::autograd::NodeRef;
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A tensor's identity: gradients are stored under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// How a tensor takes part in autograd.
#[derive(Clone, Debug)]
pub(crate) enum GradMeta {
    /// A constant: no gradient flows into it.
    None,
    /// A leaf the user asked gradients for (a parameter, or a gradcheck input).
    Leaf,
    /// The output of a recorded op.
    Node(NodeRef),
}

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
    pub(crate) grad: GradMeta,
}

impl Tensor {
    /// Wraps storage into a new constant tensor (no autograd history).
    pub(crate) fn from_storage(storage: Storage, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage: Arc::new(storage),
            layout,
            grad: GradMeta::None,
        }))
    }
    pub(crate) fn from_cpu(data: CpuData, shape: Shape) -> Tensor {
        debug_assert_eq!(data.len(), shape.numel());
        Tensor::from_storage(
            Storage::Cpu(CpuStorage::new(data)),
            Layout::contiguous(shape),
        )
    }
    /// A view: same storage, new layout, no autograd history (the caller records it).
    pub(crate) fn view_with(&self, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage: self.0.storage.clone(),
            layout,
            grad: GradMeta::None,
        }))
    }

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        &self.0.layout.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.layout.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.0.layout.shape.numel()
    }
    /// Size of dimension `axis` (negative counts from the end).
    #[track_caller]
    pub fn dim(&self, axis: isize) -> usize {
        use crate::error::OrPanic;
        let a = self.shape().axis("dim", axis).or_panic();
        self.dims()[a]
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub fn dtype(&self) -> DType {
        match &*self.0.storage {
            Storage::Cpu(s) => s.data().dtype(),
            Storage::Cube(c) => c.dtype,
        }
    }
    pub fn device(&self) -> Device {
        match &*self.0.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cube(c) => c.device,
        }
    }
    /// The host data, or the error an op without a kernel for this tensor's device reports.
    pub(crate) fn cpu_data(&self, op: &'static str) -> Result<&CpuData> {
        match self.storage() {
            Storage::Cpu(s) => Ok(s.data()),
            Storage::Cube(c) => Err(Error::Unsupported {
                op,
                device: c.device,
            }),
        }
    }
    pub(crate) fn storage(&self) -> &Storage {
        &self.0.storage
    }

    // ----- autograd flags -------------------------------------------------------------------

    /// True when gradients flow into this tensor: a leaf marked with `requires_grad`, or the
    /// output of a recorded op with such an input.
    pub fn requires_grad(&self) -> bool {
        !matches!(self.0.grad, GradMeta::None)
    }
    pub fn is_leaf(&self) -> bool {
        !matches!(self.0.grad, GradMeta::Node(_))
    }
    pub(crate) fn grad_meta(&self) -> &GradMeta {
        &self.0.grad
    }
    pub(crate) fn with_grad_meta(mut self, meta: GradMeta) -> Tensor {
        Arc::make_mut(&mut self.0).grad = meta;
        self
    }
    /// Marks this tensor as a leaf that receives gradients (PyTorch's `requires_grad_()`).
    /// The tensor keeps its identity; any history it had is dropped, as with `detach`.
    pub fn set_requires_grad(mut self, on: bool) -> Tensor {
        let inner = Arc::make_mut(&mut self.0);
        inner.grad = if on { GradMeta::Leaf } else { GradMeta::None };
        self
    }
    /// Shorthand for `set_requires_grad(true)`.
    pub fn with_grad(self) -> Tensor {
        self.set_requires_grad(true)
    }
    /// The same data without history: gradients stop here.
    pub fn detach(&self) -> Tensor {
        self.view_with(self.0.layout.clone())
    }
    /// Keep this intermediate tensor's gradient in the store that `backward` returns (leaves
    /// that require grad always get one).
    pub fn retain_grad(self) -> Tensor {
        if let GradMeta::Node(r) = &self.0.grad {
            crate::autograd::retain_output_grad(*r);
        }
        self
    }

    // ----- reading data back ----------------------------------------------------------------

    /// The elements in row-major order, converted to `T`. For a tensor on a device this
    /// reads the data back (it waits for the device).
    #[track_caller]
    pub fn to_vec<T: HostElem>(&self) -> Vec<T> {
        use crate::error::OrPanic;
        self.try_to_vec().or_panic()
    }
    /// `to_vec`, with a device read failure as an error.
    pub fn try_to_vec<T: HostElem>(&self) -> Result<Vec<T>> {
        match self.storage() {
            Storage::Cpu(s) => Ok(T::collect(s.data(), self.layout())),
            Storage::Cube(c) => {
                let data = crate::backend::cube::download(c)?;
                Ok(T::collect(&data, self.layout()))
            }
        }
    }
    /// The single element of a one-element tensor, as f64.
    #[track_caller]
    pub fn item(&self) -> f64 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {} has more than one element",
            self.shape()
        );
        self.to_vec::<f64>()[0]
    }

    /// A contiguous slice of the float data, copying only when the layout is strided.
    pub(crate) fn float_slice<T: Float>(&self, op: &'static str) -> Result<Cow<'_, [T]>> {
        let data: &[T] = T::slice_of(self.cpu_data(op)?).ok_or(Error::DType {
            op,
            got: self.dtype(),
            expected: if T::DTYPE == DType::F32 { "f32" } else { "f64" },
        })?;
        Ok(contiguous_cow(data, self.layout()))
    }
    pub(crate) fn i64_slice(&self, op: &'static str) -> Result<Cow<'_, [i64]>> {
        match self.cpu_data(op)? {
            CpuData::I64(v) => Ok(contiguous_cow(v, self.layout())),
            d => Err(Error::DType {
                op,
                got: d.dtype(),
                expected: "i64",
            }),
        }
    }
    pub(crate) fn bool_slice(&self, op: &'static str) -> Result<Cow<'_, [bool]>> {
        match self.cpu_data(op)? {
            CpuData::Bool(v) => Ok(contiguous_cow(v, self.layout())),
            d => Err(Error::DType {
                op,
                got: d.dtype(),
                expected: "bool",
            }),
        }
    }

    /// Makes this tensor the only owner of a contiguous, offset-free buffer, for in-place
    /// optimizer updates. Keeps the tensor's identity (so its gradients still match it);
    /// copies the storage only if it is a view or another tensor still shares it (copy on
    /// write).
    pub(crate) fn make_exclusive(&mut self) -> Result<()> {
        if !(self.is_contiguous()
            && self.0.layout.offset == 0
            && self.storage_len() == self.numel())
        {
            let copy = self.try_contiguous_copy()?;
            let inner = Arc::make_mut(&mut self.0);
            inner.storage = copy.0.storage.clone();
            inner.layout = copy.0.layout.clone();
        }
        let inner = Arc::make_mut(&mut self.0);
        Arc::make_mut(&mut inner.storage);
        Ok(())
    }
    /// Mutable access to the host data of a tensor made exclusive (see `make_exclusive`).
    pub(crate) fn cpu_data_mut(&mut self) -> &mut CpuData {
        self.make_exclusive()
            .expect("a CPU tensor can always be copied");
        let inner = Arc::make_mut(&mut self.0);
        match Arc::make_mut(&mut inner.storage) {
            Storage::Cpu(s) => s.data_mut(),
            Storage::Cube(c) => panic!("cpu_data_mut: the tensor is on {}", c.device),
        }
    }
    fn storage_len(&self) -> usize {
        match self.storage() {
            Storage::Cpu(s) => s.data().len(),
            Storage::Cube(c) => c.len,
        }
    }
    /// A contiguous copy with fresh storage and no history.
    pub(crate) fn contiguous_copy(&self) -> Tensor {
        use crate::error::OrPanic;
        self.try_contiguous_copy().or_panic()
    }
    pub(crate) fn try_contiguous_copy(&self) -> Result<Tensor> {
        let l = self.layout();
        let s = match self.storage() {
            Storage::Cube(_) => return crate::backend::cube::ops::contiguous(self),
            Storage::Cpu(s) => s,
        };
        let data = match s.data() {
            CpuData::F32(v) => CpuData::F32(contiguous_cow(v, l).into_owned()),
            CpuData::F64(v) => CpuData::F64(contiguous_cow(v, l).into_owned()),
            CpuData::I64(v) => CpuData::I64(contiguous_cow(v, l).into_owned()),
            CpuData::Bool(v) => CpuData::Bool(contiguous_cow(v, l).into_owned()),
        };
        Ok(Tensor::from_cpu(data, self.shape().clone()))
    }
}

/// Borrow the elements when already in row-major order, otherwise gather them.
pub(crate) fn contiguous_cow<'a, T: Copy + 'static>(
    data: &'a [T],
    layout: &Layout,
) -> Cow<'a, [T]> {
    let n = layout.shape.numel();
    if layout.is_contiguous() {
        Cow::Borrowed(&data[layout.offset..layout.offset + n])
    } else {
        let mut out = crate::backend::cpu::pool::take(n);
        let inner = layout.shape.dims().last().copied().unwrap_or(1);
        if layout.strides.last().is_some_and(|&s| s == 1) {
            // Rows are contiguous runs (a permutation that keeps the last axis): copy them
            // whole, which is several times faster than element by element.
            layout.for_each_row(|base| out.extend_from_slice(&data[base..base + inner]));
        } else {
            layout.for_each_index(|i| out.push(data[i]));
        }
        Cow::Owned(out)
    }
}

/// Element types that can be copied out of a tensor (`to_vec`) or into one (`from_vec`).
pub trait HostElem: Copy + 'static {
    fn collect(data: &CpuData, layout: &Layout) -> Vec<Self>;
    fn into_data(v: Vec<Self>) -> CpuData;
}

macro_rules! host_elem {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl HostElem for $t {
            fn collect(data: &CpuData, layout: &Layout) -> Vec<Self> {
                let conv = $conv;
                #[allow(unreachable_patterns)]
                match data {
                    CpuData::$variant(v) => contiguous_cow(v, layout).into_owned(),
                    CpuData::F32(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as f64))
                        .collect(),
                    CpuData::F64(v) => contiguous_cow(v, layout).iter().map(|&x| conv(x)).collect(),
                    CpuData::I64(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as f64))
                        .collect(),
                    CpuData::Bool(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as u8 as f64))
                        .collect(),
                }
            }
            fn into_data(v: Vec<Self>) -> CpuData {
                CpuData::$variant(v)
            }
        }
    };
}
host_elem!(f32, F32, |x: f64| x as f32);
host_elem!(f64, F64, |x: f64| x);
host_elem!(i64, I64, |x: f64| x as i64);
host_elem!(bool, Bool, |x: f64| x != 0.0);

/// Access to a float slice inside `CpuData`, for the kernels that are generic over `Float`.
pub trait FloatSlice: Sized {
    fn slice_of(data: &CpuData) -> Option<&[Self]>;
    fn slice_of_mut(data: &mut CpuData) -> Option<&mut [Self]>;
    fn wrap(v: Vec<Self>) -> CpuData;
}
impl FloatSlice for f32 {
    fn slice_of(d: &CpuData) -> Option<&[f32]> {
        if let CpuData::F32(v) = d {
            Some(v)
        } else {
            None
        }
    }
    fn slice_of_mut(d: &mut CpuData) -> Option<&mut [f32]> {
        if let CpuData::F32(v) = d {
            Some(v)
        } else {
            None
        }
    }
    fn wrap(v: Vec<f32>) -> CpuData {
        CpuData::F32(v)
    }
}
impl FloatSlice for f64 {
    fn slice_of(d: &CpuData) -> Option<&[f64]> {
        if let CpuData::F64(v) = d {
            Some(v)
        } else {
            None
        }
    }
    fn slice_of_mut(d: &mut CpuData) -> Option<&mut [f64]> {
        if let CpuData::F64(v) = d {
            Some(v)
        } else {
            None
        }
    }
    fn wrap(v: Vec<f64>) -> CpuData {
        CpuData::F64(v)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor{} {} {}",
            self.shape(),
            self.dtype(),
            self.device()
        )?;
        if self.requires_grad() {
            f.write_str(" requires_grad")?;
        }
        let v = self.to_vec::<f64>();
        let shown: Vec<String> = v.iter().take(8).map(|x| format!("{x:.4}")).collect();
        write!(
            f,
            " [{}{}]",
            shown.join(", "),
            if v.len() > 8 { ", …" } else { "" }
        )
    }
}
impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
