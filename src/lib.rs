//! cubegrad: a small reverse-mode autograd with a fast CPU path, built to teach how autodiff,
//! attention and GPU kernels work, and to study ContextPool.
//!
//! Start with `ARCHITECTURE.md` at the top of the repository: it shows how a [`Tensor`], an
//! [`Op`](autograd::Op), the tape and a backend meet.
//!
//! ```
//! use cubegrad::nn::{Linear, Module};
//! use cubegrad::optim::{AdamConfig, Optimizer};
//! use cubegrad::Tensor;
//!
//! let mut layer = Linear::new(4, 3, true); // weight [3, 4], bias [3], as in PyTorch
//! let mut opt = AdamConfig::adam().lr(1e-2).init();
//! let x = Tensor::randn([8, 4], 0.0, 1.0);
//! let target = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], [8]);
//! let first = layer.forward(&x).cross_entropy(&target).item();
//! for _ in 0..50 {
//!     let loss = layer.forward(&x).cross_entropy(&target);
//!     let grads = loss.backward(); // a fresh gradient store
//!     opt.step(&mut layer, &grads).unwrap();
//! }
//! let last = layer.forward(&x).cross_entropy(&target).item();
//! assert!(last < first);
//! assert_eq!(layer.parameters()[0].0, "weight");
//! ```

pub mod autograd;
pub mod backend;
pub mod data;
pub mod distributed;
pub mod error;
pub mod io;
pub mod metrics;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod profile;
pub mod random;
pub mod tensor;
pub mod testing;

pub use autograd::{gradcheck, no_grad, Gradients};
/// CubeCL, at the version cubegrad's kernels are built with: for writing kernels of your own
/// (`#[cube]` resolves `cubecl::…` paths, so `use cubegrad::cubecl;` is all a file needs).
pub use cubegrad_ops::cubecl;
pub use error::{Error, Result};
pub use random::manual_seed;
pub use tensor::{DType, Device, Shape, Tensor};
