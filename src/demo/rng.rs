//! The demo's random numbers: a hand-written SplitMix64 stream and the few distributions the
//! generator draws from.
//!
//! Owns determinism: the same seed gives the same sequence on every platform and every version
//! of every dependency, which a library RNG does not promise across releases. It must not be
//! used for anything that needs unpredictability (keys, salts, tokens).

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by a Weyl constant and
/// mixed with two multiply-xorshift rounds. Passes BigCrush, and is tiny and portable.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A stream derived from a parent seed and a label, so that independent parts of the data
    /// set (one day, one export) do not shift when another part draws more numbers.
    pub fn derive(seed: u64, label: u64) -> Self {
        Self::new(mix(seed ^ mix(label.wrapping_add(0x9E37_79B9_7F4A_7C15))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform integer in `[0, n)`; `n` must be positive. The modulo bias is below 2^-40 for
    /// the small ranges used here, far under what a demo can show.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal by Box–Muller (one of the pair is dropped: simplicity over speed).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // in (0, 1], so ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space standard deviation: token counts and
    /// latencies are heavy-tailed like this in real traffic.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Index drawn with probability proportional to `weights` (cumulative, ascending, last =
    /// total). Returns 0 for an empty or all-zero table.
    pub fn pick_cumulative(&mut self, cumulative: &[f64]) -> usize {
        let Some(&total) = cumulative.last() else {
            return 0;
        };
        let x = self.unit() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    }
}

/// SplitMix64's output function; also a good 64-bit hash of a counter.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a string (FNV-1a folded through [`mix`]), for ids derived from names.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix(h)
}

/// Running sums of `weights`, the table [`SplitMix64::pick_cumulative`] expects.
pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .into_iter()
        .map(|w| {
            total += w.max(0.0);
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_vector() {
        // First outputs for seed 1234567 from the public-domain C reference implementation.
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn unit_stays_in_range_and_picks_follow_weights() {
        let mut r = SplitMix64::new(7);
        let table = cumulative([1.0, 0.0, 3.0]);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            counts[r.pick_cumulative(&table)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0], "{counts:?}");
    }
}
