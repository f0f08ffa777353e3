//! The wgpu device: adapter selection (respecting `WGPU_ADAPTER_NAME` and `WGPU_BACKEND`),
//! a device with the adapter's own limits, and wgpu's error reporting turned into typed
//! errors instead of the default panicking handler.

use std::sync::{Arc, Mutex};

use wgpu::{Adapter, AdapterInfo, Device, DeviceType, Queue};

use crate::error::{Error, Result};

/// Which adapters may be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Hardware GPUs only (discrete, integrated, virtual).
    HardwareOnly,
    /// Any adapter, software rasterisers (lavapipe, llvmpipe, WARP) included.
    AllowSoftware,
}

/// A device and queue with the errors wgpu reports outside error scopes collected.
pub struct GpuContext {
    /// The logical device.
    pub device: Device,
    /// Its queue.
    pub queue: Queue,
    /// What the adapter is.
    pub info: AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// The matmul autotuner's mode and choices (`tune.rs`).
    pub(super) tuner: super::tune::Tuner,
}

fn rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

/// Lists every adapter wgpu can reach with the backends `WGPU_BACKEND` allows.
pub fn enumerate_adapters() -> Vec<Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Compute needs Vulkan, Metal or DX12; GL only adds noise (and EGL probing messages)
    // unless the user asks for it with WGPU_BACKEND.
    if wgpu::Backends::from_env().is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Picks an adapter: `WGPU_ADAPTER_NAME` (a case-insensitive substring of the name) when
/// set, then the best device type (discrete first, software last).
pub fn choose_adapter(policy: AdapterPolicy) -> Result<Adapter> {
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|s| s.to_lowercase());
    let mut adapters: Vec<Adapter> = enumerate_adapters()
        .into_iter()
        .filter(|a| {
            let info = a.get_info();
            let name_ok = wanted
                .as_ref()
                .is_none_or(|w| info.name.to_lowercase().contains(w));
            let type_ok =
                policy == AdapterPolicy::AllowSoftware || info.device_type != DeviceType::Cpu;
            name_ok && type_ok
        })
        .collect();
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters.into_iter().next().ok_or_else(|| {
        let mut why = match policy {
            AdapterPolicy::HardwareOnly => "no hardware GPU adapter found".to_string(),
            AdapterPolicy::AllowSoftware => "no wgpu adapter found (not even a software one: \
                install mesa-vulkan-drivers for lavapipe)"
                .to_string(),
        };
        if let Some(w) = wanted {
            why.push_str(&format!(" matching WGPU_ADAPTER_NAME='{w}'"));
        }
        Error::NoAdapter(why)
    })
}

impl GpuContext {
    /// Opens a device on the chosen adapter with the adapter's limits.
    pub fn new(policy: AdapterPolicy) -> Result<Self> {
        Self::with_limits(policy, |_| {})
    }

    /// Opens a device with the adapter's limits as changed by `adjust`: lowering them (a
    /// smaller largest storage binding, fewer workgroups per dimension) makes wgpu enforce
    /// the lower values, so the paths that split large tensors and dispatches can be
    /// tested on small shapes. Raising them past the adapter's is an error from wgpu.
    pub fn with_limits(
        policy: AdapterPolicy,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Self> {
        Self::open(policy, adjust, wgpu::Features::empty())
    }

    /// Opens a device without the optional `features` even where the adapter has them
    /// (say `SHADER_F16`), so that what kiln does on adapters lacking them can be tested.
    pub fn withholding(policy: AdapterPolicy, features: wgpu::Features) -> Result<Self> {
        Self::open(policy, |_| {}, features)
    }

    fn open(
        policy: AdapterPolicy,
        adjust: impl FnOnce(&mut wgpu::Limits),
        withheld: wgpu::Features,
    ) -> Result<Self> {
        let adapter = choose_adapter(policy)?;
        let info = adapter.get_info();
        let mut limits = adapter.limits();
        adjust(&mut limits);
        // Optional features, each requested only where the adapter has it: timestamps for
        // kernel timings, SHADER_F16 for mixed precision (f16 storage); see `has_f16`.
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let features = adapter.features() & (wanted - withheld);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::gpu(format!("opening a device on {}", info.name), e))?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_sink.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            uncaptured,
            lost,
            tuner: super::tune::Tuner::new(),
        })
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    /// Whether the device was opened with `wgpu::Features::SHADER_F16` (requested whenever
    /// the adapter has it), i.e. whether modules with f16 bindings
    /// ([`module_source`](super::shaders::module_source)) can be built on it.
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Whether the adapter is a software rasteriser.
    pub fn is_software(&self) -> bool {
        self.info.device_type == DeviceType::Cpu
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch,
    /// a lost device, or an uncaptured error into a typed error naming `context`.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check(context)?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::gpu(context, e));
        }
        self.check(context)?;
        Ok(value)
    }

    /// Fails if the device was lost or reported an error outside any scope.
    pub fn check(&self, context: &str) -> Result<()> {
        if let Some(reason) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::gpu(context, format!("device lost ({reason})")));
        }
        if let Ok(mut errs) = self.uncaptured.lock() {
            if !errs.is_empty() {
                let all = errs.join("; ");
                errs.clear();
                return Err(Error::gpu(context, all));
            }
        }
        Ok(())
    }

    /// Whether the device was lost or an error outside any scope waits for
    /// [`check`](Self::check) to report it (looked at, not taken).
    pub fn has_pending_error(&self) -> bool {
        self.lost.lock().map_or(true, |l| l.is_some())
            || self.uncaptured.lock().map_or(true, |e| !e.is_empty())
    }

    /// Waits for all submitted work.
    pub fn wait(&self, context: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu(context, e))?;
        self.check(context)
    }

    /// Copies `len` f32 from `buffer` at f32 `offset` back to the host (waits).
    pub fn read(&self, buffer: &wgpu::Buffer, offset: usize, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, (offset * 4) as u64, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait("reading a buffer back")?;
        rx.recv()
            .map_err(|e| Error::gpu("reading a buffer back", e))?
            .map_err(|e| Error::gpu("mapping a buffer", e))?;
        let data = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::gpu("mapping a buffer", e))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Destroys the device (to test device-loss handling).
    pub fn destroy(&self) {
        self.device.destroy();
    }
}
