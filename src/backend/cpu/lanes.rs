//! Reductions written with 16 independent partial sums, so that a loop over a slice vectorises:
//! a single accumulator is a strict chain of dependent adds, which the compiler may not
//! reorder (float addition is not associative), so it would run one element at a time.
//! Used inside loops that `simd::widest` compiles for the widest vectors.

use super::float::Float;

const LANES: usize = 16;

/// `Σ f(a_k)`.
#[inline(always)]
pub fn sum_map<T: Float>(a: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let ca = a.chunks_exact(LANES);
    let mut tail = T::zero();
    for &p in ca.remainder() {
        tail += f(p);
    }
    for p in ca {
        let p: &[T; LANES] = p.try_into().unwrap();
        for k in 0..LANES {
            acc[k] += f(p[k]);
        }
    }
    hsum(acc) + tail
}

/// The sum of one accumulator's lanes by halving (lane k plus lane k + w), which vectorises;
/// adding them one after another in order would be 15 dependent scalar adds.
#[inline(always)]
fn hsum<T: Float>(mut s: [T; LANES]) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for k in 0..w {
            s[k] += s[k + w];
        }
        w /= 2;
    }
    s[0]
}

/// The largest element (−∞ for none; NaNs are passed over, as a `>` comparison does).
#[inline(always)]
pub fn max<T: Float>(a: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let ca = a.chunks_exact(LANES);
    let mut tail = T::neg_infinity();
    for &p in ca.remainder() {
        tail = if p > tail { p } else { tail };
    }
    for p in ca {
        let p: &[T; LANES] = p.try_into().unwrap();
        for k in 0..LANES {
            acc[k] = if p[k] > acc[k] { p[k] } else { acc[k] };
        }
    }
    acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

/// `Σ a_k b_k`, with fused multiply-adds.
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = T::zero();
    for (&p, &q) in ca.remainder().iter().zip(cb.remainder()) {
        tail = p.mul_add(q, tail);
    }
    for (p, q) in ca.zip(cb) {
        let (p, q): (&[T; LANES], &[T; LANES]) = (p.try_into().unwrap(), q.try_into().unwrap());
        for k in 0..LANES {
            acc[k] = p[k].mul_add(q[k], acc[k]);
        }
    }
    hsum(acc) + tail
}

/// `[a · b_0, a · b_1, a · b_2, a · b_3]`: four dot products sharing `a`, with independent
/// partial sums, so that each chunk of `a` is loaded once for four rows.
#[inline(always)]
pub fn dot4<T: Float>(a: &[T], b: [&[T]; 4]) -> [T; 4] {
    let n = a.len();
    let (b0, b1, b2, b3) = (&b[0][..n], &b[1][..n], &b[2][..n], &b[3][..n]);
    let (mut s0, mut s1, mut s2, mut s3) = (
        [T::zero(); LANES],
        [T::zero(); LANES],
        [T::zero(); LANES],
        [T::zero(); LANES],
    );
    let chunks = a
        .chunks_exact(LANES)
        .zip(b0.chunks_exact(LANES))
        .zip(b1.chunks_exact(LANES))
        .zip(b2.chunks_exact(LANES))
        .zip(b3.chunks_exact(LANES));
    for ((((p, q0), q1), q2), q3) in chunks {
        for k in 0..LANES {
            s0[k] = p[k].mul_add(q0[k], s0[k]);
            s1[k] = p[k].mul_add(q1[k], s1[k]);
            s2[k] = p[k].mul_add(q2[k], s2[k]);
            s3[k] = p[k].mul_add(q3[k], s3[k]);
        }
    }
    let full = n / LANES * LANES;
    let tail = |q: &[T]| {
        a[full..]
            .iter()
            .zip(&q[full..])
            .fold(T::zero(), |s, (&p, &v)| p.mul_add(v, s))
    };
    let total = |s: &[T; LANES]| hsum(*s);
    [
        total(&s0) + tail(b0),
        total(&s1) + tail(b1),
        total(&s2) + tail(b2),
        total(&s3) + tail(b3),
    ]
}

/// `y += alpha · x`.
#[inline(always)]
pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) {
    for (yk, &xk) in y.iter_mut().zip(x) {
        *yk = alpha.mul_add(xk, *yk);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_match_a_plain_loop() {
        // 37 = two full chunks of 16 and a tail of 5.
        let a: Vec<f64> = (0..37).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..37).map(|i| (i as f64 * 0.11).cos()).collect();
        let dot: f64 = a.iter().zip(&b).map(|(p, q)| p * q).sum();
        assert!((super::dot(&a, &b) - dot).abs() < 1e-12);
        assert!(
            (super::sum_map(&a, |p| p * p) - a.iter().map(|p| p * p).sum::<f64>()).abs() < 1e-12
        );
        assert_eq!(
            super::max(&a),
            a.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );
        assert_eq!(super::max::<f64>(&[]), f64::NEG_INFINITY);
        let mut y = b.clone();
        super::axpy(2.0, &a, &mut y);
        assert!(y
            .iter()
            .zip(a.iter().zip(&b))
            .all(|(y, (p, q))| (y - (2.0 * p + q)).abs() < 1e-15));
    }
}
