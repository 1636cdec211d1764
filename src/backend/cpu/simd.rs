//! Runtime choice of the widest vector instructions. The crate is built for x86-64-v3 (AVX2 +
//! FMA); on CPUs that also have AVX-512 the hottest loops run a second copy compiled for it,
//! picked once at run time, so one binary is fast on both.
//!
//! The copy only exists if the loop's code is *inlined* into a function compiled with the
//! AVX-512 features: code in a function of its own is compiled for the base features, whoever
//! calls it. Two tools make sure it is:
//!
//! - [`widest!`](crate::backend::cpu::simd::widest) for a loop written in place: it writes the
//!   loop twice, as two closures that are each called exactly once, and LLVM inlines a
//!   function with a single call site unless it is very large. Inside the loop, call element
//!   functions that are `#[inline(always)]` (a trait method, not a closure handed in from
//!   outside: a closure called from both copies has two call sites and may stay a call).
//! - [`widest_fn!`](crate::backend::cpu::simd::widest_fn) for a whole kernel body (an
//!   attention head): it defines a function that calls an `#[inline(always)]` function from
//!   an AVX-512 copy or a plain one, so nothing is left to the inliner's judgement.

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

#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx512() -> bool {
    false
}

/// Calls `f` from a function compiled for AVX-512. Only for [`widest!`], which checks the CPU
/// first.
///
/// # Safety
/// The CPU must support AVX-512 F, VL, BW and DQ ([`has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
pub unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Evaluates the expression in code compiled for AVX-512 when the CPU has it, plainly
/// otherwise (see the module comment). The expression should be a whole loop, not one element.
macro_rules! widest {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if $crate::backend::cpu::simd::has_avx512() {
                // SAFETY: the CPU was just checked to support every feature `run_avx512`
                // enables.
                unsafe { $crate::backend::cpu::simd::run_avx512(|| $body) }
            } else {
                // A closure of its own too, called once, so that this copy is inlined alike.
                #[allow(clippy::redundant_closure_call)]
                let plain = (|| $body)();
                plain
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body
        }
    }};
}
pub(crate) use widest;

/// `widest_fn!(fn name<T: Bound>(args) => body_fn)` defines `name`, which runs the
/// `#[inline(always)]` function `body_fn(args)` compiled for AVX-512 when the CPU has it, and
/// plainly otherwise (see the module comment).
macro_rules! widest_fn {
    ($vis:vis fn $name:ident <$($g:ident : $b:path),*> ($($a:ident : $t:ty),* $(,)?) => $body:ident) => {
        $vis fn $name<$($g: $b),*>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
                unsafe fn wide<$($g: $b),*>($($a: $t),*) {
                    $body($($a),*)
                }
                if $crate::backend::cpu::simd::has_avx512() {
                    // SAFETY: the CPU was just checked to support every feature `wide`
                    // enables.
                    return unsafe { wide($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use widest_fn;
