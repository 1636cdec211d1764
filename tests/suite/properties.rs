//! Property tests: random shapes that broadcast, random (also non-contiguous) layouts, and
//! algebraic identities that must hold whatever the values.

use cubegrad::testing::naive::{self, Array};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::Tensor;
use proptest::prelude::*;

/// A shape of rank 0..=4 with sizes 1..=5.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, 0..=4)
}

/// Two shapes that broadcast: start from one, then drop leading dims and set some to 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape()
        .prop_flat_map(|s| {
            let r = s.len();
            (Just(s), 0..=r, prop::collection::vec(any::<bool>(), r))
        })
        .prop_map(|(s, drop, ones)| {
            let t: Vec<usize> = s
                .iter()
                .zip(&ones)
                .skip(drop)
                .map(|(&d, &one)| if one { 1 } else { d })
                .collect();
            (s, t)
        })
}

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| (((i as u64 + 1) * 2654435761 + seed * 97) % 1000) as f64 / 250.0 - 2.0)
        .collect()
}

/// The same values as `shape`, stored permuted and read back through a strided view, so that
/// kernels see a non-contiguous layout.
fn strided(shape: &[usize], data: &[f64], rotate: usize) -> Tensor {
    let r = shape.len();
    if r < 2 {
        return Tensor::from_vec(data.to_vec(), shape);
    }
    let perm: Vec<usize> = (0..r).map(|i| (i + rotate) % r).collect();
    let stored = naive::permute(&Array::new(shape, data.to_vec()), &perm);
    let mut inverse = vec![0isize; r];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i as isize;
    }
    Tensor::from_vec(stored.data, stored.shape.as_slice()).permute(&inverse)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn broadcast_binary_ops_match_reference((sa, sb) in broadcast_pair(), swap in any::<bool>(), rot in 0usize..3, seed in 0u64..100) {
        let (sa, sb) = if swap { (sb, sa) } else { (sa, sb) };
        let (va, vb) = (values(sa.iter().product(), seed), values(sb.iter().product(), seed + 1));
        let (a, b) = (strided(&sa, &va, rot), strided(&sb, &vb, rot + 1));
        let (na, nb) = (Array::new(&sa, va), Array::new(&sb, vb));
        for (got, want) in [
            (a.add(&b), naive::zip(&na, &nb, |x, y| x + y)),
            (a.mul(&b), naive::zip(&na, &nb, |x, y| x * y)),
            (a.sub(&b), naive::zip(&na, &nb, |x, y| x - y)),
        ] {
            prop_assert_eq!(got.dims(), want.shape.as_slice());
            assert_close(&got.to_vec::<f64>(), &want.data, Tolerance::F64, "broadcast op");
        }
    }

    #[test]
    fn broadcast_gradients_sum_back_to_input_shapes((sa, sb) in broadcast_pair(), seed in 0u64..100) {
        let a = Tensor::from_vec(values(sa.iter().product(), seed), sa.as_slice()).with_grad();
        let b = Tensor::from_vec(values(sb.iter().product(), seed + 7), sb.as_slice()).with_grad();
        let out = a.mul(&b);
        let g = out.sum().backward();
        // d/da Σ a·b = Σ over the broadcast axes of b, which has a's shape.
        prop_assert_eq!(g.get(&a).unwrap().dims(), a.dims());
        prop_assert_eq!(g.get(&b).unwrap().dims(), b.dims());
        let total_a: f64 = g.get(&a).unwrap().to_vec::<f64>().iter().zip(a.to_vec::<f64>()).map(|(g, x)| g * x).sum();
        // Σ_i a_i ∂/∂a_i (Σ a·b) = Σ a·b, since the sum is linear in a.
        let s = out.sum().item();
        prop_assert!((total_a - s).abs() <= 1e-9 * (1.0 + s.abs()));
    }

    #[test]
    fn add_and_mul_commute_and_associate((sa, sb) in broadcast_pair(), seed in 0u64..50) {
        let a = Tensor::from_vec(values(sa.iter().product(), seed), sa.as_slice());
        let b = Tensor::from_vec(values(sb.iter().product(), seed + 3), sb.as_slice());
        let c = Tensor::from_vec(values(sb.iter().product(), seed + 5), sb.as_slice());
        assert_close(&a.add(&b).to_vec::<f64>(), &b.add(&a).to_vec::<f64>(), Tolerance::F64, "a+b = b+a");
        assert_close(&a.mul(&b).to_vec::<f64>(), &b.mul(&a).to_vec::<f64>(), Tolerance::F64, "ab = ba");
        assert_close(&a.mul(&b).mul(&c).to_vec::<f64>(), &a.mul(&b.mul(&c)).to_vec::<f64>(), Tolerance::F64, "(ab)c = a(bc)");
        assert_close(&a.mul(&b.add(&c)).to_vec::<f64>(), &a.mul(&b).add(&a.mul(&c)).to_vec::<f64>(), Tolerance::F64, "a(b+c) = ab+ac");
    }

    #[test]
    fn reductions_agree_with_reference(s in prop::collection::vec(1usize..=5, 1..=4), axis_bits in 0u8..16, keep in any::<bool>(), rot in 0usize..3) {
        let v = values(s.iter().product(), 11);
        let x = strided(&s, &v, rot);
        let axes: Vec<usize> = (0..s.len()).filter(|i| axis_bits & (1 << i) != 0).collect();
        let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let all: Vec<usize> = if axes.is_empty() { (0..s.len()).collect() } else { axes.clone() };
        let want = naive::reduce(&Array::new(&s, v.clone()), &all, |p, q| p + q);
        let got = x.sum_axes(&ax, keep);
        assert_close(&got.to_vec::<f64>(), &want.data, Tolerance::F64, "sum");
        let want_max = naive::reduce(&Array::new(&s, v), &all, f64::max);
        assert_close(&x.max_axes(&ax, keep).to_vec::<f64>(), &want_max.data, Tolerance::F64, "max");
        prop_assert_eq!(got.numel(), want.data.len());
    }

    #[test]
    fn softmax_rows_are_distributions(s in prop::collection::vec(1usize..=6, 1..=3), rot in 0usize..3, scale in 0.1f64..50.0) {
        let v: Vec<f64> = values(s.iter().product(), 5).into_iter().map(|x| x * scale).collect();
        let y = strided(&s, &v, rot).softmax(-1);
        let sums = y.sum_axes(&[-1], false).to_vec::<f64>();
        for total in sums {
            prop_assert!((total - 1.0).abs() < 1e-12);
        }
        prop_assert!(y.to_vec::<f64>().iter().all(|&p| (0.0..=1.0).contains(&p)));
        // Shifting a row by a constant does not change its softmax.
        let shifted = strided(&s, &v, rot).add_scalar(7.5).softmax(-1);
        assert_close(&shifted.to_vec::<f64>(), &y.to_vec::<f64>(), Tolerance::F64, "shift invariance");
    }

    #[test]
    fn layout_round_trips(s in prop::collection::vec(1usize..=5, 2..=4), rot in 1usize..3) {
        let v = values(s.iter().product(), 2);
        let x = Tensor::from_vec(v.clone(), s.as_slice());
        let r = s.len();
        let perm: Vec<isize> = (0..r).map(|i| ((i + rot) % r) as isize).collect();
        let mut inverse = vec![0isize; r];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p as usize] = i as isize;
        }
        prop_assert_eq!(x.permute(&perm).permute(&inverse).to_vec::<f64>(), v.clone());
        prop_assert_eq!(x.transpose(0, -1).transpose(0, -1).to_vec::<f64>(), v.clone());
        prop_assert_eq!(x.permute(&perm).contiguous().reshape(&[x.numel()]).to_vec::<f64>(), naive::permute(&Array::new(&s, v.clone()), &perm.iter().map(|&p| p as usize).collect::<Vec<_>>()).data);
        let parts: Vec<Tensor> = (0..s[0]).map(|i| x.narrow(0, i, 1)).collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        prop_assert_eq!(Tensor::concat(&refs, 0).to_vec::<f64>(), v);
    }

    #[test]
    fn matmul_identities(m in 1usize..6, k in 1usize..6, n in 1usize..6, batch in 1usize..3) {
        let a = Tensor::from_vec(values(batch * m * k, 1), [batch, m, k]);
        let b = Tensor::from_vec(values(k * n, 2), [k, n]);
        let c = Tensor::from_vec(values(n * 2, 3), [n, 2]);
        // (AB)C = A(BC), and (AB)ᵀ = BᵀAᵀ, with a broadcast batch dimension.
        assert_close(&a.matmul(&b).matmul(&c).to_vec::<f64>(), &a.matmul(&b.matmul(&c)).to_vec::<f64>(), Tolerance::F64, "associativity");
        assert_close(&a.matmul(&b).t().contiguous().to_vec::<f64>(), &b.t().matmul(&a.t()).to_vec::<f64>(), Tolerance::F64, "transpose");
        let want = naive::matmul(&Array::from_tensor(&a), &Array::from_tensor(&b));
        assert_close(&a.matmul(&b).to_vec::<f64>(), &want.data, Tolerance::F64, "reference");
    }

    #[test]
    fn exp_log_and_sigmoid_identities(s in shape(), seed in 0u64..50) {
        let x = Tensor::from_vec(values(s.iter().product(), seed), s.as_slice());
        assert_close(&x.exp().log().to_vec::<f64>(), &x.to_vec::<f64>(), Tolerance::F64, "log(exp x) = x");
        // σ(x) + σ(−x) = 1 and tanh(x) = 2σ(2x) − 1.
        let one = x.sigmoid().add(&x.neg().sigmoid()).to_vec::<f64>();
        prop_assert!(one.iter().all(|&v| (v - 1.0).abs() < 1e-12));
        assert_close(&x.tanh().to_vec::<f64>(), &x.mul_scalar(2.0).sigmoid().affine(2.0, -1.0).to_vec::<f64>(), Tolerance::F64, "tanh/sigmoid");
    }

    #[test]
    fn f32_elementwise_kernels_track_f64(s in prop::collection::vec(1usize..=40, 1..=3), seed in 0u64..50) {
        let v = values(s.iter().product(), seed);
        let x64 = Tensor::from_vec(v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>(), s.as_slice());
        let x32 = x64.to_dtype(cubegrad::DType::F32);
        for (a, b, name) in [
            (x32.exp(), x64.exp(), "exp"),
            (x32.tanh(), x64.tanh(), "tanh"),
            (x32.sigmoid(), x64.sigmoid(), "sigmoid"),
            (x32.gelu_tanh(), x64.gelu_tanh(), "gelu_tanh"),
            (x32.softmax(-1), x64.softmax(-1), "softmax"),
        ] {
            assert_close(&a.to_vec::<f64>(), &b.to_vec::<f64>(), Tolerance::F32, name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every op of the registry, on inputs drawn from random seeds (strided views included where
    /// the registry entry builds them), agrees with the naive reference.
    #[test]
    fn registry_ops_match_reference_on_random_inputs(seed in 0u64..1_000_000) {
        for case in cubegrad::testing::registry() {
            let inputs = case.make_inputs(cubegrad::DType::F64, seed);
            let out = (case.run)(&inputs).unwrap();
            let want = case.reference_of(&inputs);
            prop_assert_eq!(out.dims(), want.shape.as_slice(), "{}", case.name);
            assert_close(&out.to_vec::<f64>(), &want.data, Tolerance::F64, case.name);
        }
    }
}

/// Reductions large enough to run in parallel, in each of the ways the kernel shares them out:
/// many outer blocks, few columns over many rows (a bias's gradient, summed in bands of rows),
/// many columns, and one long row.
#[test]
fn large_reductions_match_the_reference_in_every_parallel_layout() {
    for (s, axis) in [
        (vec![3, 4099, 13], 1),
        (vec![5003, 37], 0),
        (vec![70, 1031], 0),
        (vec![2, 40_000], 1),
    ] {
        let v = values(s.iter().product(), 11);
        let x = Tensor::from_vec(v.clone(), s.as_slice());
        let what = format!("{s:?} over axis {axis}");
        let want = naive::reduce(&Array::new(&s, v.clone()), &[axis], |p, q| p + q);
        assert_close(
            &x.sum_axes(&[axis as isize], true).to_vec::<f64>(),
            &want.data,
            Tolerance::F64,
            &what,
        );
        let want = naive::reduce(&Array::new(&s, v.clone()), &[axis], f64::max);
        assert_close(
            &x.max_axes(&[axis as isize], true).to_vec::<f64>(),
            &want.data,
            Tolerance::F64,
            &what,
        );
        let want = naive::reduce(&Array::new(&s, v), &[axis], f64::min);
        assert_close(
            &x.min_axes(&[axis as isize], true).to_vec::<f64>(),
            &want.data,
            Tolerance::F64,
            &what,
        );
    }
}

/// Running sums large enough to run in parallel, along a middle and the last axis; the
/// backward (the scan from the end) of their total gives each element the count of sums it
/// enters.
#[test]
fn large_running_sums_match_the_reference_forwards_and_backwards() {
    for (s, axis) in [
        (vec![3, 4099, 13], 1usize),
        (vec![70, 1031], 1),
        (vec![9000, 5], 0),
    ] {
        let v = values(s.iter().product(), 3);
        let x = Tensor::from_vec(v.clone(), s.as_slice()).with_grad();
        let y = x.cumsum(axis as isize);
        let what = format!("{s:?} along axis {axis}");
        let want = naive::cumsum(&Array::new(&s, v), axis);
        assert_close(&y.to_vec::<f64>(), &want.data, Tolerance::F64, &what);
        let g = y.sum().backward().get(&x).unwrap().to_vec::<f64>();
        let inner: usize = s[axis + 1..].iter().product();
        let counts: Vec<f64> = (0..g.len())
            .map(|i| (s[axis] - (i / inner) % s[axis]) as f64)
            .collect();
        assert_eq!(g, counts, "{what}: gradient");
    }
}
