//! A cache of large freed CPU buffers, reused by exact size.
//!
//! Training repeats the same shapes every step, so the same buffer sizes are freed and asked for
//! again and again. Handing a freed 16 MB buffer back to the system and faulting a fresh one in
//! on the next step costs more than the op that fills it (measured: a softmax forward + backward
//! on [16384, 256] took 12.5 ms with glibc returning memory between steps and 3.9 ms without).
//! Buffers of at least `MIN_ELEMS` elements are kept here instead, up to `MAX_BYTES` in all;
//! PyTorch's CUDA caching allocator does the same for GPU memory.

use std::any::{Any, TypeId};
use std::sync::Mutex;

/// Smaller buffers come and go through malloc's own free lists cheaply.
const MIN_ELEMS: usize = 1 << 16;
/// The cache never holds more than this; beyond it, freed buffers go back to the system.
const MAX_BYTES: usize = 1 << 30;
/// Buffers kept per size: enough for the live set of one training step's intermediates.
const MAX_PER_SIZE: usize = 16;

/// Free buffers by exact length. A training step frees and asks for a handful of distinct
/// sizes, so a short list searched in order costs less than hashing the length.
struct Buckets<T>(Vec<(usize, Vec<Vec<T>>)>);

impl<T> Default for Buckets<T> {
    fn default() -> Self {
        Buckets(Vec::new())
    }
}

impl<T> Buckets<T> {
    fn get_mut(&mut self, n: &usize) -> Option<&mut Vec<Vec<T>>> {
        self.0.iter_mut().find(|(m, _)| m == n).map(|(_, b)| b)
    }
    fn entry(&mut self, n: usize) -> &mut Vec<Vec<T>> {
        let at = match self.0.iter().position(|(m, _)| *m == n) {
            Some(i) => i,
            None => {
                self.0.push((n, Vec::new()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

#[derive(Default)]
struct Cache {
    f32: Buckets<f32>,
    f64: Buckets<f64>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Cache::default))
}

/// An empty vector with room for exactly `n` elements, from the cache when one fits.
pub fn take<U: 'static>(n: usize) -> Vec<U> {
    if n >= MIN_ELEMS {
        let cached: Option<Box<dyn Any>> = with_cache(|p| {
            if TypeId::of::<U>() == TypeId::of::<f32>() {
                let v = p.f32.get_mut(&n).and_then(|b| b.pop())?;
                p.bytes -= n * 4;
                Some(Box::new(v) as Box<dyn Any>)
            } else if TypeId::of::<U>() == TypeId::of::<f64>() {
                let v = p.f64.get_mut(&n).and_then(|b| b.pop())?;
                p.bytes -= n * 8;
                Some(Box::new(v) as Box<dyn Any>)
            } else {
                None
            }
        });
        if let Some(v) = cached.and_then(|b| b.downcast::<Vec<U>>().ok()) {
            let mut v = *v;
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(n)
}

/// `n` copies of `value`, in a cached buffer when one fits.
pub fn filled<U: Copy + 'static>(n: usize, value: U) -> Vec<U> {
    let mut v = take(n);
    v.resize(n, value);
    v
}

/// Takes back the buffer of a dropped tensor, keeping large f32 and f64 buffers for reuse.
pub(crate) fn give<U: 'static>(v: Vec<U>) {
    fn keep<T>(buckets: &mut Buckets<T>, bytes: &mut usize, v: Vec<T>, size: usize) {
        let n = v.capacity();
        if n < MIN_ELEMS || *bytes + n * size > MAX_BYTES {
            return;
        }
        let bucket = buckets.entry(n);
        if bucket.len() < MAX_PER_SIZE {
            *bytes += n * size;
            bucket.push(v);
        }
    }
    if v.capacity() < MIN_ELEMS {
        return;
    }
    let v: Box<dyn Any> = Box::new(v);
    let v = match v.downcast::<Vec<f32>>() {
        Ok(v) => return with_cache(|c| keep(&mut c.f32, &mut c.bytes, *v, 4)),
        Err(v) => v,
    };
    if let Ok(v) = v.downcast::<Vec<f64>>() {
        with_cache(|c| keep(&mut c.f64, &mut c.bytes, *v, 8));
    }
}

/// Bytes held in the cache (not counted by `cpu_memory_in_use`, which counts live tensors).
pub fn cached_bytes() -> usize {
    with_cache(|p| p.bytes)
}

/// Returns every cached buffer to the system.
pub fn clear_cache() {
    with_cache(|c| *c = Cache::default());
}
