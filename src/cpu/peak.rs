//! The CPU's matrix-multiply peak as this build reaches it: `gemm`'s sgemm on a large square
//! product, split across the rayon pool's threads the way the training step splits a batch. The
//! model's kernels are reported as a share of it.

use std::time::Instant;

use rayon::prelude::*;

/// GFLOP/s of C[size, size] = A · B (2·size³ flops), the best of a few repetitions after a
/// warm-up, on all of the current rayon pool's threads (each takes a band of C's rows).
pub fn peak_gflops(size: usize) -> f64 {
    let size = size.max(1);
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..size * size).map(|i| (i % 5) as f32 * 0.5).collect();
    let mut c = vec![0.0f32; size * size];
    let threads = rayon::current_num_threads().max(1);
    let band = size.div_ceil(threads);
    let mut best = f64::INFINITY;
    // Large sizes take long enough that three timed runs settle; small ones repeat more.
    let reps = (2e9 / (2.0 * (size as f64).powi(3))).clamp(3.0, 200.0) as usize;
    for rep in 0..=reps {
        let t = Instant::now();
        c.par_chunks_mut(band * size)
            .enumerate()
            .for_each(|(i, c_band)| {
                let rows = c_band.len() / size;
                let a_band = &a[i * band * size..][..rows * size];
                super::kernels::sgemm(c_band, false, a_band, false, &b, false, rows, size, size);
            });
        // The first run pages the buffers in and warms the caches.
        if rep > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    2.0 * (size as f64).powi(3) / best / 1e9
}
