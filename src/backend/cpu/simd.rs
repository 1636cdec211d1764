//! Runtime choice of the widest vector instructions. The crate is built for x86-64-v3 (AVX2 +
//! FMA); on CPUs that also have AVX-512 the hottest loops run a second copy compiled for it,
//! picked once at run time, so one binary is fast on both.

#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
    })
}

/// Runs `f` inlined into a function compiled for AVX-512 when the CPU has it, plainly otherwise.
/// Only worth it for a loop that vectorises; `f` should be the whole loop, not one element.
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
        #[inline]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_avx512() {
            // SAFETY: the CPU was just checked to support every feature `avx512` enables.
            return unsafe { avx512(f) };
        }
    }
    f()
}
