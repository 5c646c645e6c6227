//! `descent verify`: every GPU kernel and whole steps against the CPU twins on this adapter.

use clap::Args;

use super::args::{DeviceArgs, DeviceChoice, open_gpu};
use descent::error::{Error, Result};
use descent::gpu::{MatmulVariant, verify};
use descent::model::{Activation, Loss, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind};

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Pick the GPU adapter whose name contains this (case-insensitive); also $WGPU_ADAPTER_NAME.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Matmul forms to build and check: auto (all this adapter has), blocked or tiled [default: auto].
    #[arg(long, value_enum)]
    pub kernel: Option<MatmulVariant>,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let dev = DeviceArgs {
        device: DeviceChoice::Gpu,
        adapter: args.adapter,
        kernel: args.kernel,
        unfused: false,
    };
    let gpu = open_gpu(&dev, 0)?.ok_or_else(|| Error::NoAdapter {
        detail: String::new(),
    })?;
    println!(
        "adapter: {}, {} matmul",
        gpu.ctx.describe(),
        gpu.kernels.variant.name()
    );
    let mut rows = verify::wait(verify::kernel_checks(&gpu))?;
    for (hidden, act, loss, batch, steps) in [
        (&[128][..], Activation::Relu, Loss::Xent, 64, 10),
        (&[33, 17][..], Activation::Tanh, Loss::Mse, 7, 10),
        (&[][..], Activation::Sigmoid, Loss::Xent, 1, 10),
    ] {
        let spec = ModelSpec::new(hidden, act, loss);
        // With momentum, and plain SGD, which the fused plan runs inside the products.
        for momentum in [0.9, 0.0] {
            rows.extend(verify::step_checks(
                gpu.clone(),
                &spec,
                batch,
                steps,
                OptimConfig::sgd(momentum),
                0.0,
            )?);
        }
    }
    // Every other optimizer, weight decay and dropout, through whole steps.
    let spec = ModelSpec::new(&[64, 20], Activation::Relu, Loss::Xent);
    for (kind, wd, dropout) in [
        (OptimizerKind::Nesterov, 1e-3, 0.0),
        (OptimizerKind::Adam, 1e-3, 0.0),
        (OptimizerKind::Adamw, 1e-2, 0.3),
        (OptimizerKind::Sgd, 0.0, 0.5),
    ] {
        let optim = OptimConfig {
            kind,
            weight_decay: wd,
            ..OptimConfig::sgd(0.9)
        };
        rows.extend(verify::step_checks(
            gpu.clone(),
            &spec,
            16,
            6,
            optim,
            dropout,
        )?);
    }
    print!("{}", verify::table(&rows));
    verify::require_all_pass(&rows)?;
    println!("all {} checks passed", rows.len());
    Ok(())
}
