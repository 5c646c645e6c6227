//! Parity of every GPU kernel with its CPU twin, and of whole training steps: the engine of
//! `descent verify` and of the GPU tests. kernels.rs checks one entry point at a time, steps.rs
//! whole training steps; both compare through [`compare`].

mod kernels;
mod steps;

pub use kernels::*;
pub use steps::*;

use crate::data::CLASSES;
use crate::error::{Error, Result};
use crate::gpu::kernels::Access;
use crate::gpu::kernels::Form;
use crate::gpu::plan::{PlanBuilder, words};
use crate::gpu::{Gpu, Kernel};
use crate::rng;

/// One line of the verification table.
#[derive(Clone, Debug)]
pub struct CheckRow {
    pub kernel: String,
    pub shape: String,
    pub max_abs: f32,
    pub max_rel: f32,
    /// The first element outside `atol + rtol·|ref|`, if any.
    pub first_bad: Option<usize>,
}

impl CheckRow {
    pub fn pass(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Compares `got` with the CPU reference `want` under |got − want| ≤ atol + rtol·|want|.
pub fn compare(
    kernel: &str,
    shape: String,
    got: &[f32],
    want: &[f32],
    atol: f32,
    rtol: f32,
) -> CheckRow {
    let mut row = CheckRow {
        kernel: kernel.to_owned(),
        shape,
        max_abs: 0.0,
        max_rel: 0.0,
        first_bad: (got.len() != want.len()).then_some(got.len().min(want.len())),
    };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        let bad = d.is_nan() || d > atol + rtol * w.abs();
        if bad && row.first_bad.is_none() {
            row.first_bad = Some(i);
        }
        if d > row.max_abs || d.is_nan() {
            row.max_abs = d;
        }
        let rel = d / w.abs().max(1e-6);
        if rel > row.max_rel {
            row.max_rel = rel;
        }
    }
    row
}

pub(crate) fn rand_vec(n: usize, seed: u32, stream: u32, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * rng::uniform(seed, stream, i as u32))
        .collect()
}

pub(crate) fn rand_labels(n: usize, seed: u32) -> Vec<u32> {
    (0..n)
        .map(|i| rng::hash3(seed, 77, i as u32) % CLASSES as u32)
        .collect()
}

/// Waits for a parity check natively (the checks are async so that a browser can await them).
pub fn wait<T>(check: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::gpu::context::block_on(check, "a parity check")?
}

/// Runs one dispatch of `kernel` over buffers initialised from `inputs` (in binding order) and
/// returns every buffer's contents afterwards (the read-only ones as given). Uniform arrays past
/// the last input (a matmul's step row, which only SGD_STEP reads) are bound to the unused one.
pub async fn run_one(
    gpu: &Gpu,
    kernel: Kernel,
    form: Form,
    inputs: &[&[u8]],
    uniform: &[u32],
    workgroups: [u32; 3],
) -> Result<Vec<Vec<u8>>> {
    // In binding order, as PlanBuilder binds them: storage buffers and uniform arrays.
    let access: Vec<Access> = kernel
        .bindings()
        .iter()
        .map(|&(_, a)| a)
        .filter(|&a| a != Access::Uniform)
        .collect();
    let bufs: Vec<wgpu::Buffer> = inputs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let label = format!("{}[{i}]", kernel.name());
            if access.get(i) == Some(&Access::UniformBuffer) {
                gpu.uniform_init(&label, b)
            } else {
                gpu.storage_init(&label, b)
            }
        })
        .collect();
    let mut refs: Vec<&wgpu::Buffer> = bufs.iter().collect();
    while access.get(refs.len()) == Some(&Access::UniformBuffer) {
        refs.push(&gpu.no_uniform);
    }
    let mut pb = PlanBuilder::new(&gpu.ctx, &gpu.kernels, kernel.name());
    pb.push(kernel.name(), kernel, &refs, words(uniform), workgroups);
    pb.set_form(form);
    let plan = pb.build()?;
    let mut enc = gpu
        .ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("verify"),
        });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.name()),
            timestamp_writes: None,
        });
        plan.encode(&gpu.kernels, &mut pass)?;
    }
    gpu.ctx.queue.submit([enc.finish()]);
    // Only what the kernel may write is read back (a readback is a submit and a wait).
    let mut out = Vec::with_capacity(bufs.len());
    for (n, (b, i)) in bufs.iter().zip(inputs).enumerate() {
        if access.get(n) != Some(&Access::ReadWrite) {
            out.push(i.to_vec());
            continue;
        }
        let size = i.len().max(4).next_multiple_of(4) as u64;
        let bytes = gpu.ctx.read_back_async(b, size).await?;
        out.push(bytes[..i.len()].to_vec());
    }
    Ok(out)
}

pub(crate) fn f32s(b: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(b)
}

pub(crate) fn bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Formats the table `descent verify` prints.
pub fn table(rows: &[CheckRow]) -> String {
    let mut s = format!(
        "{:<66} {:<30} {:>11} {:>11}  {}\n",
        "kernel", "shape", "max abs err", "max rel err", "result"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<66} {:<30} {:>11.3e} {:>11.3e}  {}\n",
            r.kernel,
            r.shape,
            r.max_abs,
            r.max_rel,
            match r.first_bad {
                None => "pass".to_owned(),
                Some(i) => format!("FAIL (first bad index {i})"),
            }
        ));
    }
    s
}

/// Fails when any row failed, naming them.
pub fn require_all_pass(rows: &[CheckRow]) -> Result<()> {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.pass())
        .map(|r| format!("{} {}", r.kernel, r.shape))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Gpu(format!(
            "{} check(s) failed on this adapter: {}",
            bad.len(),
            bad.join("; ")
        )))
    }
}
