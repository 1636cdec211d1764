//! Named tolerances for comparing results: `|a − b| ≤ max(abs, rel · max(|a|, |b|))`.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

impl Tolerance {
    /// f64 against an f64 reference computed in a different order.
    pub const F64: Tolerance = Tolerance {
        rel: 1e-10,
        abs: 1e-12,
    };
    /// f32 kernels against the f64 result (a few ulps, plus accumulation over ~1e3 terms).
    pub const F32: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    /// f32 with long reductions or transcendental chains.
    pub const F32_LOOSE: Tolerance = Tolerance {
        rel: 1e-3,
        abs: 1e-4,
    };

    pub fn close(&self, a: f64, b: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if a.is_infinite() || b.is_infinite() {
            return a == b;
        }
        (a - b).abs() <= self.abs.max(self.rel * a.abs().max(b.abs()))
    }
}

/// Panics with the first mismatching element, both values and the tolerance.
#[track_caller]
pub fn assert_close(actual: &[f64], expected: &[f64], tol: Tolerance, what: &str) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} elements, expected {}",
        actual.len(),
        expected.len()
    );
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            tol.close(a, e),
            "{what}: element {i}: got {a:.10e}, expected {e:.10e} (tolerance {tol:?})"
        );
    }
}
