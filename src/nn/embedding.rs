//! A lookup table, `nn.Embedding`: row `i` of `weight` (`[num_embeddings, embedding_dim]`,
//! initialised N(0, 1) as in PyTorch) for every index. The backward (a scatter-add into the
//! rows that were used) is `index_select`'s.

use super::Module;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{DType, Tensor};

pub struct Embedding {
    pub weight: Tensor,
    /// Row that reads as given but gets no gradient (and starts at zero), like PyTorch's.
    pub padding_idx: Option<usize>,
}

impl Embedding {
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Self {
        Embedding {
            weight: Tensor::randn([num_embeddings, embedding_dim], 0.0, 1.0).with_grad(),
            padding_idx: None,
        }
    }
    /// With a padding row, zeroed.
    #[track_caller]
    pub fn with_padding(num_embeddings: usize, embedding_dim: usize, padding_idx: usize) -> Self {
        assert!(
            padding_idx < num_embeddings,
            "Embedding: padding_idx {padding_idx} >= num_embeddings {num_embeddings}"
        );
        let mut w = Tensor::randn([num_embeddings, embedding_dim], 0.0, 1.0).to_vec::<f32>();
        w[padding_idx * embedding_dim..(padding_idx + 1) * embedding_dim].fill(0.0);
        Embedding {
            weight: Tensor::from_vec(w, [num_embeddings, embedding_dim]).with_grad(),
            padding_idx: Some(padding_idx),
        }
    }
    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn embedding_dim(&self) -> usize {
        self.weight.dims()[1]
    }
    /// `indices` (i64, any shape) → `[..., embedding_dim]`.
    pub fn try_forward(&self, indices: &Tensor) -> Result<Tensor> {
        if indices.dtype() != DType::I64 {
            return Err(Error::DType {
                op: "Embedding",
                got: indices.dtype(),
                expected: "i64",
            });
        }
        let flat = indices.try_reshape(&[indices.numel()])?;
        let mut rows = self.weight.try_index_select(0, &flat)?;
        if let Some(p) = self.padding_idx {
            // The padding row's value passes through, its gradient does not.
            let is_pad = flat
                .try_eq(&Tensor::scalar(p as i64).try_to_device(flat.device())?)?
                .try_reshape(&[flat.numel(), 1])?;
            rows = Tensor::try_where(&is_pad, &rows.detach(), &rows)?;
        }
        let mut dims = indices.dims().to_vec();
        dims.push(self.embedding_dim());
        rows.try_reshape(&dims)
    }
    #[track_caller]
    pub fn forward(&self, indices: &Tensor) -> Tensor {
        self.try_forward(indices).or_panic()
    }
}

impl Module for Embedding {
    crate::module_tensors! {
        param "weight" weight;
    }
}
