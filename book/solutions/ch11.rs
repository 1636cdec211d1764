//! Chapter 11: cheaper attention.

/// Exercise 1: `Σ_j softmax(s)_j v_j` in one pass over tiles, keeping the running maximum `m`,
/// the running normaliser `l` and the running weighted sum `acc`.
pub fn online_softmax_weighted_sum(s: &[f64], v: &[f64], tile: usize) -> f64 {
    let (mut m, mut l, mut acc) = (f64::NEG_INFINITY, 0.0, 0.0);
    for (st, vt) in s.chunks(tile).zip(v.chunks(tile)) {
        let m_new = st.iter().copied().fold(m, f64::max);
        let rescale = (m - m_new).exp();
        l *= rescale;
        acc *= rescale;
        for (&sj, &vj) in st.iter().zip(vt) {
            let w = (sj - m_new).exp();
            l += w;
            acc += w * vj;
        }
        m = m_new;
    }
    acc / l
}

/// Exercise 2: `(without cache, with cache)` scores to generate `n` tokens one at a time.
/// Without the cache, step t recomputes a causal pass over t tokens: t(t+1)/2 scores. With it,
/// step t scores its one query against t keys.
pub fn scores_to_generate(n: u64) -> (u64, u64) {
    let without = (1..=n).map(|t| t * (t + 1) / 2).sum();
    let with = (1..=n).sum();
    (without, with)
}
