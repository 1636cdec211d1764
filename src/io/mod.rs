//! Reading and writing tensors: safetensors state dicts (PyTorch-compatible names), written
//! atomically, and training checkpoints that also hold the optimizer's state and the RNG.

mod checkpoint;
mod safetensors_io;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
pub use safetensors_io::{
    load_module, load_tensors, save_module, save_tensors, write_atomically, Metadata,
};
