//! The loaders of the vendored data: what they read, and the errors they give on a missing or
//! malformed file (naming the file, and the line where there is one).

use cubegrad::data::{
    lm_batch, lm_eval_batches, load_fashion_mnist, load_idx_images, load_verse_pairs, read_idx,
    read_text, read_tsv, split_blocks, split_indices, tokenize, CharVocab, WordVocab,
};
use cubegrad::manual_seed;
use std::io::Write;
use std::path::PathBuf;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file)
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn fashion_mnist_loads_with_balanced_labels() {
    let (train, test) = load_fashion_mnist(data("fashion-mnist")).unwrap();
    assert_eq!(train.x.dims(), &[20_000, 1, 28, 28]);
    assert_eq!(test.x.dims(), &[10_000, 1, 28, 28]);
    let mut counts = [0usize; 10];
    for l in test.y.to_vec::<i64>() {
        counts[l as usize] += 1;
    }
    assert_eq!(
        counts, [1000; 10],
        "the test split has 1,000 images per class"
    );
    let px = train.x.narrow(0, 0, 100).to_vec::<f32>();
    assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(px.contains(&1.0) && px.contains(&0.0));
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let missing = read_idx(data("fashion-mnist/nope.gz"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.gz"), "{missing}");

    let bad_magic = temp("bad-magic.idx", &[1, 2, 3, 4, 0, 0, 0, 0]);
    let e = read_idx(&bad_magic).unwrap_err().to_string();
    assert!(e.contains("bad-magic.idx") && e.contains("magic"), "{e}");

    // Header says 2×3 bytes, the file holds 5.
    let short = temp(
        "short.idx",
        &[0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5],
    );
    let e = read_idx(&short).unwrap_err().to_string();
    assert!(
        e.contains("short.idx") && e.contains("need 6") && e.contains("holds 5"),
        "{e}"
    );

    let floats = temp("floats.idx", &[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert!(read_idx(&floats).unwrap_err().to_string().contains("0x0d"));

    // 2 images of 1×1 but 3 labels; then a label out of range.
    let images = temp(
        "imgs.idx.gz",
        &gz(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9]),
    );
    let labels3 = temp("labels3.idx", &[0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]);
    let e = load_idx_images(&images, &labels3).unwrap_err().to_string();
    assert!(
        e.contains("labels3.idx") && e.contains("3 labels for the 2 images"),
        "{e}"
    );
    let labels_bad = temp("labels-bad.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 12]);
    let e = load_idx_images(&images, &labels_bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12 of image 1"), "{e}");
    let ok = temp("labels-ok.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 7]);
    let d = load_idx_images(&images, &ok).unwrap();
    assert_eq!(d.x.to_vec::<f32>(), vec![9.0 / 255.0; 2]);
    assert_eq!(d.y.to_vec::<i64>(), vec![1, 7]);
}

#[test]
fn text_corpus_vocab_and_splits() {
    let text = read_text(data("sotu.txt.gz")).unwrap();
    assert!(text.trim_start().starts_with("=== 1790_george_washington"));
    let vocab = CharVocab::from_text(&text);
    assert_eq!(vocab.len(), 99);
    let ids = vocab.encode("Fellow-Citizens").unwrap();
    assert_eq!(vocab.decode(&ids), "Fellow-Citizens");
    let e = vocab.encode("naïve ☃").unwrap_err().to_string();
    assert!(e.contains("'☃'") || e.contains("'ï'"), "{e}");

    let stream: Vec<i64> = (0..1000).collect();
    let a = split_blocks(&stream, 100, 0.1, 0.2, 7);
    let b = split_blocks(&stream, 100, 0.1, 0.2, 7);
    assert_eq!(
        (a.train.len(), a.valid.len(), a.test.len()),
        (700, 100, 200)
    );
    assert_eq!((&a.train, &a.valid, &a.test), (&b.train, &b.valid, &b.test));
    // Every token lands in exactly one part, blocks kept whole and in order.
    let mut all: Vec<i64> = [a.train.clone(), a.valid.clone(), a.test.clone()].concat();
    all.sort();
    assert_eq!(all, stream);
    assert!(a
        .valid
        .windows(2)
        .all(|w| w[1] == w[0] + 1 || w[1] % 100 == 0));
    let c = split_blocks(&stream, 100, 0.1, 0.2, 8);
    assert_ne!(a.valid, c.valid, "another seed deals other blocks");
}

#[test]
fn lm_batches_are_shifted_windows_and_seeded() {
    let stream: Vec<i64> = (0..500).collect();
    manual_seed(3);
    let (x, y) = lm_batch(&stream, 4, 16).unwrap();
    manual_seed(3);
    let (x2, _) = lm_batch(&stream, 4, 16).unwrap();
    assert_eq!(x.to_vec::<i64>(), x2.to_vec::<i64>());
    assert_eq!(x.dims(), &[4, 16]);
    for (a, b) in x.to_vec::<i64>().iter().zip(y.to_vec::<i64>()) {
        assert_eq!(a + 1, b, "targets are the next tokens");
    }
    let e = lm_batch(&stream[..10], 2, 16).unwrap_err().to_string();
    assert!(e.contains("lm_batch") && e.contains("10 tokens"), "{e}");
    // Evaluation windows cover each predicted token once.
    let batches = lm_eval_batches(&stream, 3, 16, Some(161));
    let ys: Vec<i64> = batches
        .iter()
        .flat_map(|(_, y)| y.to_vec::<i64>())
        .collect();
    assert_eq!(ys, (1..161).collect::<Vec<_>>());
}

#[test]
fn tsv_pairs_tokens_and_word_vocab() {
    let pairs = load_verse_pairs(data("en_es_verses.tsv.gz"), 100).unwrap();
    // Counted independently (Python's len of each side): 10,815 pairs within 100 characters.
    assert_eq!(pairs.len(), 10_815);
    assert_eq!(
        pairs[0].0,
        "In the beginning, God created the heavens and the earth."
    );
    assert!(pairs
        .iter()
        .all(|(e, s)| e.chars().count() <= 100 && s.chars().count() <= 100));

    let bad = temp("bad.tsv", b"a\tb\tc\nd\te\n");
    let e = read_tsv(&bad, 3).unwrap_err().to_string();
    assert!(
        e.contains("bad.tsv") && e.contains("line 2") && e.contains("found 2"),
        "{e}"
    );
    let not_gzip = temp("not-gzip.tsv.gz", b"plain text");
    let e = read_tsv(&not_gzip, 3).unwrap_err().to_string();
    assert!(e.contains("not-gzip.tsv.gz") && e.contains("gzip"), "{e}");

    assert_eq!(
        tokenize("God's Spirit, hovering!"),
        ["god", "'", "s", "spirit", ",", "hovering", "!"]
    );
    let sents = [tokenize("a b a c"), tokenize("a b")];
    let v = WordVocab::build(sents.iter().map(Vec::as_slice), 2);
    assert_eq!(
        v.len(),
        4 + 2,
        "a (3×) and b (2×) pass min_freq 2, c does not"
    );
    assert_eq!(v.token(4), "a");
    assert_eq!(v.encode(&tokenize("b c")), vec![5, WordVocab::UNK]);
}

#[test]
fn index_splits_are_seeded_partitions() {
    let parts = split_indices(103, &[0.8, 0.1, 0.1], 5);
    assert_eq!(
        parts.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![82, 10, 11]
    );
    let mut all: Vec<usize> = parts.concat();
    all.sort();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    assert_eq!(parts, split_indices(103, &[0.8, 0.1, 0.1], 5));
}
