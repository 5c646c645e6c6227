//! A device with its pipelines: the adapter opened, every kernel compiled, and the buffer and
//! readback helpers the backend and the checks share.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::kernels::{self, Kernel, Kernels, LANE_WIDTHS, Lanes, MatmulVariant};
use crate::gpu::matmul::{Form, Mm, blocked_form};
use crate::gpu::tune::Tuner;

/// A device with its pipelines, shared by every model built on it.
pub struct Gpu {
    pub ctx: GpuContext,
    pub kernels: Kernels,
    /// Fold activations (and their derivatives) into the matmul epilogues: two fewer dispatches
    /// per hidden layer. Off (`--unfused`) runs them as their own kernels.
    pub fuse: bool,
    /// Bound as the Input form's uniform arrays by the products that do not read them.
    pub(crate) no_uniform: wgpu::Buffer,
    /// `--kernel auto`'s choices on this device and where it caches them.
    pub(crate) tuner: Tuner,
}

impl Gpu {
    /// Opens the adapter and compiles every kernel. `variant` None is `auto`: each model's
    /// products take the form measured fastest on this adapter (see gpu::tune).
    pub fn new(opts: &GpuOptions, variant: Option<MatmulVariant>) -> Result<Self> {
        crate::gpu::context::block_on(Self::new_async(opts, variant), "Gpu::new")?
    }

    /// `new` without blocking (the web's way in). There `variant` should name a form: `auto`
    /// times its candidates with blocking waits, which the browser cannot do.
    pub async fn new_async(opts: &GpuOptions, variant: Option<MatmulVariant>) -> Result<Self> {
        if let Some(w) = opts.emulate_lanes.filter(|w| !LANE_WIDTHS.contains(w)) {
            return Err(Error::InvalidArg(format!(
                "emulated subgroups of {w} lanes: the subgroup forms exist for {LANE_WIDTHS:?}"
            )));
        }
        let ctx = GpuContext::new_async(opts).await?;
        let variant = variant.unwrap_or(MatmulVariant::Auto);
        let lanes = match opts.emulate_lanes {
            Some(lanes) => Some(Lanes {
                lanes,
                shared: true,
            }),
            None => ctx.subgroup_size.map(|lanes| Lanes {
                lanes,
                shared: false,
            }),
        };
        let kernels = Kernels::with_lanes(&ctx, variant, lanes)?;
        let tuner = Tuner::new(opts, &ctx, &kernels);
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
            tuner,
        })
    }

    /// The form a product runs in: `--kernel tiled` tiles; `blocked` the register-blocked
    /// forms by alignment; `auto` what the tuner measured for this shape, or, for shapes it
    /// did not time, blocked on CPU adapters and tiled on GPUs.
    pub fn matmul_form(&self, kernel: Kernel, mm: &Mm) -> Form {
        let k = &self.kernels;
        let blocked = || blocked_form(k.subgroup_unchecked_ok(), kernel, mm);
        match k.variant {
            MatmulVariant::Tiled => Form::Tiled,
            MatmulVariant::Blocked => blocked(),
            MatmulVariant::Auto => match self.tuned(&mm.key(kernel)) {
                Some(f) if f != Form::Input => f,
                _ if k.cpu_adapter => blocked(),
                _ => Form::Tiled,
            },
        }
    }

    /// The form the tuner chose for a shape key, if it timed it on this device.
    pub fn tuned(&self, key: &str) -> Option<Form> {
        self.tuner.get(key)
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
        crate::gpu::context::block_on(self.read_f32_async(buf, n), "a GPU readback")?
    }

    /// `read_f32` without blocking.
    pub async fn read_f32_async(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back_async(buf, (n.max(1) * 4) as u64).await?;
        Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)[..n].to_vec())
    }

    pub fn read_u32(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        crate::gpu::context::block_on(self.read_u32_async(buf, n), "a GPU readback")?
    }

    /// `read_u32` without blocking.
    pub async fn read_u32_async(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        let bytes = self.ctx.read_back_async(buf, (n.max(1) * 4) as u64).await?;
        Ok(bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)[..n].to_vec())
    }
}
