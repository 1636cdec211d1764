//! The tensor: shared storage, a layout (shape, strides, offset) and, when it takes part in
//! autograd, a reference to the tape node that produced it.
//!
//! This is the bottom of the crate: a tensor knows its shape and its history, and asks its
//! storage for its dtype and device, but it does not look inside the storage. Math on tensors
//! lives in `crate::ops` (one file per family, each op's forward and backward side by side),
//! and the numbers are computed by `crate::backend`, the only place that knows where a
//! tensor's elements are.
//!
//! Cloning a tensor is cheap: it clones an `Arc`. Views share storage.

mod broadcast;
pub(crate) mod device;
pub(crate) mod dtype;
pub(crate) mod shape;

pub use device::Device;
pub use dtype::DType;
pub use shape::{Dims, Layout, Shape};

use crate::autograd::node_ref::NodeRef;
use crate::backend::storage::Storage;
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
    /// Wraps storage into a new constant tensor (no autograd history). Backends call it to
    /// hand back what they computed.
    pub(crate) fn from_storage(storage: Storage, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage: Arc::new(storage),
            layout,
            grad: GradMeta::None,
        }))
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

    /// A view reading this tensor as `shape` under broadcasting (stride 0 on stretched dims).
    pub(crate) fn broadcast_view(&self, shape: &Shape) -> Tensor {
        let l = self.layout();
        let layout = Layout {
            strides: l.shape.broadcast_strides(&l.strides, shape),
            shape: shape.clone(),
            offset: l.offset,
        };
        self.view_with(layout)
    }

    /// A view of a contiguous tensor as `shape` (the same number of elements).
    pub(crate) fn reshape_view(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        debug_assert!(self.is_contiguous() && shape.numel() == self.numel());
        self.view_with(Layout {
            strides: shape.contiguous_strides(),
            shape,
            offset: self.0.layout.offset,
        })
    }
    /// A view with the dimensions reordered: dimension `i` of the view is `perm[i]` of this.
    pub(crate) fn permute_view(&self, perm: &[usize]) -> Tensor {
        let l = self.layout();
        self.view_with(Layout {
            shape: Shape(perm.iter().map(|&p| l.shape.dims()[p]).collect()),
            strides: perm.iter().map(|&p| l.strides[p]).collect(),
            offset: l.offset,
        })
    }
    /// A view with the last two dimensions swapped.
    pub(crate) fn transpose_view(&self) -> Tensor {
        let r = self.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.permute_view(&perm)
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
        self.0.storage.dtype()
    }
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }
    pub(crate) fn storage(&self) -> &Storage {
        &self.0.storage
    }
    /// Row-major, from the first element of the buffer, and every element of it: the form
    /// kernels read without a copy.
    pub(crate) fn is_dense(&self) -> bool {
        self.is_contiguous() && self.0.layout.offset == 0 && self.0.storage.len() == self.numel()
    }

    /// The storage, for an in-place update that keeps this tensor's identity (so gradients
    /// still match it). Copied first if another tensor still shares it (copy on write).
    pub(crate) fn storage_mut(&mut self) -> &mut Storage {
        let inner = Arc::make_mut(&mut self.0);
        Arc::make_mut(&mut inner.storage)
    }
    /// Puts new data under this tensor, keeping its identity and autograd status.
    pub(crate) fn replace_data(&mut self, from: Tensor) {
        let inner = Arc::make_mut(&mut self.0);
        inner.storage = from.0.storage.clone();
        inner.layout = from.0.layout.clone();
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
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
