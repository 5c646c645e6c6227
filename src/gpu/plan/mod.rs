//! Plans: a step (or an evaluation) as plain data — an ordered list of dispatches — plus the
//! bind groups and uniforms they use, all built once and replayed.

pub mod build;

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Access, Form, Kernel, Kernels};

/// Bytes of one dispatch's uniform block (every kernel's parameters fit in 16 words).
pub const UNIFORM_BYTES: u64 = 64;

/// One dispatch: plain data, printable and countable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// What it computes, in the model's field names, e.g. `layers.0 matmul_forward`.
    pub label: String,
    pub kernel: Kernel,
    pub workgroups: [u32; 3],
    /// Floating-point operations, where counting them means something (matrix products).
    pub flops: Option<u64>,
    /// Which implementation of the kernel runs.
    pub form: Form,
}

/// A recorded sequence of dispatches with their bind groups.
pub struct Plan {
    pub name: String,
    pub dispatches: Vec<Dispatch>,
    bind_groups: Vec<wgpu::BindGroup>,
    _uniforms: Option<wgpu::Buffer>,
}

impl Plan {
    /// Records every dispatch, in order, into `pass`.
    pub fn encode(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) -> Result<()> {
        for (d, bg) in self.dispatches.iter().zip(&self.bind_groups) {
            pass.set_pipeline(&kernels.get(d.kernel, d.form)?.pipeline);
            pass.set_bind_group(0, bg, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        Ok(())
    }
}

impl Plan {
    /// Records dispatch `i` alone, `reps` times over, into `pass` (for timing one kernel in a
    /// stream of its own dispatches).
    pub fn encode_repeated(
        &self,
        kernels: &Kernels,
        pass: &mut wgpu::ComputePass<'_>,
        i: usize,
        reps: usize,
    ) -> Result<()> {
        let (Some(d), Some(bg)) = (self.dispatches.get(i), self.bind_groups.get(i)) else {
            return Err(Error::Gpu(format!("{}: no dispatch {i}", self.name)));
        };
        pass.set_pipeline(&kernels.get(d.kernel, d.form)?.pipeline);
        pass.set_bind_group(0, bg, &[]);
        let [x, y, z] = d.workgroups;
        for _ in 0..reps {
            pass.dispatch_workgroups(x, y, z);
        }
        Ok(())
    }
}

impl Plan {
    /// Wall-clock seconds per dispatch of dispatch `i` run `reps` times in a row in one submit,
    /// waited for (what a dispatch costs beyond its kernel included: on llvmpipe, hand-offs).
    pub fn time_repeated(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        i: usize,
        reps: usize,
    ) -> Result<f64> {
        let label = self.dispatches.get(i).map_or("", |d| d.label.as_str());
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("timing"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            self.encode_repeated(kernels, &mut pass, i, reps)?;
        }
        let t0 = web_time::Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        Ok(t0.elapsed().as_secs_f64() / reps.max(1) as f64)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan {} ({} dispatches)",
            self.name,
            self.dispatches.len()
        )?;
        for (i, d) in self.dispatches.iter().enumerate() {
            let [x, y, z] = d.workgroups;
            writeln!(
                f,
                "  {i:>3}  {:<24} {:<44} workgroups {x}x{y}x{z}",
                d.kernel.name(),
                d.label
            )?;
        }
        Ok(())
    }
}

/// Where a dispatch's uniform block comes from.
pub enum UniformSrc {
    /// Fixed words, stored in the plan's own uniform buffer.
    Words([u32; 16]),
    /// A buffer the owner rewrites (the learning rate lives in one).
    Buffer(wgpu::Buffer),
}

pub struct PlanBuilder<'a> {
    ctx: &'a GpuContext,
    kernels: &'a Kernels,
    name: String,
    dispatches: Vec<Dispatch>,
    bindings: Vec<(Vec<wgpu::Buffer>, UniformSrc)>,
}

impl<'a> PlanBuilder<'a> {
    pub fn new(ctx: &'a GpuContext, kernels: &'a Kernels, name: impl Into<String>) -> Self {
        PlanBuilder {
            ctx,
            kernels,
            name: name.into(),
            dispatches: Vec::new(),
            bindings: Vec::new(),
        }
    }

    /// Adds a dispatch; `buffers` follow the kernel's storage bindings in order.
    pub fn push(
        &mut self,
        label: impl Into<String>,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        uniform: UniformSrc,
        workgroups: [u32; 3],
    ) {
        self.dispatches.push(Dispatch {
            label: label.into(),
            kernel,
            workgroups,
            flops: None,
            form: Form::Scalar,
        });
        self.bindings
            .push((buffers.iter().map(|&b| b.clone()).collect(), uniform));
    }

    /// Records the FLOP count of the dispatch just pushed.
    pub fn set_flops(&mut self, flops: u64) {
        if let Some(d) = self.dispatches.last_mut() {
            d.flops = Some(flops);
        }
    }

    /// Switches the dispatch just pushed to another implementation of its kernel.
    pub fn set_form(&mut self, form: Form) {
        if let Some(d) = self.dispatches.last_mut() {
            d.form = form;
        }
    }

    pub fn build(self) -> Result<Plan> {
        let align = (self.ctx.limits.min_uniform_buffer_offset_alignment as u64).max(UNIFORM_BYTES);
        let words: Vec<u8> = self
            .bindings
            .iter()
            .flat_map(|(_, u)| {
                let mut block = vec![0u8; align as usize];
                if let UniformSrc::Words(w) = u {
                    block[..UNIFORM_BYTES as usize].copy_from_slice(bytemuck::cast_slice(w));
                }
                block
            })
            .collect();
        let uniforms = (!words.is_empty()).then(|| {
            wgpu::util::DeviceExt::create_buffer_init(
                &self.ctx.device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some(&format!("{} uniforms", self.name)),
                    contents: &words,
                    usage: wgpu::BufferUsages::UNIFORM,
                },
            )
        });
        let mut bind_groups = Vec::with_capacity(self.dispatches.len());
        for (i, (d, (buffers, uniform))) in self.dispatches.iter().zip(&self.bindings).enumerate() {
            let layout = &self.kernels.get(d.kernel, d.form)?.layout;
            let spec = d.kernel.bindings();
            let storage: Vec<&(u32, Access)> =
                spec.iter().filter(|(_, a)| *a != Access::Uniform).collect();
            if storage.len() != buffers.len() {
                return Err(Error::Gpu(format!(
                    "{}: {} takes {} buffers, got {}",
                    d.label,
                    d.kernel.name(),
                    storage.len(),
                    buffers.len()
                )));
            }
            let mut entries: Vec<wgpu::BindGroupEntry> = storage
                .iter()
                .zip(buffers)
                .map(|(&&(binding, _), buf)| wgpu::BindGroupEntry {
                    binding,
                    resource: buf.as_entire_binding(),
                })
                .collect();
            let ubinding = spec
                .iter()
                .find(|(_, a)| *a == Access::Uniform)
                .map(|(b, _)| *b)
                .ok_or_else(|| Error::Gpu(format!("{} has no uniform", d.kernel.name())))?;
            let resource = match (uniform, &uniforms) {
                (UniformSrc::Buffer(b), _) => b.as_entire_binding(),
                (UniformSrc::Words(_), Some(u)) => {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: u,
                        offset: i as u64 * align,
                        size: wgpu::BufferSize::new(UNIFORM_BYTES),
                    })
                }
                (UniformSrc::Words(_), None) => {
                    return Err(Error::Gpu("uniform buffer missing".into()));
                }
            };
            entries.push(wgpu::BindGroupEntry {
                binding: ubinding,
                resource,
            });
            let label = format!("{}: {}", d.kernel.name(), d.label);
            let bg = self.ctx.scoped(&label, || {
                self.ctx
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&label),
                        layout,
                        entries: &entries,
                    })
            })?;
            bind_groups.push(bg);
        }
        Ok(Plan {
            name: self.name,
            dispatches: self.dispatches,
            bind_groups,
            _uniforms: uniforms,
        })
    }
}

/// Workgroups for `n` invocations of a 1D kernel `width` wide, folded into 2D past the
/// 65535-per-dimension limit (kernels index as x + y·(groups_x·width)).
pub fn groups_1d(n: usize, width: u32) -> [u32; 3] {
    let g = (n as u64).div_ceil(width as u64).max(1);
    if g <= 65_535 {
        [g as u32, 1, 1]
    } else {
        [65_535, g.div_ceil(65_535) as u32, 1]
    }
}

/// Packs a uniform block from up to 16 words.
pub fn words(vals: &[u32]) -> UniformSrc {
    let mut w = [0u32; 16];
    w[..vals.len()].copy_from_slice(vals);
    UniformSrc::Words(w)
}
