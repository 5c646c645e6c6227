//! Whole-step and whole-epoch throughput of one device at one configuration: built fresh, timed
//! to its first finished step, warmed up, then the median of several rounds.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::backend::{Backend, Setup};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::gpu::{Counters, Gpu, GpuBackend};
use crate::optim::StepHyper;
use crate::train;

/// Where a measurement runs.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Gpu(Arc<Gpu>),
}

/// A backend of either kind, kept concrete so the GPU's dispatch and submit counters stay in
/// reach.
pub enum Built {
    Cpu(Box<CpuBackend>),
    Gpu(Box<GpuBackend>),
}

impl Built {
    pub fn new(device: &Device, setup: Setup) -> Result<Self> {
        Ok(match device {
            Device::Cpu => Built::Cpu(Box::new(CpuBackend::new(setup))),
            Device::Gpu(g) => Built::Gpu(Box::new(GpuBackend::new(g.clone(), &setup)?)),
        })
    }

    pub fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Built::Cpu(b) => &mut **b,
            Built::Gpu(b) => &mut **b,
        }
    }

    fn counters(&self) -> Option<Counters> {
        match self {
            Built::Cpu(_) => None,
            Built::Gpu(b) => Some(b.counters),
        }
    }
}

/// What one device reached at one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct StepFigures {
    /// Samples per step.
    pub batch: usize,
    /// Median over rounds of steps timed to the end of their work.
    pub samples_per_s_step: f64,
    /// A whole epoch (begin to end, every step) timed; None when it would take too long.
    pub samples_per_s_epoch: Option<f64>,
    pub ms_per_step: f64,
    /// Model FLOPs per second at the step rate (forward and backward products).
    pub gflops: f64,
    /// gflops as a share of the device's square-matmul peak (filled in by the report).
    pub peak_share: Option<f64>,
    /// GPU: dispatches and submits per step, from the backend's own counters.
    pub dispatches_per_step: Option<f64>,
    pub submits_per_step: Option<f64>,
    /// GPU: the dispatches the step plan holds (what dispatches_per_step should equal).
    pub plan_dispatches: Option<usize>,
    /// GPU: host time recording one step into the command buffer (steps that submitted left
    /// out).
    pub encode_us_per_step: Option<f64>,
    /// Building the backend (buffers, upload, plans) to the end of its first step.
    pub first_step_ms: f64,
    /// Timed rounds behind the median.
    pub rounds: usize,
}

/// How long to measure.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Effort {
    /// Seconds to keep measuring one configuration (at least `rounds` rounds either way).
    pub seconds: f64,
    pub rounds: usize,
    /// Samples a round covers (one step if the batch is bigger), fewer when a round would
    /// take more than its share of `seconds`.
    pub round_samples: usize,
    /// An epoch is timed whole only when the step rate says it takes at most this.
    pub epoch_seconds: f64,
}

/// Measures `device` training with `setup` (its batch already resolved) at a constant rate.
pub fn measure(device: &Device, setup: Setup, lr: f32, effort: &Effort) -> Result<StepFigures> {
    let n = setup.train.len();
    let batch = setup.batch;
    let flops_per_sample = setup.spec.flops_per_sample();
    let optim = setup.optim;
    let steps_per_epoch = n.div_ceil(batch).max(1);
    let order = train::epoch_order(n, 0, 1);
    let hyper: Vec<StepHyper> = (0..steps_per_epoch as u64)
        .map(|t| optim.step_hyper(t, lr))
        .collect();
    let len_of = |step: usize| batch.min(n - step * batch);

    let t0 = Instant::now();
    let mut built = Built::new(device, setup)?;
    {
        let b = built.backend();
        b.begin_epoch(&order, &hyper, 0)?;
        b.step(0, 0, len_of(0))?;
        b.end_epoch()?;
    }
    let first_step_ms = t0.elapsed().as_secs_f64() * 1e3;
    let plan_dispatches = match &built {
        Built::Gpu(g) => g.plans().first().map(|p| p.dispatches.len()),
        Built::Cpu(_) => None,
    };

    // Rounds of whole steps from the start of an epoch; the first warms up and is not counted.
    let mut steps = (effort.round_samples / batch).clamp(1, steps_per_epoch);
    let mut rates = Vec::new();
    let (mut encode_s, mut encode_steps) = (0.0, 0usize);
    let (mut dispatches, mut submits, mut counted_steps) = (0usize, 0usize, 0usize);
    let t_all = Instant::now();
    let mut round = 0;
    while round <= effort.rounds || t_all.elapsed().as_secs_f64() < effort.seconds {
        let before = built.counters();
        let b = built.backend();
        b.begin_epoch(&order, &hyper, 0)?;
        let t = Instant::now();
        let mut samples = 0;
        for step in 0..steps {
            let c0 = built_counters_submits(&built);
            let ts = Instant::now();
            built.backend().step(step, step * batch, len_of(step))?;
            let dt = ts.elapsed().as_secs_f64();
            if c0.is_some() && c0 == built_counters_submits(&built) {
                encode_s += dt;
                encode_steps += 1;
            }
            samples += len_of(step);
        }
        built.backend().end_epoch()?;
        let dt = t.elapsed().as_secs_f64();
        // A slow device gets shorter rounds, so --rounds of them fit in about --seconds.
        if round == 0 && effort.seconds > 0.0 {
            let fit = effort.seconds / (effort.rounds + 1) as f64;
            if dt > fit {
                steps = ((steps as f64 * fit / dt) as usize).max(1);
            }
        }
        if round > 0 {
            rates.push(samples as f64 / dt);
            if let (Some(a), Some(z)) = (before, built.counters()) {
                dispatches += z.dispatches - a.dispatches;
                submits += z.submits - a.submits;
                counted_steps += steps;
            }
        }
        round += 1;
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];

    // A whole epoch, when it is short enough: what training pays, tail step included.
    let epoch_estimate = n as f64 / rate;
    let samples_per_s_epoch = if epoch_estimate <= effort.epoch_seconds {
        let mut e = Vec::new();
        let t_all = Instant::now();
        while e.is_empty() || (e.len() < 3 && t_all.elapsed().as_secs_f64() < effort.seconds) {
            let b = built.backend();
            let t = Instant::now();
            b.begin_epoch(&order, &hyper, 0)?;
            for step in 0..steps_per_epoch {
                b.step(step, step * batch, len_of(step))?;
            }
            b.end_epoch()?;
            e.push(n as f64 / t.elapsed().as_secs_f64());
        }
        e.sort_by(f64::total_cmp);
        Some(e[e.len() / 2])
    } else {
        None
    };
    let per_step = |x: usize| (counted_steps > 0).then(|| x as f64 / counted_steps as f64);
    let is_gpu = matches!(device, Device::Gpu(_));
    Ok(StepFigures {
        batch,
        samples_per_s_step: rate,
        samples_per_s_epoch,
        ms_per_step: 1e3 * batch.min(n) as f64 / rate,
        gflops: rate * flops_per_sample / 1e9,
        peak_share: None,
        dispatches_per_step: if is_gpu { per_step(dispatches) } else { None },
        submits_per_step: if is_gpu { per_step(submits) } else { None },
        plan_dispatches,
        encode_us_per_step: (encode_steps > 0).then(|| 1e6 * encode_s / encode_steps as f64),
        first_step_ms,
        rounds: rates.len(),
    })
}

fn built_counters_submits(b: &Built) -> Option<usize> {
    b.counters().map(|c| c.submits)
}
