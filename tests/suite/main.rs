//! The library's tests on the CPU, in one binary (one module a file), so that CI links the
//! crate once for all of them: autograd and the op registry (forward against f64 references,
//! gradcheck, properties), the layers against PyTorch, optimizers, checkpoints, data loaders
//! and errors. `tests/memory.rs` measures process-wide memory and runs alone.

mod attention;
mod autograd;
mod checkpoints;
mod context_pool;
mod data_and_init;
mod data_files;
mod distributed;
mod errors;
mod gru;
mod nn;
mod ops_registry;
mod optim;
mod properties;
mod pytorch_layers;
mod pytorch_options;
mod random;
mod special_values;
mod transformer;
mod vision;
