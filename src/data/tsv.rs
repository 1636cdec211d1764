//! Tab-separated files and the English–Spanish verse pairs; word tokens and a word vocabulary
//! for translation.

use super::read_maybe_gz;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Every non-empty line of a (gzipped) TSV file split at tabs; each must have `columns` fields.
pub fn read_tsv(path: impl AsRef<Path>, columns: usize) -> Result<Vec<Vec<String>>> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<String> = line.split('\t').map(str::to_string).collect();
        if fields.len() != columns {
            return Err(Error::file(
                path,
                format!(
                    "line {}: expected {columns} tab-separated fields, found {}",
                    i + 1,
                    fields.len()
                ),
            ));
        }
        rows.push(fields);
    }
    if rows.is_empty() {
        return Err(Error::file(path, "no rows"));
    }
    Ok(rows)
}

/// `(english, spanish)` from `reference<TAB>english<TAB>spanish` lines, keeping the pairs whose
/// sides both have at most `max_chars` characters, in file order.
pub fn load_verse_pairs(path: impl AsRef<Path>, max_chars: usize) -> Result<Vec<(String, String)>> {
    Ok(read_tsv(path, 3)?
        .into_iter()
        .filter(|r| r[1].chars().count() <= max_chars && r[2].chars().count() <= max_chars)
        .map(|mut r| (std::mem::take(&mut r[1]), std::mem::take(&mut r[2])))
        .collect())
}

/// Lower-cased words, with each punctuation mark its own token ("God's" → `god ’ s` keeps the
/// apostrophe as a token), as the lecture's English–French loader does.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in sentence.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Word ids with four reserved tokens: padding, begin and end of sentence, unknown.
#[derive(Clone, Debug)]
pub struct WordVocab {
    tokens: Vec<String>,
    index: HashMap<String, usize>,
}

impl WordVocab {
    pub const PAD: i64 = 0;
    pub const BOS: i64 = 1;
    pub const EOS: i64 = 2;
    pub const UNK: i64 = 3;

    /// The reserved tokens, then every token seen at least `min_freq` times, most frequent
    /// first (ties in alphabetical order, so the ids do not depend on hash order).
    pub fn build<'a>(sentences: impl IntoIterator<Item = &'a [String]>, min_freq: usize) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for s in sentences {
            for t in s {
                *counts.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut seen: Vec<(&str, usize)> =
            counts.into_iter().filter(|&(_, c)| c >= min_freq).collect();
        seen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut tokens: Vec<String> = ["<pad>", "<bos>", "<eos>", "<unk>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        tokens.extend(seen.into_iter().map(|(t, _)| t.to_string()));
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        WordVocab { tokens, index }
    }
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    pub fn id(&self, token: &str) -> i64 {
        self.index.get(token).map_or(Self::UNK, |&i| i as i64)
    }
    pub fn encode(&self, tokens: &[String]) -> Vec<i64> {
        tokens.iter().map(|t| self.id(t)).collect()
    }
    pub fn token(&self, id: i64) -> &str {
        self.tokens.get(id as usize).map_or("<unk>", String::as_str)
    }
}
