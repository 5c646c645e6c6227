//! Adapter selection, device creation with the limits descent needs, and error capture.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Storage buffers one kernel binds at most (batch_gather: x, y, images, labels, order, state).
pub const STORAGE_BUFFERS_NEEDED: u32 = 7;

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Subgroup operations are on and every subgroup is exactly 8 invocations wide (llvmpipe).
    pub subgroup8: bool,
    /// Subgroup operations are on and every subgroup has this one width, one the subgroup
    /// matmul forms are generated for (8, 16, 32 or 64).
    pub subgroup_size: Option<u32>,
    /// Subgroup operations are on and subgroups are 8 to 64 wide.
    pub subgroups: bool,
    /// Validation errors the device reported outside an error scope; checked at every sync point.
    errors: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Substring of the adapter's name to pick (case-insensitive); falls back to
    /// $WGPU_ADAPTER_NAME.
    pub adapter: Option<String>,
    /// Turn on the backend's validation layers too (the tests do).
    pub validation: bool,
    /// Bytes the largest storage binding must hold (the packed training images).
    pub max_binding_bytes: u64,
    /// Run activations as their own dispatches instead of in the matmul epilogues.
    pub unfused: bool,
    /// Where `--kernel auto` keeps its choices: None is $DESCENT_CACHE_DIR, else
    /// $XDG_CACHE_HOME/descent, else ~/.cache/descent.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Measure every time, reading and writing no cache (also $DESCENT_NO_TUNE_CACHE).
    pub no_tune_cache: bool,
    /// Build the subgroup forms for this many lanes (8, 16, 32 or 64) sharing operands through
    /// workgroup memory instead of shuffles: runs the lane arithmetic of another subgroup
    /// width on this adapter (how the tests check the widths lavapipe lacks).
    pub emulate_lanes: Option<u32>,
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

pub fn describe(info: &wgpu::AdapterInfo) -> String {
    // A browser tells wgpu neither the adapter's name nor its driver.
    let name = match (info.name.is_empty(), info.backend) {
        (false, _) => info.name.as_str(),
        (true, wgpu::Backend::BrowserWebGpu) => "WebGPU adapter",
        (true, _) => "unnamed adapter",
    };
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let driver = if driver.is_empty() {
        String::new()
    } else {
        format!(", driver {driver}")
    };
    format!(
        "{name} ({:?}, {:?}{driver})",
        info.backend, info.device_type
    )
}

/// Waits for a wgpu future natively. On the web a wait would freeze the page (the browser runs
/// the callbacks only between tasks), so there a future that is not ready at once is an error
/// naming the async method to use instead.
#[cfg(feature = "native")]
pub(crate) fn block_on<F: std::future::Future>(f: F, _what: &str) -> Result<F::Output> {
    Ok(pollster::block_on(f))
}

#[cfg(not(feature = "native"))]
pub(crate) fn block_on<F: std::future::Future>(f: F, what: &str) -> Result<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => Err(Error::Gpu(format!(
            "{what} would block the browser: use the async form"
        ))),
    }
}

impl GpuContext {
    /// The best adapter matching the options ($WGPU_BACKEND picks backends), with a device that
    /// has the limits descent needs (natively: `new_async` waited on).
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        block_on(Self::new_async(opts), "GpuContext::new")?
    }

    /// `new` without blocking: on the web, the browser's adapter (navigator.gpu) and device.
    pub async fn new_async(opts: &GpuOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if opts.validation {
            desc.flags |= wgpu::InstanceFlags::VALIDATION | wgpu::InstanceFlags::DEBUG;
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let wanted = opts
            .adapter
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.to_lowercase());
        let names: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let mut candidates: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                // The no-op backend computes nothing; it is never a real adapter.
                let usable = info.backend != wgpu::Backend::Noop;
                let named = wanted
                    .as_ref()
                    .is_none_or(|w| info.name.to_lowercase().contains(w.as_str()));
                usable && named
            })
            .collect();
        // Best device type first; among equals, Vulkan before GL (GL's compute is the weaker path).
        candidates.sort_by_key(|a| {
            let info = a.get_info();
            (
                rank(info.device_type),
                info.backend != wgpu::Backend::Vulkan,
            )
        });
        let Some(adapter) = candidates.into_iter().next() else {
            let detail = match (&wanted, names.is_empty()) {
                (Some(w), false) => {
                    format!(" matching `{w}` (adapters present: {})", names.join("; "))
                }
                (Some(w), true) => format!(" matching `{w}`"),
                _ => String::new(),
            };
            return Err(Error::NoAdapter { detail });
        };
        let info = adapter.get_info();
        let have = adapter.limits();
        let name = describe(&info);
        let mut limits = wgpu::Limits::downlevel_defaults();
        let need_binding = opts
            .max_binding_bytes
            .max(limits.max_storage_buffer_binding_size);
        if have.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS_NEEDED {
            return Err(Error::AdapterLimits {
                adapter: name,
                msg: format!(
                    "{} storage buffers per shader stage, {STORAGE_BUFFERS_NEEDED} needed",
                    have.max_storage_buffers_per_shader_stage
                ),
            });
        }
        if have.max_storage_buffer_binding_size < need_binding
            || have.max_buffer_size < need_binding
        {
            return Err(Error::AdapterLimits {
                adapter: name,
                msg: format!(
                    "storage bindings of at most {} bytes (buffers {}), {need_binding} needed for the resident data set",
                    have.max_storage_buffer_binding_size, have.max_buffer_size
                ),
            });
        }
        limits.max_storage_buffers_per_shader_stage = STORAGE_BUFFERS_NEEDED
            .max(8)
            .min(have.max_storage_buffers_per_shader_stage);
        // Ask for all the adapter has: bigger models then fit without asking the user.
        limits.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
        // DESCENT_MAX_STORAGE_BINDING (bytes) asks for less: how tests run data sets bigger
        // than one binding without hundreds of megabytes, and how one tries a smaller GPU.
        if let Some(cap) = std::env::var("DESCENT_MAX_STORAGE_BINDING")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            limits.max_storage_buffer_binding_size =
                cap.max(4096).min(limits.max_storage_buffer_binding_size);
        }
        limits.max_buffer_size = have.max_buffer_size;
        limits.max_uniform_buffer_binding_size = have.max_uniform_buffer_binding_size;
        limits.max_compute_workgroup_size_x = 256;
        limits.max_compute_invocations_per_workgroup = 256;
        limits.max_compute_workgroups_per_dimension =
            have.max_compute_workgroups_per_dimension.min(65_535);
        let features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
        let subgroups = features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= 8
            && info.subgroup_max_size <= 64;
        let subgroup8 = subgroups && info.subgroup_max_size == 8;
        // A workgroup of S lanes is one subgroup only where every subgroup is exactly S wide.
        let subgroup_size = (subgroups
            && info.subgroup_min_size == info.subgroup_max_size
            && crate::gpu::kernels::LANE_WIDTHS.contains(&info.subgroup_max_size))
        .then_some(info.subgroup_max_size);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("descent"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::AdapterLimits {
                adapter: name.clone(),
                msg: e.to_string(),
            })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            features,
            subgroup8,
            subgroup_size,
            subgroups,
            errors,
        })
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Fails with the first error the device reported since the last check.
    pub fn check_errors(&self) -> Result<()> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| Error::Gpu("error log poisoned".into()))?;
        if v.is_empty() {
            Ok(())
        } else {
            let all = v.join("\n");
            v.clear();
            Err(Error::Gpu(all))
        }
    }

    /// Runs `f` inside a validation error scope and turns a captured error into `Error::Gpu`.
    #[cfg(feature = "native")]
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        match block_on(scope.pop(), what)? {
            None => Ok(out),
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
        }
    }

    /// On the web a scope's verdict arrives only after the browser's next task, and waiting
    /// for it would freeze the page: errors reach the uncaptured-error log instead, which
    /// check_errors reads at every readback.
    #[cfg(not(feature = "native"))]
    pub fn scoped<T>(&self, _what: &str, f: impl FnOnce() -> T) -> Result<T> {
        Ok(f())
    }

    /// Blocks until all submitted work is done (on the web it returns at once: the browser
    /// polls the device itself, and readbacks await their mapping).
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        self.check_errors()
    }

    /// Copies `size` bytes of `src` back to the host (one submit and wait).
    pub fn read_back(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        block_on(self.read_back_async(src, size), "a GPU readback")?
    }

    /// `read_back` without blocking: the copy is submitted and the mapping awaited (natively
    /// the device is polled until it is done; the browser polls by itself).
    pub async fn read_back_async(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(feature = "native")]
        self.wait()?;
        rx.await
            .map_err(|_| Error::Gpu("readback never completed".into()))?
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?;
        self.check_errors()?;
        let bytes = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}
