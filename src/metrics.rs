//! Evaluation metrics that are not losses.

use std::collections::HashMap;

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Corpus BLEU-4 (Papineni et al., 2002), one reference per sentence: the clipped n-gram
/// matches and the candidate n-grams are summed over the corpus for n = 1..4, their ratios
/// combined by a geometric mean with equal weights, times the brevity penalty
/// `min(1, exp(1 − r/c))` for total reference length r and candidate length c. Zero when some
/// order has no match (no smoothing), as in `sacrebleu`'s and NLTK's unsmoothed scores.
pub fn corpus_bleu(candidates: &[Vec<String>], references: &[Vec<String>]) -> f64 {
    let (mut matches, mut totals) = ([0usize; 4], [0usize; 4]);
    let (mut c_len, mut r_len) = (0usize, 0usize);
    for (cand, refr) in candidates.iter().zip(references) {
        c_len += cand.len();
        r_len += refr.len();
        for n in 1..=4 {
            let rc = ngram_counts(refr, n);
            for (g, k) in ngram_counts(cand, n) {
                matches[n - 1] += k.min(rc.get(g).copied().unwrap_or(0));
            }
            totals[n - 1] += cand.len().saturating_sub(n - 1);
        }
    }
    if c_len == 0 || matches.contains(&0) {
        return 0.0;
    }
    let log_p: f64 = (0..4)
        .map(|i| (matches[i] as f64 / totals[i] as f64).ln())
        .sum::<f64>()
        / 4.0;
    let bp = if c_len < r_len {
        (1.0 - r_len as f64 / c_len as f64).exp()
    } else {
        1.0
    };
    bp * log_p.exp()
}
