//! A device with its pipelines: the adapter opened, every kernel compiled, and the buffer and
//! readback helpers the backend and the checks share.

use wgpu::util::DeviceExt;

use crate::error::Result;
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::kernels::{self, Kernels, MatmulVariant};

/// A device with its pipelines, shared by every model built on it.
pub struct Gpu {
    pub ctx: GpuContext,
    pub kernels: Kernels,
    /// Fold activations (and their derivatives) into the matmul epilogues: two fewer dispatches
    /// per hidden layer. Off (`--unfused`) runs them as their own kernels.
    pub fuse: bool,
    /// Bound as the Input form's uniform arrays by the products that do not read them.
    pub(crate) no_uniform: wgpu::Buffer,
}

impl Gpu {
    /// Opens the adapter and compiles every kernel. `variant` None picks by adapter type:
    /// register-blocked matmul on CPU adapters (lavapipe), workgroup tiles on real GPUs.
    pub fn new(opts: &GpuOptions, variant: Option<MatmulVariant>) -> Result<Self> {
        let ctx = GpuContext::new(opts)?;
        let variant = variant.unwrap_or(if ctx.is_cpu_adapter() {
            MatmulVariant::Blocked
        } else {
            MatmulVariant::Tiled
        });
        let kernels = Kernels::new(&ctx, variant)?;
        let no_uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform array (unused)"),
            size: kernels::UNIFORM_ARRAY,
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            ctx,
            kernels,
            fuse: !opts.unfused,
            no_uniform,
        })
    }

    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.storage_with(label, bytes.max(4), wgpu::BufferUsages::empty())
    }

    /// A storage buffer that can also be bound as one of the Input form's 64 KiB uniform arrays.
    pub(crate) fn storage_uniform(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.storage_with(
            label,
            bytes.max(kernels::UNIFORM_ARRAY),
            wgpu::BufferUsages::UNIFORM,
        )
    }

    fn storage_with(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | extra,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `contents` (readable back, for the parity checks).
    pub fn uniform_init(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC,
            })
    }

    pub fn storage_init(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        let mut padded;
        let contents = if contents.is_empty() || !contents.len().is_multiple_of(4) {
            padded = contents.to_vec();
            padded.resize(contents.len().max(4).next_multiple_of(4), 0);
            &padded[..]
        } else {
            contents
        };
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    pub fn read_f32(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back(buf, (n.max(1) * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)[..n].to_vec())
    }

    pub fn read_u32(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        let bytes = self.ctx.read_back(buf, (n.max(1) * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)[..n].to_vec())
    }
}
