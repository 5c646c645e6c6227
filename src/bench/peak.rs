//! The peak each device reaches on the work it does best: a large square matrix product. The
//! model's kernels are then shown as a share of it.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::backend::Setup;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBackend};
use crate::model::{Activation, Init, Loss, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};

/// GFLOP/s of a size×size×size sgemm on every thread, best of three after a warm-up.
///
/// A stand-in for `cpu::peak_gflops(size)`, which the CPU path is to gain: it calls the same
/// `gemm` crate the CPU twins use, single-threaded per call (how the crate is built here), with
/// C's rows split over the rayon threads as the CPU backend splits a batch.
pub fn cpu_peak_gflops(size: usize) -> f64 {
    let n = size.max(1);
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let threads = rayon::current_num_threads().max(1);
    let rows = n.div_ceil(threads);
    let mut best = f64::INFINITY;
    for round in 0..4 {
        let t = Instant::now();
        c.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(i, block)| {
                let m = block.len() / n;
                let a = &a[i * rows * n..][..m * n];
                // SAFETY: block is m·n, a is m·n and b n·n, all row-major with row stride n; block
                // is a unique borrow that overlaps neither input.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        n,
                        block.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        n as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
        if round > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// The best GFLOP/s our own GPU matmul kernels reach at size×size×size, and which kernel and
/// form reached it: the products of a size-size-10 model stepping on a batch of `size`, each
/// dispatch timed on its own (`GpuBackend::profile_step`). Its first layer's forward and weight
/// gradient products are exactly square.
pub fn gpu_peak_gflops(gpu: &Arc<Gpu>, size: usize, reps: usize) -> Result<(f64, String)> {
    let spec = ModelSpec::with_io(size, &[size], 10, Activation::Relu, Loss::Xent);
    let features: Vec<f32> = (0..size * size).map(|i| (i % 13) as f32 * 0.05).collect();
    let labels: Vec<u8> = (0..size).map(|i| (i % 10) as u8).collect();
    let train = Arc::new(Dataset::floats(features, labels, size, 10));
    let test = Arc::new(train.empty_like());
    let optim = OptimConfig::sgd(0.0);
    let setup = Setup {
        params: spec.init_params(Init::Auto, 0),
        spec,
        train,
        test,
        val: None,
        batch: size,
        optim,
        dropout: 0.0,
        seed: 0,
    };
    let mut g = GpuBackend::new(gpu.clone(), &setup)?;
    let hyper: Vec<StepHyper> = vec![optim.step_hyper(0, 0.0)];
    let order: Vec<u32> = (0..size as u32).collect();
    crate::backend::Backend::begin_epoch(&mut g, &order, &hyper, 0)?;
    let rows = g.profile_step(reps)?;
    rows.iter()
        .filter(|(d, _)| d.kernel.is_matmul())
        .filter_map(|(d, ns)| {
            let f = d.flops? as f64;
            Some((
                f / ns.max(1.0),
                format!("{} ({:?})", d.kernel.name(), d.form),
            ))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or_else(|| Error::Gpu("the square-matmul plan has no timed matrix product".into()))
}
