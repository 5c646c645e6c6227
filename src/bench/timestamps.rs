//! Each dispatch of a step plan timed by the adapter's own clock: a compute pass per dispatch
//! with a timestamp written at its start and end, where the adapter has TIMESTAMP_QUERY. The
//! wall-clock profile (`GpuBackend::profile_step`) stays the fallback and is kept beside it.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::plan::Plan;

/// Nanoseconds per run of each dispatch of `plan`, `reps` runs back to back inside one timed
/// pass, median of three rounds after a warm-up; None when the adapter has no timestamps. The
/// dispatches run on whatever the buffers hold, as in `profile_step`.
pub fn dispatch_ns(gpu: &Gpu, plan: &Plan, reps: usize) -> Result<Option<Vec<f64>>> {
    let ctx = &gpu.ctx;
    if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        return Ok(None);
    }
    let n = plan.dispatches.len();
    let reps = reps.max(1);
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("bench timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count: 2 * n as u32,
    });
    let bytes = (2 * n * 8) as u64;
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench timestamps resolved"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let period = ctx.queue.get_timestamp_period() as f64;
    let mut rounds: Vec<Vec<f64>> = Vec::new();
    for round in 0..4 {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bench timestamps"),
            });
        for i in 0..n {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench timestamps"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            plan.encode_repeated(&gpu.kernels, &mut pass, i, reps)?;
        }
        enc.resolve_query_set(&queries, 0..2 * n as u32, &resolved, 0);
        ctx.queue.submit([enc.finish()]);
        let raw = ctx.read_back(&resolved, bytes)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
        if round > 0 {
            rounds.push(
                ticks
                    .chunks_exact(2)
                    .map(|t| t[1].saturating_sub(t[0]) as f64 * period / reps as f64)
                    .collect(),
            );
        }
    }
    Ok(Some(
        (0..n)
            .map(|i| {
                let mut t: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect(),
    ))
}
