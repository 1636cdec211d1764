//! The file loaders against corrupt input: proptest mutates small real files (safetensors,
//! gzip text, IDX, CSV, TSV: truncations, flipped bytes, inflated header lengths, wrong dtypes
//! and shapes, huge dimensions) and every load must return an error or a value, never panic or
//! abort, and never ask for one allocation much larger than what the file can hold. The counting
//! allocator below watches the largest single request of the loading thread.

use cubegrad::data::{load_digits, load_idx_images, read_text, read_tsv};
use cubegrad::io::{load_tensors, save_tensors, Metadata};
use cubegrad::Tensor;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The system allocator, noting the largest single request of each thread while it watches.
struct Watching;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: a thread being torn down has no locals left, and is not watching.
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; noting a size only
// touches const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `load`, returning the largest single allocation it asked for.
fn largest_allocation<T>(load: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    WATCH.with(|w| w.set(true));
    let out = load();
    WATCH.with(|w| w.set(false));
    (out, LARGEST.with(|l| l.get()))
}

/// A loader's bound on one allocation: a few times what the bytes can expand to (deflate
/// expands at most about 1032-fold), plus room for the small vectors of any parse.
fn bound(file_len: usize, gzipped: bool) -> usize {
    let expanded = if gzipped { file_len * 1100 } else { file_len };
    8 * expanded + (1 << 20)
}

fn gunzip(path: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The first `lines` lines of a vendored text file.
fn head(path: &str, lines: usize) -> Vec<u8> {
    let text = String::from_utf8(gunzip(path)).unwrap();
    let mut out: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out.into_bytes()
}

/// The first `n` records of a vendored IDX file, its header's first dimension set to `n`.
fn idx_head(path: &str, n: usize) -> Vec<u8> {
    let all = gunzip(path);
    let ndim = all[3] as usize;
    let header = 4 + 4 * ndim;
    let per: usize = (1..ndim)
        .map(|i| u32::from_be_bytes(all[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .product();
    let mut out = all[..header + n * per].to_vec();
    out[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    out
}

/// The real files the mutations start from, small enough to load thousands of times.
struct Seeds {
    safetensors: Vec<u8>,
    text_gz: Vec<u8>,
    images: Vec<u8>,
    labels: Vec<u8>,
    csv: Vec<u8>,
    tsv: Vec<u8>,
}

/// Built once: the vendored files are decompressed whole to cut their heads.
fn seeds() -> &'static Seeds {
    static SEEDS: std::sync::OnceLock<Seeds> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| build_seeds(&scratch()))
}

fn build_seeds(dir: &Path) -> Seeds {
    let st = dir.join("seed.safetensors");
    let mut meta = Metadata::new();
    meta.insert("note".into(), "a seed".into());
    save_tensors(
        &st,
        &[
            ("w".to_string(), Tensor::randn([3, 5], 0.0, 1.0)),
            ("b".to_string(), Tensor::from_vec(vec![1.0f64, 2.0], [2])),
            ("ids".to_string(), Tensor::from_vec(vec![4i64, 5, 6], [3])),
        ],
        &meta,
    )
    .unwrap();
    Seeds {
        safetensors: std::fs::read(&st).unwrap(),
        text_gz: gzip(&head("data/sotu.txt.gz", 30)),
        images: idx_head("data/fashion-mnist/t10k-images-idx3-ubyte.gz", 3),
        labels: idx_head("data/fashion-mnist/t10k-labels-idx1-ubyte.gz", 3),
        csv: head("data/digits.csv.gz", 8),
        tsv: head("data/en_es_verses.tsv.gz", 8),
    }
}

/// One change to a file's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Keep this fraction (in thousandths) of the file.
    Truncate(u16),
    /// XOR the byte at this fraction of the file with a non-zero mask.
    Flip(u16, u8),
    /// Put this many random bytes in at this fraction of the file.
    Insert(u16, Vec<u8>),
    /// safetensors: the 8-byte header length set to this value.
    HeaderLength(u64),
    /// Replace the first occurrence of one ASCII string by another (dtypes, shapes, numbers).
    Replace(&'static str, &'static str),
    /// IDX: the dimension at this index set to this value.
    IdxDim(u8, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0u16..1000).prop_map(Mutation::Truncate),
        (0u16..1000, 1u8..=255).prop_map(|(p, m)| Mutation::Flip(p, m)),
        (0u16..1000, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        prop_oneof![Just(u64::MAX), Just(1u64 << 40), Just(0), (0u64..4096)]
            .prop_map(Mutation::HeaderLength),
        prop::sample::select(vec![
            ("F32", "F16"),
            ("F32", "I8"),
            ("F64", "U8"),
            ("I64", "BOOL"),
            ("F32", "XX"),
            ("[3,5]", "[5,3]"),
            ("[3,5]", "[4294967295,4294967295]"),
            ("[3,5]", "[3,6]"),
            ("[2]", "[18446744073709551615]"),
            ("[3]", "[]"),
            ("data_offsets\":[0", "data_offsets\":[9"),
            (",", ";"),
            ("\t", " "),
            ("1", "x"),
        ])
        .prop_map(|(a, b)| Mutation::Replace(a, b)),
        (0u8..4, any::<u32>()).prop_map(|(i, v)| Mutation::IdxDim(i, v)),
    ]
}

fn at(len: usize, thousandths: u16) -> usize {
    len * thousandths as usize / 1000
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Truncate(f) => bytes.truncate(at(bytes.len(), *f)),
        Mutation::Flip(f, mask) => {
            if !bytes.is_empty() {
                let i = at(bytes.len() - 1, *f);
                bytes[i] ^= mask;
            }
        }
        Mutation::Insert(f, b) => {
            let i = at(bytes.len(), *f);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::HeaderLength(n) => {
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&n.to_le_bytes());
            }
        }
        Mutation::Replace(a, b) => {
            if let Some(i) = bytes.windows(a.len()).position(|w| w == a.as_bytes()) {
                bytes.splice(i..i + a.len(), b.bytes());
            }
        }
        Mutation::IdxDim(i, v) => {
            let o = 4 + 4 * *i as usize;
            if bytes.len() >= o + 4 {
                bytes[o..o + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

fn mutated(seed: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in ms {
        apply(&mut b, m);
    }
    b
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cubegrad-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to `name` in the scratch folder and loads it; the load must not ask for one
/// allocation beyond the bound of `bytes`.
fn check<T>(name: &str, bytes: &[u8], load: impl FnOnce(&Path) -> T) -> T {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).unwrap();
    let (out, largest) = largest_allocation(|| load(&path));
    let limit = bound(bytes.len(), name.ends_with(".gz"));
    assert!(
        largest <= limit,
        "{name}: one allocation of {largest} bytes for a file of {} bytes",
        bytes.len()
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Each case mutates every kind of file the same way and loads all five: an error or a
    /// value, within the allocation bound (a panic fails the case).
    #[test]
    fn corrupt_files_give_errors_or_values_never_panics(ms in prop::collection::vec(mutation(), 1..4)) {
        let s = seeds();
        let st = check("t.safetensors", &mutated(&s.safetensors, &ms), |p| load_tensors(p));
        if let Ok((tensors, _)) = st {
            // A value must be whole: every tensor holds as many elements as its shape says.
            for (name, t) in tensors {
                prop_assert_eq!(t.numel(), t.dims().iter().product::<usize>(), "{}", name);
            }
        }
        let _ = check("t.txt.gz", &mutated(&s.text_gz, &ms), |p| read_text(p));
        let labels = scratch().join("labels");
        std::fs::write(&labels, mutated(&s.labels, &ms)).unwrap();
        let imgs = check("images", &mutated(&s.images, &ms), |p| load_idx_images(p, &labels));
        if let Ok(d) = imgs {
            prop_assert_eq!(d.x.dims()[0], d.y.numel());
        }
        let _ = check("d.csv", &mutated(&s.csv, &ms), |p| load_digits(p));
        let _ = check("d.csv.gz", &gzip(&mutated(&s.csv, &ms)), |p| load_digits(p));
        let _ = check("v.tsv", &mutated(&s.tsv, &ms), |p| read_tsv(p, 3));
    }
}

/// The seeds themselves load: the mutations start from valid files.
#[test]
fn the_unmutated_seeds_load() {
    let s = seeds();
    let (tensors, meta) = check("ok.safetensors", &s.safetensors, |p| load_tensors(p)).unwrap();
    assert_eq!(tensors.len(), 3);
    assert_eq!(meta.get("note").map(String::as_str), Some("a seed"));
    assert!(
        check("ok.txt.gz", &s.text_gz, |p| read_text(p))
            .unwrap()
            .len()
            > 100
    );
    let labels = scratch().join("ok-labels");
    std::fs::write(&labels, &s.labels).unwrap();
    let d = check("ok-images", &s.images, |p| load_idx_images(p, &labels)).unwrap();
    assert_eq!(d.x.dims(), &[3, 1, 28, 28]);
    assert_eq!(
        check("ok.csv", &s.csv, |p| load_digits(p)).unwrap().len(),
        8
    );
    assert_eq!(
        check("ok.tsv", &s.tsv, |p| read_tsv(p, 3)).unwrap().len(),
        8
    );
}
