//! The data: verse pairs tokenized into words, one vocabulary per language built from the
//! training split, and the sentences as padded id matrices.

use super::common::AnyResult;
use super::Config;
use cubegrad::data::{load_verse_pairs, split_indices, tokenize, WordVocab};
use cubegrad::Tensor;

/// Sentences as padded id matrices: `src` `[N, T]` (tokens then `<eos>`), its valid lengths
/// `[N]`, and `tgt` `[N, T]` (tokens then `<eos>`, padded with `<pad>`).
#[derive(Clone)]
pub struct Pairs {
    pub src: Tensor,
    /// Stays on the CPU: both models read the lengths on the host to build their masks.
    pub src_len: Tensor,
    pub tgt: Tensor,
    /// The reference translations as tokens (uncut), for BLEU.
    pub references: Vec<Vec<String>>,
    pub sources: Vec<String>,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.references.len()
    }
    pub fn is_empty(&self) -> bool {
        self.references.is_empty()
    }
    pub fn rows(&self, idx: &[usize]) -> (Tensor, Tensor, Tensor) {
        let ids = Tensor::from_vec(
            idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [idx.len()],
        );
        (
            self.src.index_select(0, &ids),
            self.src_len.index_select(0, &ids),
            self.tgt.index_select(0, &ids),
        )
    }
}

fn encode_padded(vocab: &WordVocab, tokens: &[String], t: usize) -> (Vec<i64>, i64) {
    let mut ids: Vec<i64> = vocab.encode(tokens);
    ids.truncate(t - 1);
    ids.push(WordVocab::EOS);
    let len = ids.len() as i64;
    ids.resize(t, WordVocab::PAD);
    (ids, len)
}

pub struct Corpus {
    pub src_vocab: WordVocab,
    pub tgt_vocab: WordVocab,
    pub train: Pairs,
    pub valid: Pairs,
    pub test: Pairs,
}

pub fn load_corpus(cfg: &Config) -> AnyResult<Corpus> {
    let pairs = load_verse_pairs(&cfg.data, cfg.max_chars)?;
    let tok: Vec<(Vec<String>, Vec<String>)> = pairs
        .iter()
        .map(|(e, s)| (tokenize(e), tokenize(s)))
        .collect();
    let parts = split_indices(tok.len(), &[0.9, 0.05, 0.05], cfg.seed);
    let src_vocab = WordVocab::build(parts[0].iter().map(|&i| tok[i].0.as_slice()), cfg.min_freq);
    let tgt_vocab = WordVocab::build(parts[0].iter().map(|&i| tok[i].1.as_slice()), cfg.min_freq);
    let make = |idx: &[usize]| {
        let t = cfg.max_tokens;
        let (mut src, mut lens, mut tgt) = (Vec::new(), Vec::new(), Vec::new());
        for &i in idx {
            let (s, l) = encode_padded(&src_vocab, &tok[i].0, t);
            src.extend(s);
            lens.push(l);
            tgt.extend(encode_padded(&tgt_vocab, &tok[i].1, t).0);
        }
        let n = idx.len();
        Pairs {
            src: Tensor::from_vec(src, [n, t]),
            src_len: Tensor::from_vec(lens, [n]),
            tgt: Tensor::from_vec(tgt, [n, t]),
            references: idx.iter().map(|&i| tok[i].1.clone()).collect(),
            sources: idx.iter().map(|&i| pairs[i].0.clone()).collect(),
        }
    };
    let corpus = Corpus {
        train: make(&parts[0]),
        valid: make(&parts[1]),
        test: make(&parts[2]),
        src_vocab,
        tgt_vocab,
    };
    if corpus.valid.is_empty() || corpus.test.is_empty() {
        return Err(format!(
            "{}: only {} pairs have both sides within {} characters, too few to split",
            cfg.data,
            pairs.len(),
            cfg.max_chars
        )
        .into());
    }
    Ok(corpus)
}

/// `<bos>` then the target without its last position: what the decoder reads under teacher
/// forcing. Built from the batch on the host, since device concatenation takes floats only.
pub fn decoder_input(tgt: &Tensor) -> Tensor {
    let (b, t) = (tgt.dims()[0], tgt.dims()[1]);
    let bos = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]);
    Tensor::concat(&[&bos, &tgt.narrow(1, 0, t - 1)], 1)
}
