//! `exp` for f32 written so that a loop over a slice vectorises: no branches, no libm call.
//!
//! Range reduction `x = n·ln2 + r` with |r| ≤ ln2/2, a degree-6 polynomial for `e^r` (Cephes
//! `expf` coefficients, relative error about 1e-7, i.e. about one ulp), and `2^n` built from the
//! exponent bits. f64 keeps the standard library's `exp`: it is the precision we check against.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // `max`/`min` rather than `clamp` (whose NaN handling blocks vectorisation); NaN is
    // restored at the end. Below -87.3 the true result is subnormal or zero.
    #[allow(clippy::manual_clamp)]
    let xc = x.max(-87.3).min(88.7);
    // Round to nearest with the 1.5·2^23 trick: the integer n sits in the low mantissa bits of
    // `shifted`, so no float-to-int conversion (a saturating, unvectorised cast in Rust) is needed.
    let magic = 12_582_912.0f32;
    let shifted = xc.mul_add(LOG2E, magic);
    let n = shifted - magic;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    // Horner with fused multiply-adds (one instruction each on x86-64-v3 and aarch64).
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let er = (p * r).mul_add(r, r) + 1.0;
    let n_int = shifted.to_bits().wrapping_sub(magic.to_bits()) as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    let y = er * scale;
    let y = if x < -87.3 { 0.0 } else { y };
    let y = if x > 88.7 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// tanh through exp, accurate to a few ulps, also vectorisable.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    // tanh(x) = sign(x) · (1 − e^{−2|x|}) / (1 + e^{−2|x|}); for small |x| use the odd series
    // to avoid the cancellation in 1 − e^{−2|x|}.
    let a = x.abs();
    let e = exp_f32(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let small = a * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let t = if a < 0.0625 { small } else { big };
    t.copysign(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = super::exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(super::exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(super::exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(super::exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -20.0f32;
        while x < 20.0 {
            let got = super::tanh_f32(x) as f64;
            let want = (x as f64).tanh();
            worst = worst.max((got - want).abs() / want.abs().max(1e-30));
            x += 0.00731;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }
}
