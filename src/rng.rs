//! A counter-based hash RNG: every random number is a pure function of (seed, stream, index).
//!
//! It is written out here rather than taken from a crate because `shaders/` must compute the very
//! same numbers in WGSL (u32 arithmetic only), so CPU and GPU agree bit for bit on every random
//! choice. The mixer is the "lowbias32" integer hash (two multiply-xorshift rounds).

/// Streams keep independent uses of one seed apart.
pub mod stream {
    pub const INIT: u32 = 0x1000_0000;
    pub const SHUFFLE: u32 = 0x2000_0000;
    pub const TEST_DATA: u32 = 0x3000_0000;
    /// Dropout masks: DROPOUT + layer, keyed by seed ^ mix32(step).
    pub const DROPOUT: u32 = 0x4000_0000;
    /// Which training samples `--val` holds out.
    pub const VALIDATION: u32 = 0x5000_0000;
}

#[inline]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The random u32 for (seed, stream, index).
#[inline]
pub fn hash3(seed: u32, stream: u32, index: u32) -> u32 {
    mix32(seed ^ mix32(stream ^ mix32(index.wrapping_add(0x9e37_79b9))))
}

/// Uniform in [0, 1), 24 bits of resolution (exactly representable in f32).
#[inline]
pub fn uniform(seed: u32, stream: u32, index: u32) -> f32 {
    (hash3(seed, stream, index) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Standard normal by Box-Muller over two consecutive counters.
pub fn normal(seed: u32, stream: u32, index: u32) -> f32 {
    let u1 = uniform(seed, stream, index.wrapping_mul(2)).max(1e-7);
    let u2 = uniform(seed, stream, index.wrapping_mul(2).wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Fisher-Yates permutation of 0..n, keyed by (seed, stream). Lemire's multiply-shift maps a hash
/// onto 0..=i without the bias of `%`.
pub fn permutation(n: usize, seed: u32, stream: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let h = hash3(seed, stream, i as u32) as u64;
        let j = ((h * (i as u64 + 1)) >> 32) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_depends_on_seed() {
        let a = permutation(1000, 1, stream::SHUFFLE);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, permutation(1000, 2, stream::SHUFFLE));
        assert_eq!(a, permutation(1000, 1, stream::SHUFFLE));
    }

    #[test]
    fn normal_has_unit_moments() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(7, stream::INIT, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }
}
