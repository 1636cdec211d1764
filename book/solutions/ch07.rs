//! Chapter 7: Bahdanau attention.

use cubegrad::metrics::corpus_bleu;
use cubegrad::nn::Gru;
use cubegrad::Tensor;

/// Exercise 1: "the cat the cat" against "the cat is here". Unigrams: "the" and "cat" appear
/// twice but the reference has each once, so 2 of 4 match; bigrams: "the cat" matches once of
/// 3; no trigram matches, so unsmoothed BLEU is 0.
pub fn bleu_of_repetition() -> f64 {
    let t = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    corpus_bleu(&[t("the cat the cat")], &[t("the cat is here")])
}

/// Exercise 2: the whole sequence at once, and in two halves carrying the state across.
pub fn whole_and_split(gru: &Gru, x: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let t = x.dims()[1];
    let (whole, _) = gru.forward(x, None);
    let (first, state) = gru.forward(&x.narrow(1, 0, t / 2), None);
    let (second, _) = gru.forward(&x.narrow(1, t / 2, t - t / 2), Some(&state));
    let split = Tensor::concat(&[&first, &second], 1);
    (whole.to_vec::<f32>(), split.to_vec::<f32>())
}
