//! The peak each device reaches on the work it does best: a large square matrix product. The
//! model's kernels are then shown as a share of it.

use std::sync::Arc;

use crate::backend::Setup;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBackend};
use crate::model::{Activation, Init, Loss, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};

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
        input_dropout: 0.0,
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
