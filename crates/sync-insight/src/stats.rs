//! Small robust statistics shared by the detectors and the model: medians, MAD, Wilson
//! bounds, AUC and a seeded generator.

/// Scales a median absolute deviation to a standard deviation under normal noise.
pub(crate) const MAD_TO_SD: f64 = 1.4826;

/// The median of `values` (NaN-free), `None` when empty.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// The weighted median of `(value, weight)` pairs with positive total weight.
pub(crate) fn weighted_median(pairs: &mut [(f64, f64)]) -> Option<f64> {
    let total: f64 = pairs.iter().map(|(_, w)| w.max(0.0)).sum();
    if pairs.is_empty() || total <= 0.0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen = 0.0;
    for (i, &(value, weight)) in pairs.iter().enumerate() {
        seen += weight.max(0.0);
        if seen * 2.0 > total {
            return Some(value);
        }
        if (seen * 2.0 - total).abs() <= f64::EPSILON * total {
            // Exactly half the weight at or below this value: average with the next one.
            let next = pairs.get(i + 1).map_or(value, |p| p.0);
            return Some((value + next) / 2.0);
        }
    }
    pairs.last().map(|p| p.0)
}

/// Median and scaled MAD of `values` (a robust centre and standard deviation).
pub(crate) fn median_sd(values: &[f64]) -> Option<(f64, f64)> {
    let mut v = values.to_vec();
    let m = median(&mut v)?;
    let mut dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    let mad = median(&mut dev)?;
    Some((m, MAD_TO_SD * mad))
}

/// Weighted median and weighted scaled MAD of `(value, weight)` pairs.
pub(crate) fn weighted_median_sd(pairs: &[(f64, f64)]) -> Option<(f64, f64)> {
    let mut p = pairs.to_vec();
    let m = weighted_median(&mut p)?;
    let mut dev: Vec<(f64, f64)> = pairs.iter().map(|&(x, w)| ((x - m).abs(), w)).collect();
    let mad = weighted_median(&mut dev)?;
    Some((m, MAD_TO_SD * mad))
}

/// The Wilson score interval of `successes` out of `trials` at `z` standard errors.
/// With no trials the interval is the whole of 0..=1.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = (successes.min(trials) as f64) / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).clamp(0.0, 1.0), (centre + half).clamp(0.0, 1.0))
}

/// ln(n!), exact below 64 and by Stirling's series above (error below 1e-12).
fn ln_factorial(n: u64) -> f64 {
    if n < 64 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (std::f64::consts::TAU * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x * x)
}

/// The upper tail of a standard normal, P(Z > z), by the Abramowitz–Stegun erfc formula
/// 7.1.26 (absolute error below 1.5e-7).
pub(crate) fn normal_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * erfc } else { 1.0 - 0.5 * erfc }
}

/// Sums a tail from its first term while the terms still matter.
fn sum_tail(first_ln: f64, mut ratio: impl FnMut(u64) -> f64, max_terms: u64) -> f64 {
    let mut term = first_ln.exp();
    let mut sum = term;
    for j in 0..max_terms {
        term *= ratio(j);
        sum += term;
        if term <= sum * 1e-12 {
            break;
        }
    }
    sum.min(1.0)
}

/// P(X ≥ k) for X ~ Binomial(n, p); exact (1 at or below the mean, where it is not needed).
pub(crate) fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 || (k as f64) <= n as f64 * p {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let ln_pmf = ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
        + k as f64 * p.ln()
        + (n - k) as f64 * (1.0 - p).ln();
    let odds = p / (1.0 - p);
    sum_tail(
        ln_pmf,
        |j| {
            let i = k + j;
            (n - i) as f64 / (i + 1) as f64 * odds
        },
        n - k,
    )
}

/// P(X ≥ x) for X ~ Poisson(mean); 1 at or below the mean.
pub(crate) fn poisson_upper_tail(x: u64, mean: f64) -> f64 {
    if x == 0 || (x as f64) <= mean {
        return 1.0;
    }
    if mean <= 0.0 {
        return 0.0;
    }
    let ln_pmf = -mean + x as f64 * mean.ln() - ln_factorial(x);
    sum_tail(ln_pmf, |j| mean / (x + j + 1) as f64, 100_000)
}

/// P(X ≤ x) for X ~ Poisson(mean); 1 at or above the mean.
pub(crate) fn poisson_lower_tail(x: u64, mean: f64) -> f64 {
    if (x as f64) >= mean {
        return 1.0;
    }
    let ln_pmf = -mean + x as f64 * mean.ln() - ln_factorial(x);
    sum_tail(ln_pmf, |j| if j < x { (x - j) as f64 / mean } else { 0.0 }, x)
}

/// The smallest k in lo..=hi with `significant(k)`, for a predicate false then true.
pub(crate) fn first_significant(lo: u64, hi: u64, significant: impl Fn(u64) -> bool) -> Option<u64> {
    if lo > hi || !significant(hi) {
        return None;
    }
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = a + (b - a) / 2;
        if significant(mid) { b = mid } else { a = mid + 1 }
    }
    Some(a)
}

/// The area under the ROC curve of `scores` against `labels` (Mann–Whitney, ties count a
/// half). `None` when either class is absent.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties, then the rank-sum statistic.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0.total_cmp(&pairs[i].0).is_eq() {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += pairs[i..=j].iter().filter(|p| p.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    let p = positives as f64;
    let u = rank_sum_pos - p * (p + 1.0) / 2.0;
    Some(u / (p * negatives as f64))
}

/// SplitMix64: a tiny, seeded, platform-independent generator, so that every evaluation and
/// every training split is reproducible from its seed without depending on a crate's
/// algorithm staying the same across versions.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in 0..n (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal by Box–Muller.
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Poisson by inversion for small means and a rounded normal for large ones.
    pub(crate) fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 60.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let limit = (-mean).exp();
        let mut k = 0u64;
        let mut p = self.uniform();
        while p > limit {
            k += 1;
            p *= self.uniform();
        }
        k
    }

    /// Binomial by summing Bernoulli draws for small n and a normal approximation beyond.
    pub(crate) fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let p = p.clamp(0.0, 1.0);
        if n <= 200 {
            return (0..n).filter(|_| self.chance(p)).count() as u64;
        }
        let mean = n as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        (mean + sd * self.normal()).round().clamp(0.0, n as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_mad() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        let (m, sd) = median_sd(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(m, 3.0);
        assert!((sd - MAD_TO_SD).abs() < 1e-12);
        assert_eq!(weighted_median(&mut [(1.0, 1.0), (5.0, 10.0)]), Some(5.0));
        assert_eq!(weighted_median(&mut [(1.0, 1.0), (5.0, 1.0)]), Some(3.0));
    }

    #[test]
    fn wilson_is_wide_for_few_trials() {
        let (lo, hi) = wilson_interval(1, 2, 1.96);
        assert!(lo < 0.1 && hi > 0.9, "{lo} {hi}");
        let (lo, hi) = wilson_interval(500, 1000, 1.96);
        assert!(lo > 0.46 && hi < 0.54);
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn exact_tails() {
        // P(X >= 1 | 2, 0.045) = 1 - 0.955^2.
        assert!((binomial_upper_tail(1, 2, 0.045) - 0.087_975).abs() < 1e-6);
        assert!((binomial_upper_tail(2, 2, 0.5) - 0.25).abs() < 1e-12);
        // P(X >= 3 | Poisson(1)) = 1 - e^-1 (1 + 1 + 1/2).
        assert!((poisson_upper_tail(3, 1.0) - (1.0 - (-1.0f64).exp() * 2.5)).abs() < 1e-9);
        assert!((poisson_lower_tail(0, 3.0) - (-3.0f64).exp()).abs() < 1e-12);
        assert!((poisson_lower_tail(1, 3.0) - 4.0 * (-3.0f64).exp()).abs() < 1e-12);
        assert!((normal_tail(3.0) - 0.001_349_9).abs() < 1e-6);
        assert!((ln_factorial(100) - 363.739_375_555_563_5).abs() < 1e-9);
        assert_eq!(first_significant(0, 10, |k| k >= 7), Some(7));
        assert_eq!(first_significant(0, 10, |_| false), None);
    }

    #[test]
    fn auc_of_perfect_random_and_ties() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc(&[0.5], &[true]), None);
    }
}
