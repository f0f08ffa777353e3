//! The matmul autotuner. Products are sorted into shape classes (the output's size, and
//! whether the sums are short); the first product of a class on a device times every tile
//! configuration of [`CONFIGS`] on a representative product of that class (wall time
//! around a synchronous submit, median of a few runs), and the fastest is remembered in
//! memory and in a small JSON file, keyed by the adapter's name, backend, driver and
//! driver version, so later processes skip the timing.
//!
//! Tuning changes speed only: every configuration computes each output with the same f32
//! operations in the same k order, so results are bit-identical whatever it picks.
//!
//! `KILN_TUNE=off` (or [`GpuContext::set_matmul_tuning`] with [`Tuning::Off`]) uses
//! [`DEFAULT`] everywhere; `KILN_TUNE=<name>` forces one configuration. A missing,
//! unreadable or corrupt cache file means tuning again, never an error; a tuning run that
//! fails falls back to [`DEFAULT`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::matmul::{self, config_named, MatmulConfig, MatmulProblem, CONFIGS, DEFAULT};
use super::shaders;
use crate::error::{Error, Result};
use crate::graph::{ArenaKind, Slot, Step};
use crate::op::Op;
use crate::shape::Shape;

/// The environment variable read when a device is opened: `off` (also `0`, `false`,
/// `no`), `on` (the default), or a configuration's name such as `128x64`.
pub const ENV: &str = "KILN_TUNE";

/// How matmul tile configurations are chosen on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// Time the configurations on the first product of each shape class, cache the winner.
    Auto,
    /// Always [`DEFAULT`].
    Off,
    /// Always this configuration (tests, benchmarks).
    Fixed(MatmulConfig),
}

impl Tuning {
    /// The mode a value of `KILN_TUNE` asks for; unset or unrecognised values mean
    /// [`Tuning::Auto`].
    pub fn parse(value: Option<&str>) -> Tuning {
        let Some(v) = value else {
            return Tuning::Auto;
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "off" | "0" | "false" | "no" => Tuning::Off,
            other => config_named(other).map_or(Tuning::Auto, Tuning::Fixed),
        }
    }

    /// The mode `KILN_TUNE` asks for.
    pub fn from_env() -> Tuning {
        Self::parse(std::env::var(ENV).ok().as_deref())
    }
}

/// Output sizes, by M·N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeClass {
    /// Fewer than 2¹⁶ outputs (below 256x256).
    Small,
    /// Fewer than 2²⁰ outputs (below 1024x1024).
    Medium,
    /// The rest.
    Large,
}

/// The class of a product the tuner decides for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeClass {
    /// How many outputs.
    pub size: SizeClass,
    /// Whether the sums are short (K ≤ 64), so loading and storing weigh more than the
    /// multiply-adds.
    pub shallow: bool,
}

impl ShapeClass {
    /// Every class.
    pub const ALL: [ShapeClass; 6] = [
        ShapeClass::new(SizeClass::Small, false),
        ShapeClass::new(SizeClass::Small, true),
        ShapeClass::new(SizeClass::Medium, false),
        ShapeClass::new(SizeClass::Medium, true),
        ShapeClass::new(SizeClass::Large, false),
        ShapeClass::new(SizeClass::Large, true),
    ];

    const fn new(size: SizeClass, shallow: bool) -> Self {
        ShapeClass { size, shallow }
    }

    /// The class of a product.
    pub fn of(p: &MatmulProblem) -> ShapeClass {
        let outputs = p.m.saturating_mul(p.n);
        let size = if outputs < 1 << 16 {
            SizeClass::Small
        } else if outputs < 1 << 20 {
            SizeClass::Medium
        } else {
            SizeClass::Large
        };
        ShapeClass {
            size,
            shallow: p.k <= 64,
        }
    }

    /// Its name in the cache file: `small`, `medium`, `large`, with `-shallow` appended
    /// for short sums.
    pub fn name(&self) -> &'static str {
        match (self.size, self.shallow) {
            (SizeClass::Small, false) => "small",
            (SizeClass::Small, true) => "small-shallow",
            (SizeClass::Medium, false) => "medium",
            (SizeClass::Medium, true) => "medium-shallow",
            (SizeClass::Large, false) => "large",
            (SizeClass::Large, true) => "large-shallow",
        }
    }

    /// The class named `name`.
    pub fn from_name(name: &str) -> Option<ShapeClass> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The product the tuner times for this class (all sizes multiples of 64, so every
    /// configuration reads both operands as vec4).
    pub fn representative(&self) -> MatmulProblem {
        let (m, n) = match self.size {
            SizeClass::Small => (128, 256),
            SizeClass::Medium => (512, 512),
            SizeClass::Large => (1024, 1024),
        };
        MatmulProblem {
            m,
            n,
            k: if self.shallow { 32 } else { 256 },
        }
    }
}

/// The tuning cache: for each device, the fastest configuration per shape class.
///
/// On disk: `{"version": 1, "devices": {"<device key>": {"<class>": "<config>"}}}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuneCache {
    devices: BTreeMap<String, BTreeMap<ShapeClass, MatmulConfig>>,
}

impl TuneCache {
    /// The file format's version; files of another version are ignored.
    pub const VERSION: u64 = 1;

    /// `$XDG_CACHE_HOME/kiln/matmul-tune.json`, else `~/.cache/kiln/matmul-tune.json`;
    /// `None` when neither variable is set.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("kiln").join("matmul-tune.json"))
    }

    /// Reads `path`; a missing, unreadable or corrupt file is an empty cache.
    pub fn load(path: &Path) -> TuneCache {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the file format; `None` unless it is JSON of this version. Entries naming
    /// unknown classes or configurations are skipped.
    pub fn parse(text: &str) -> Option<TuneCache> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        if v.get("version")?.as_u64()? != Self::VERSION {
            return None;
        }
        let mut cache = TuneCache::default();
        for (device, classes) in v.get("devices")?.as_object()? {
            for (class, config) in classes.as_object()? {
                let class = ShapeClass::from_name(class);
                let config = config.as_str().and_then(config_named);
                if let (Some(class), Some(config)) = (class, config) {
                    cache.insert(device, class, config);
                }
            }
        }
        Some(cache)
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        let devices: serde_json::Map<String, serde_json::Value> = self
            .devices
            .iter()
            .map(|(device, classes)| {
                let classes: serde_json::Map<String, serde_json::Value> = classes
                    .iter()
                    .map(|(class, config)| (class.name().to_string(), config.name.into()))
                    .collect();
                (device.clone(), classes.into())
            })
            .collect();
        let v = serde_json::json!({ "version": Self::VERSION, "devices": devices });
        format!("{v:#}\n")
    }

    /// Writes the cache to `path` (creating its directory) through a temporary file
    /// renamed over it, so readers never see half a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }

    /// The configuration cached for `class` on `device`.
    pub fn get(&self, device: &str, class: ShapeClass) -> Option<MatmulConfig> {
        self.devices.get(device)?.get(&class).copied()
    }

    /// Records `config` for `class` on `device`.
    pub fn insert(&mut self, device: &str, class: ShapeClass, config: MatmulConfig) {
        self.devices
            .entry(device.to_string())
            .or_default()
            .insert(class, config);
    }
}

/// What one tuning run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneResult {
    /// The class tuned.
    pub class: ShapeClass,
    /// The product timed.
    pub problem: MatmulProblem,
    /// Dispatches per timed submit.
    pub dispatches: u32,
    /// Each configuration's median wall time per dispatch, in [`CONFIGS`] order.
    pub timings: Vec<(MatmulConfig, Duration)>,
    /// The fastest (the first of equals).
    pub best: MatmulConfig,
}

/// A device's tuning state, held by its [`GpuContext`].
pub(super) struct Tuner {
    state: Mutex<TunerState>,
}

struct TunerState {
    mode: Tuning,
    cache: Option<PathBuf>,
    chosen: HashMap<ShapeClass, MatmulConfig>,
}

impl Tuner {
    /// The mode from `KILN_TUNE` and the default cache file.
    pub(super) fn new() -> Self {
        Tuner {
            state: Mutex::new(TunerState {
                mode: Tuning::from_env(),
                cache: TuneCache::default_path(),
                chosen: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, TunerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One tuning run at a time in a process: a second device of the same adapter waits and
/// then finds the first one's answer in the cache file.
static TUNING: Mutex<()> = Mutex::new(());

/// Submits of each configuration timed per tuning run (fewer when a submit is slow).
const ROUNDS: usize = 5;
/// A timed submit repeats the product until it takes about this long.
const SUBMIT_TARGET: Duration = Duration::from_millis(4);
/// The most dispatches in one timed submit.
const MAX_DISPATCHES: u32 = 256;

impl GpuContext {
    /// Sets how matmul tile configurations are chosen (initially from `KILN_TUNE`);
    /// forgets the choices made so far. Plans compiled before keep their configuration.
    pub fn set_matmul_tuning(&self, tuning: Tuning) {
        let mut s = self.tuner.state();
        s.mode = tuning;
        s.chosen.clear();
    }

    /// How matmul tile configurations are chosen.
    pub fn matmul_tuning(&self) -> Tuning {
        self.tuner.state().mode
    }

    /// Sets the tuning cache file (`None`: keep choices in memory only); forgets the
    /// choices made so far.
    pub fn set_matmul_tune_cache(&self, path: Option<PathBuf>) {
        let mut s = self.tuner.state();
        s.cache = path;
        s.chosen.clear();
    }

    /// The tuning cache file in use.
    pub fn matmul_tune_cache(&self) -> Option<PathBuf> {
        self.tuner.state().cache.clone()
    }

    /// What identifies this device in the tuning cache: adapter name, backend, driver,
    /// driver version, vendor and device ids.
    pub fn tune_key(&self) -> String {
        let i = &self.info;
        format!(
            "{} | {:?} | {} | {} | {:04x}:{:04x}",
            i.name, i.backend, i.driver, i.driver_info, i.vendor, i.device
        )
    }

    /// The tile configuration for a product: under [`Tuning::Auto`], the class's cached
    /// or freshly tuned winner. Never fails: whatever goes wrong means [`DEFAULT`].
    pub fn matmul_config(&self, p: &MatmulProblem) -> MatmulConfig {
        let class = ShapeClass::of(p);
        let (mode, path) = {
            let s = self.tuner.state();
            match s.mode {
                Tuning::Off => return DEFAULT,
                Tuning::Fixed(c) => return c,
                Tuning::Auto => {}
            }
            if let Some(c) = s.chosen.get(&class) {
                return *c;
            }
            (s.mode, s.cache.clone())
        };
        let _one_at_a_time = TUNING.lock().unwrap_or_else(|p| p.into_inner());
        let key = self.tune_key();
        let cached = path
            .as_deref()
            .and_then(|p| TuneCache::load(p).get(&key, class))
            .filter(|c| c.fits(&self.limits));
        let config = match cached {
            Some(c) => c,
            None => match self.tune_matmul(class) {
                Ok(Some(r)) => {
                    if let Some(p) = &path {
                        // Merge with what other processes wrote meanwhile; a cache that
                        // cannot be written only means tuning again next time.
                        let mut cache = TuneCache::load(p);
                        cache.insert(&key, class, r.best);
                        let _ = cache.save(p);
                    }
                    r.best
                }
                // Not remembered when a pending device error stopped it.
                Ok(None) if self.has_pending_error() => return DEFAULT,
                Ok(None) | Err(_) => DEFAULT,
            },
        };
        let mut s = self.tuner.state();
        if s.mode == mode && s.cache == path {
            s.chosen.insert(class, config);
        }
        config
    }

    /// Times every configuration on the representative product of `class` now and returns
    /// the timings and the winner (nothing is cached). `None` when this device cannot run
    /// every configuration on that product (lowered limits: a comparison over some of them
    /// would not be the device's answer), or when an error is pending on it.
    pub fn tune_matmul(&self, class: ShapeClass) -> Result<Option<TuneResult>> {
        // Tuning checks for errors as it goes, which would take an earlier error away
        // from whoever is due to report it.
        if self.has_pending_error() {
            return Ok(None);
        }
        let p = class.representative();
        let floats = p.m * p.k + p.k * p.n + p.m * p.n;
        let largest = (p.m * p.k).max(p.k * p.n).max(p.m * p.n) as u64 * 4;
        if !CONFIGS.iter().all(|c| c.fits(&self.limits))
            || largest > self.limits.max_storage_buffer_binding_size
            || floats as u64 * 4 > self.limits.max_buffer_size
        {
            return Ok(None);
        }
        let step = representative_step(&p);
        let max_groups = self.limits.max_compute_workgroups_per_dimension;
        let mut launches = Vec::with_capacity(CONFIGS.len());
        for c in CONFIGS {
            match matmul::launch(&step, c, max_groups) {
                Ok(l) => launches.push(l),
                Err(_) => return Ok(None),
            }
        }
        let bench = self.scoped("tuning matmul", || TuneBench::new(self, &step, &launches))??;
        // Run every pipeline once (drivers may finish compiling on first use), then size
        // the timed submits from the fastest second run.
        for i in 0..CONFIGS.len() {
            bench.time(self, i, 1)?;
        }
        let mut first = Duration::MAX;
        for i in 0..CONFIGS.len() {
            first = first.min(bench.time(self, i, 1)?);
        }
        let per = first.as_secs_f64().max(1e-7);
        let dispatches =
            ((SUBMIT_TARGET.as_secs_f64() / per).ceil() as u32).clamp(1, MAX_DISPATCHES);
        let rounds = if first > Duration::from_millis(50) {
            3
        } else {
            ROUNDS
        };
        let mut samples = vec![Vec::with_capacity(rounds); CONFIGS.len()];
        // Interleaved, so that drift (clocks, other work) affects every configuration alike.
        for _ in 0..rounds {
            for (i, s) in samples.iter_mut().enumerate() {
                s.push(bench.time(self, i, dispatches)? / dispatches);
            }
        }
        let timings: Vec<(MatmulConfig, Duration)> = CONFIGS
            .iter()
            .zip(samples)
            .map(|(c, mut s)| {
                s.sort();
                (*c, s[s.len() / 2])
            })
            .collect();
        let best = timings
            .iter()
            .fold(None::<(MatmulConfig, Duration)>, |b, &(c, t)| match b {
                Some((_, bt)) if bt <= t => b,
                _ => Some((c, t)),
            })
            .map_or(DEFAULT, |(c, _)| c);
        Ok(Some(TuneResult {
            class,
            problem: p,
            dispatches,
            timings,
            best,
        }))
    }
}

/// A plan step for the representative product: a [m, k] · b [k, n], bound from offset 0.
fn representative_step(p: &MatmulProblem) -> Step {
    let slot = |len| Slot {
        arena: ArenaKind::Activations,
        offset: 0,
        len,
    };
    Step {
        op: Op::MatMul {
            trans_a: false,
            trans_b: false,
        },
        inputs: vec![slot(p.m * p.k), slot(p.k * p.n)],
        input_shapes: vec![Shape(vec![p.m, p.k]), Shape(vec![p.k, p.n])],
        output: slot(p.m * p.n),
        shape: Shape(vec![p.m, p.n]),
        node: 0,
    }
}

/// The buffers and one pipeline per configuration for timing a product.
struct TuneBench {
    runs: Vec<(wgpu::ComputePipeline, wgpu::BindGroup, (u32, u32))>,
    // Kept alive for the bind groups.
    _buffers: Vec<wgpu::Buffer>,
}

impl TuneBench {
    fn new(ctx: &GpuContext, step: &Step, launches: &[super::kernels::Launch]) -> Result<Self> {
        let device = &ctx.device;
        let storage = |label, floats: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (floats.max(4) * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let a = storage("tune a", step.inputs[0].len);
        let b = storage("tune b", step.inputs[1].len);
        let out = storage("tune out", step.output.len);
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let rw = wgpu::BufferBindingType::Storage { read_only: false };
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tune layout"),
            entries: &[
                entry(0, wgpu::BufferBindingType::Uniform),
                entry(1, rw),
                entry(2, rw),
                entry(3, rw),
            ],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("tune layout"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let mut runs = Vec::with_capacity(launches.len());
        let mut buffers = vec![a.clone(), b.clone(), out.clone()];
        for l in launches {
            let source = shaders::ALL
                .iter()
                .find(|(name, _)| *name == l.shader)
                .map(|(_, s)| *s)
                .ok_or_else(|| Error::Unsupported(format!("no shader named {}", l.shader)))?;
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(l.shader),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(l.shader),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(l.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &l.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            let dims = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("tune dims"),
                contents: bytemuck::bytes_of(&l.dims),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let entries: Vec<wgpu::BindGroupEntry<'_>> = [&dims, &out, &a, &b]
                .into_iter()
                .enumerate()
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: buffer.as_entire_binding(),
                })
                .collect();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("tune bind group"),
                layout: &bgl,
                entries: &entries,
            });
            runs.push((pipeline, bind_group, l.groups));
            buffers.push(dims);
        }
        Ok(TuneBench {
            runs,
            _buffers: buffers,
        })
    }

    /// Wall time of one submit of `dispatches` products in configuration `i`, waited for.
    fn time(&self, ctx: &GpuContext, i: usize, dispatches: u32) -> Result<Duration> {
        let (pipeline, bind_group, groups) = self
            .runs
            .get(i)
            .ok_or_else(|| Error::Graph(format!("no tuning run {i}")))?;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tune"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("tune"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            for _ in 0..dispatches {
                pass.dispatch_workgroups(groups.0, groups.1, 1);
            }
        }
        let commands = encoder.finish();
        // Errors outside a scope reach the context's handler, which `wait` reports.
        let start = Instant::now();
        ctx.queue.submit([commands]);
        ctx.wait("tuning matmul")?;
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiln_tune_values() {
        assert_eq!(Tuning::parse(None), Tuning::Auto);
        for off in ["off", "OFF", " 0 ", "false", "no"] {
            assert_eq!(Tuning::parse(Some(off)), Tuning::Off, "{off}");
        }
        assert_eq!(Tuning::parse(Some("on")), Tuning::Auto);
        assert_eq!(Tuning::parse(Some("whatever")), Tuning::Auto);
        assert_eq!(
            Tuning::parse(Some("128x128")),
            Tuning::Fixed(matmul::CONFIGS[3])
        );
    }

    #[test]
    fn shape_classes() {
        let c = |m, n, k| ShapeClass::of(&MatmulProblem { m, n, k });
        assert_eq!(c(128, 10, 784), ShapeClass::new(SizeClass::Small, false));
        assert_eq!(c(784, 256, 128), ShapeClass::new(SizeClass::Medium, false));
        assert_eq!(c(128, 128, 10), ShapeClass::new(SizeClass::Small, true));
        assert_eq!(
            c(4096, 4096, 4096),
            ShapeClass::new(SizeClass::Large, false)
        );
        assert_eq!(c(1024, 1024, 64), ShapeClass::new(SizeClass::Large, true));
        for class in ShapeClass::ALL {
            assert_eq!(ShapeClass::from_name(class.name()), Some(class));
            assert_eq!(
                ShapeClass::of(&class.representative()),
                class,
                "{}",
                class.name()
            );
        }
    }

    #[test]
    fn cache_text_round_trips_and_bad_text_is_ignored() {
        let mut cache = TuneCache::default();
        cache.insert("gpu a | Vulkan | d | 1.0", ShapeClass::ALL[0], CONFIGS[3]);
        cache.insert("gpu a | Vulkan | d | 1.0", ShapeClass::ALL[5], CONFIGS[0]);
        cache.insert("gpu \"b\"", ShapeClass::ALL[2], DEFAULT);
        let text = cache.to_json();
        assert_eq!(TuneCache::parse(&text), Some(cache.clone()));
        assert_eq!(
            cache.get("gpu a | Vulkan | d | 1.0", ShapeClass::ALL[0]),
            Some(CONFIGS[3])
        );
        assert_eq!(
            cache.get("gpu a | Vulkan | d | 1.0", ShapeClass::ALL[1]),
            None
        );
        for bad in [
            "",
            "{",
            "[]",
            "{\"version\": 2, \"devices\": {}}",
            "{\"version\": 1}",
            "{\"version\": 1, \"devices\": []}",
        ] {
            assert_eq!(TuneCache::parse(bad), None, "{bad}");
        }
        // Unknown classes and configurations are skipped, the rest kept.
        let partial = r#"{"version": 1, "devices": {"x": {"small": "9x9", "huge": "64x64",
            "large": "128x128"}}}"#;
        let c = TuneCache::parse(partial).unwrap();
        assert_eq!(c.get("x", ShapeClass::ALL[0]), None);
        assert_eq!(c.get("x", ShapeClass::ALL[4]), Some(CONFIGS[3]));
    }
}
