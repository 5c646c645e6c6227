//! `descent bench`: training throughput at several batch sizes, and a per-dispatch profile.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::args::{
    DataArgs, DeviceArgs, DeviceChoice, ModelArgs, load_data, make_backend, open_gpu,
    resident_bytes,
};
use crate::backend::{Backend, Setup};
use crate::data::Splits;
use crate::error::{Error, Result};
use crate::gpu::GpuBackend;
use crate::model::Init;
use crate::optim::{OptimConfig, OptimizerKind, Schedule, StepHyper};
use crate::train::{self, BatchSize};

/// How many times `bench --profile` runs each dispatch back to back to time it.
const PROFILE_REPS: usize = 64;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Batch sizes to measure, comma separated (`full` allowed).
    #[arg(long, default_value = "1,64,128,full")]
    pub batch_sizes: String,
    /// Time spent measuring each batch size, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// The update rule to time (sgd, nesterov, adam, adamw).
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// GPU only: also time every dispatch of one step with timestamp queries.
    #[arg(long)]
    pub profile: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let spec = args.model.spec()?;
    Schedule::constant(args.lr).check()?;
    let optim = OptimConfig {
        kind: args.optimizer,
        ..OptimConfig::sgd(args.momentum)
    };
    optim.check()?;
    let batches: Vec<BatchSize> = args
        .batch_sizes
        .split(',')
        .map(BatchSize::parse)
        .collect::<Result<_>>()?;
    let Splits { train, test } = load_data(&args.data)?;
    // The input width and class count come from the data (--data), MNIST's otherwise.
    let spec = crate::model::ModelSpec::with_io(
        train.width,
        spec.hidden(),
        train.classes,
        spec.activation,
        spec.loss,
    );
    let n = train.len();
    let (train, test) = (Arc::new(train), Arc::new(test));
    let order = train::epoch_order(n, 0, 1);
    let setup = |batch: usize| Setup {
        spec: spec.clone(),
        params: spec.init_params(Init::Auto, 0),
        train: train.clone(),
        test: test.clone(),
        val: None,
        batch,
        optim,
        dropout: 0.0,
        seed: 0,
    };
    // A constant rate: one row of coefficients per step of the epoch.
    let hyper = |batch: usize| -> Vec<StepHyper> {
        (0..n.div_ceil(batch) as u64)
            .map(|t| optim.step_hyper(t, args.lr))
            .collect()
    };
    if args.profile {
        let gpu = open_gpu(
            &DeviceArgs {
                device: DeviceChoice::Gpu,
                ..args.device.clone()
            },
            resident_bytes(&train, &test),
        )?
        .ok_or_else(|| Error::InvalidArg("--profile needs a GPU adapter".into()))?;
        for b in &batches {
            let batch = b.resolve(n);
            let mut g = GpuBackend::new(gpu.clone(), &setup(batch))?;
            g.begin_epoch(&order, &hyper(batch), 0)?;
            let rows = g.profile_step(PROFILE_REPS)?;
            let total: f64 = rows.iter().map(|r| r.1).sum();
            println!(
                "\nprofile of one step, batch {batch}, {}: {:.1} µs in {} dispatches \
                 (each timed as {PROFILE_REPS} in a row, wall clock)",
                g.device(),
                total / 1e3,
                rows.len()
            );
            println!("| # | kernel | what | µs | GFLOP/s |\n|---|---|---|---|---|");
            for (i, (d, ns)) in rows.iter().enumerate() {
                let flops = d
                    .flops
                    .map(|f| format!("{:.1}", f as f64 / ns.max(1.0)))
                    .unwrap_or_default();
                println!(
                    "| {i} | {} | {} | {:.1} | {flops} |",
                    d.kernel.name(),
                    d.label,
                    ns / 1e3
                );
            }
        }
        return Ok(());
    }
    println!("model {}, {} training samples", spec.describe(), n);
    let mut header = false;
    for b in batches {
        let batch = b.resolve(n);
        let mut backend = make_backend(&args.device, setup(batch))?;
        let hyper = hyper(batch);
        // A round is the first ~4k samples of an epoch (at least one step), timed to the end
        // of its work.
        if !header {
            println!("device: {}", backend.device());
            println!("| batch | samples/s (median) | GFLOP/s | rounds |");
            println!("|---|---|---|---|");
            header = true;
        }
        let steps_per_round = (4096 / batch).clamp(1, n.div_ceil(batch));
        let mut rates = Vec::new();
        let t_all = Instant::now();
        let mut round = 0;
        while round < 2 || t_all.elapsed().as_secs_f64() < args.seconds || rates.len() < 3 {
            backend.begin_epoch(&order, &hyper, 0)?;
            let t0 = Instant::now();
            let mut samples = 0;
            for step in 0..steps_per_round {
                let len = batch.min(n - step * batch);
                backend.step(step, step * batch, len)?;
                samples += len;
            }
            backend.end_epoch()?;
            let dt = t0.elapsed().as_secs_f64();
            // The first round warms caches and pipelines; it is not counted.
            if round > 0 {
                rates.push(samples as f64 / dt);
            }
            round += 1;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "| {} | {:.0} | {:.1} | {} |",
            if batch == n {
                format!("full ({n})")
            } else {
                batch.to_string()
            },
            median,
            median * spec.flops_per_sample() / 1e9,
            rates.len()
        );
    }
    Ok(())
}
