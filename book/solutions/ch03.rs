//! Chapter 3: GPU kernels, simulated on the CPU.

/// Exercise 1: global reads of A and B for `[m, k] @ [k, n]`. Naive: each of the m·n outputs
/// reads k values of A and k of B. Tiled (16×16): each of the (m/16)(n/16) cubes loads k/16
/// tiles of A and of B, 256 values each. Tiling divides the reads by 16.
pub fn global_reads(m: usize, k: usize, n: usize) -> (usize, usize) {
    let naive = m * n * 2 * k;
    let tiled = (m / 16) * (n / 16) * (k / 16) * 2 * 256;
    (naive, tiled)
}

/// Exercise 2: the shared-memory tree of `cube_reduce`, one value per unit, run round by round
/// as the units would (the halving stride starts at `units / 2`).
pub fn tree_sum(values: &[f64]) -> f64 {
    let units = values.len();
    let mut smem = values.to_vec();
    let mut stride = units / 2;
    while stride > 0 {
        for tid in 0..stride {
            smem[tid] += smem[tid + stride];
        }
        stride /= 2;
    }
    smem[0]
}
