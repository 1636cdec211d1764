//! Chapter 15: performance, by counting.

/// Exercise 1: FLOPs per byte `(add, matmul)`. Add: one FLOP per element, three f32 tensors
/// moved (12 bytes per element). Matmul: 2n³ FLOPs over three n×n f32 matrices.
pub fn arithmetic_intensity() -> (f64, f64) {
    let add = 1.0 / 12.0;
    let n = 1024.0f64;
    let matmul = 2.0 * n * n * n / (3.0 * n * n * 4.0);
    (add, matmul)
}

/// Exercise 2: multiply-adds `(ContextPool pooling, dense attention)` for one sequence of `n`
/// tokens: ContextPool sums 49 windowed neighbours of 128 features per token; attention does
/// `n × n × 128` for the scores and again for `P V`.
pub fn pooling_vs_attention(n: u64) -> (u64, u64) {
    (n * 49 * 128, 2 * n * n * 128)
}
