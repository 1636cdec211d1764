//! The two models behind one trait: a GRU encoder–decoder with Bahdanau attention, and a
//! pre-norm transformer encoder–decoder.

use super::Config;
use cubegrad::data::WordVocab;
use cubegrad::nn::{
    sinusoidal_positions, AdditiveAttention, Embedding, EncoderOptions, Gru, KvCache, LayerNorm,
    Linear, Module, TransformerDecoderLayer, TransformerEncoderLayer,
};
use cubegrad::Tensor;

/// What both models offer to training and decoding.
pub trait Seq2Seq: Module {
    /// Teacher-forced logits `[B, T, V]`.
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor;
    /// Greedy decoding of `steps` tokens for a batch: ids `[B, steps]` and, where the model has
    /// them, the cross-attention weights of the first sentence per step.
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>);
}

/// The lecture's Seq2SeqAttentionDecoder: a GRU encoder; at each target step the decoder's top
/// hidden state queries the encoder outputs with additive attention, and the context is
/// concatenated with the embedded previous token as the GRU input.
pub struct GruSeq2Seq {
    pub src_embed: Embedding,
    pub encoder: Gru,
    pub tgt_embed: Embedding,
    pub attention: AdditiveAttention,
    pub decoder: Gru,
    pub dense: Linear,
}

impl GruSeq2Seq {
    pub fn new(
        src_vocab: usize,
        tgt_vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
    ) -> Self {
        GruSeq2Seq {
            src_embed: Embedding::new(src_vocab, hidden),
            encoder: Gru::new(hidden, hidden, layers),
            tgt_embed: Embedding::new(tgt_vocab, hidden),
            attention: AdditiveAttention::new(hidden, hidden, hidden, dropout),
            decoder: Gru::new(2 * hidden, hidden, layers),
            dense: Linear::new(hidden, tgt_vocab, true),
        }
    }
    // ANCHOR: bahdanau_step
    fn step(&self, y: &Tensor, enc: &Tensor, src_len: &Tensor, state: &Tensor) -> (Tensor, Tensor) {
        let l = state.dims()[0];
        let query = state.narrow(0, l - 1, 1).squeeze(0).unsqueeze(1); // [B, 1, H]
        let context = self.attention.forward(&query, enc, enc, Some(src_len));
        let x = Tensor::concat(&[&context, &self.tgt_embed.forward(y)], -1);
        let (out, state) = self.decoder.forward(&x, Some(state));
        (self.dense.forward(&out), state)
    }
    // ANCHOR_END: bahdanau_step
}

impl Seq2Seq for GruSeq2Seq {
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor {
        let (enc, mut state) = self.encoder.forward(&self.src_embed.forward(src), None);
        let mut outs = Vec::new();
        for t in 0..dec_in.dims()[1] {
            let (o, s) = self.step(&dec_in.narrow(1, t, 1), &enc, src_len, &state);
            outs.push(o);
            state = s;
        }
        Tensor::concat(&outs.iter().collect::<Vec<_>>(), 1)
    }
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
        let b = src.dims()[0];
        let (enc, mut state) = self.encoder.forward(&self.src_embed.forward(src), None);
        let mut y = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]).to_device(src.device());
        let (mut out, mut weights) = (vec![Vec::new(); b], Vec::new());
        for _ in 0..steps {
            let (o, s) = self.step(&y, &enc, src_len, &state);
            state = s;
            y = o.argmax(-1, false);
            for (i, id) in y.to_vec::<i64>().into_iter().enumerate() {
                out[i].push(id);
            }
            let w = self.attention.last_weights().expect("set by forward");
            let s_len = w.dims()[2];
            weights.push(
                w.narrow(0, 0, 1)
                    .to_vec::<f32>()
                    .iter()
                    .take(s_len)
                    .map(|&v| v as f64)
                    .collect(),
            );
        }
        (out, weights)
    }
}

impl Module for GruSeq2Seq {
    cubegrad::module_tensors! {
        child "src_embed" src_embed;
        child "encoder" encoder;
        child "tgt_embed" tgt_embed;
        child "attention" attention;
        child "decoder" decoder;
        child "dense" dense;
    }
}

/// A pre-norm transformer encoder–decoder with sinusoidal positions.
pub struct TransformerSeq2Seq {
    pub src_embed: Embedding,
    pub tgt_embed: Embedding,
    pub encoder: Vec<TransformerEncoderLayer>,
    pub decoder: Vec<TransformerDecoderLayer>,
    pub enc_norm: LayerNorm,
    pub dec_norm: LayerNorm,
    pub dense: Linear,
    d: usize,
}

impl TransformerSeq2Seq {
    pub fn new(src_vocab: usize, tgt_vocab: usize, cfg: &Config) -> Self {
        let d = cfg.hidden;
        let mut enc = EncoderOptions::new(d, cfg.heads);
        enc.dropout = cfg.dropout;
        TransformerSeq2Seq {
            src_embed: Embedding::new(src_vocab, d),
            tgt_embed: Embedding::new(tgt_vocab, d),
            encoder: (0..cfg.layers)
                .map(|_| TransformerEncoderLayer::new(enc))
                .collect(),
            decoder: (0..cfg.layers)
                .map(|_| TransformerDecoderLayer::new(d, cfg.heads, 4 * d, cfg.dropout))
                .collect(),
            enc_norm: LayerNorm::new(&[d]),
            dec_norm: LayerNorm::new(&[d]),
            dense: Linear::new(d, tgt_vocab, true),
            d,
        }
    }
    fn embed(&self, e: &Embedding, ids: &Tensor, offset: usize) -> Tensor {
        let pos = sinusoidal_positions(ids.dims()[1], self.d, offset).to_device(ids.device());
        e.forward(ids).add(&pos)
    }
    /// Memory `[B, S, d]` and its key padding mask `[B, S]` (true = padding).
    fn encode(&self, src: &Tensor, src_len: &Tensor) -> (Tensor, Tensor) {
        let (b, s) = (src.dims()[0], src.dims()[1]);
        let lens = src_len.to_vec::<i64>();
        let pad: Vec<bool> = (0..b * s).map(|i| (i % s) as i64 >= lens[i / s]).collect();
        let pad = Tensor::from_vec(pad, [b, s]).to_device(src.device());
        let mut h = self.embed(&self.src_embed, src, 0);
        for l in &self.encoder {
            h = l.forward(&h, Some(&pad));
        }
        (self.enc_norm.forward(&h), pad)
    }
}

impl Seq2Seq for TransformerSeq2Seq {
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor {
        let (memory, pad) = self.encode(src, src_len);
        let mut h = self.embed(&self.tgt_embed, dec_in, 0);
        for l in &self.decoder {
            h = l
                .try_forward(&h, &memory, Some(&pad))
                .expect("decoder layer");
        }
        self.dense.forward(&self.dec_norm.forward(&h))
    }
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
        let b = src.dims()[0];
        let (memory, pad) = self.encode(src, src_len);
        let mut caches = vec![KvCache::default(); self.decoder.len()];
        let mut y = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]).to_device(src.device());
        let mut out = vec![Vec::new(); b];
        for t in 0..steps {
            let mut h = self.embed(&self.tgt_embed, &y, t);
            for (l, c) in self.decoder.iter().zip(caches.iter_mut()) {
                h = l
                    .try_forward_cached(&h, &memory, Some(&pad), c)
                    .expect("cached decoder layer");
            }
            y = self
                .dense
                .forward(&self.dec_norm.forward(&h))
                .argmax(-1, false);
            for (i, id) in y.to_vec::<i64>().into_iter().enumerate() {
                out[i].push(id);
            }
        }
        (out, Vec::new())
    }
}

impl Module for TransformerSeq2Seq {
    cubegrad::module_tensors! {
        child "src_embed" src_embed;
        child "tgt_embed" tgt_embed;
        list "encoder" encoder;
        list "decoder" decoder;
        child "enc_norm" enc_norm;
        child "dec_norm" dec_norm;
        child "dense" dense;
    }
}
