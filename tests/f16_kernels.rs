//! Graph-op kernels built with f16 storage bindings (`shaders::module_source`) run on a
//! device with SHADER_F16 (lavapipe has it): loads widen f16 to f32, stores round to the
//! nearest f16, as the `half` crate rounds.

use half::f16;
use kiln::backend::wgpu::shaders::module_source;
use kiln::backend::wgpu::{AdapterPolicy, GpuContext};
use wgpu::util::DeviceExt;

/// A device with SHADER_F16, or `None` (said loudly) where there is none; with `CI` set a
/// missing adapter fails the test.
fn f16_device() -> Option<GpuContext> {
    let ctx = match GpuContext::new(AdapterPolicy::AllowSoftware) {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but no wgpu adapter is available: {e}");
            }
            eprintln!("\n*** SKIPPED: no wgpu adapter ({e}) ***\n");
            return None;
        }
    };
    if !ctx.has_f16() {
        eprintln!("\n*** SKIPPED: {} has no SHADER_F16 ***\n", ctx.describe());
        return None;
    }
    Some(ctx)
}

/// A storage binding's contents: f32 or f16 words.
enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Data {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Data::F32(v) => bytemuck::cast_slice(v).to_vec(),
            Data::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        }
    }

    fn is_half(&self) -> bool {
        matches!(self, Data::F16(_))
    }
}

/// The 96-byte Dims uniform: d0..d3, f0..f3, e0..e7 (then e8..e15, zero here).
fn dims(d: [u32; 4], f: [f32; 4], e: [u32; 8]) -> Vec<u8> {
    let words: Vec<u32> = d
        .into_iter()
        .chain(f.map(f32::to_bits))
        .chain(e)
        .chain([0; 8])
        .collect();
    bytemuck::cast_slice(&words).to_vec()
}

/// Runs `entry` of `shader` once with `out` and `inputs` bound at 1, 2, ..; each binding's
/// dtype is its data's; returns the bytes of `out` afterwards.
fn run(
    ctx: &GpuContext,
    shader: &str,
    entry: &str,
    uniform: &[u8],
    out: &Data,
    inputs: &[Data],
    workgroups: u32,
) -> Vec<u8> {
    let half: Vec<bool> = std::iter::once(out)
        .chain(inputs)
        .map(Data::is_half)
        .collect();
    let source = module_source(shader, &half).unwrap();
    let device = &ctx.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(shader),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    for b in 1..=half.len() as u32 {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: b,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: false },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &entries,
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: None,
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&layout),
        module: &module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions::default(),
        cache: None,
    });
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: uniform,
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let buffers: Vec<wgpu::Buffer> = std::iter::once(out)
        .chain(inputs)
        .map(|d| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &d.bytes(),
                usage: storage,
            })
        })
        .collect();
    let mut group = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniform.as_entire_binding(),
    }];
    for (b, buffer) in buffers.iter().enumerate() {
        group.push(wgpu::BindGroupEntry {
            binding: b as u32 + 1,
            resource: buffer.as_entire_binding(),
        });
    }
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &bgl,
        entries: &group,
    });
    let size = buffers[0].size();
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&buffers[0], 0, &staging, 0, size);
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, |r| r.unwrap());
    ctx.wait("f16 kernel test").unwrap();
    let bytes = slice.get_mapped_range().unwrap().to_vec();
    staging.unmap();
    bytes
}

fn as_f16(bytes: &[u8]) -> Vec<f16> {
    bytes
        .chunks_exact(2)
        .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

fn as_f32(bytes: &[u8]) -> Vec<f32> {
    bytemuck::cast_slice(bytes).to_vec()
}

fn halves(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

/// `add` with every binding f16: f16 + f16 computed in f32, rounded to the nearest f16
/// (ties to even, overflow to infinity), bit for bit as `half` rounds.
#[test]
fn add_in_f16_rounds_like_half() {
    let Some(ctx) = f16_device() else { return };
    let a = halves(&[1.0, 2049.0 - 1.0, 0.1, -3.5, 65504.0, 1e-4, 0.333, 7.0]);
    let b = halves(&[2f32.powi(-11), 1.0, 0.2, 1.25, 65504.0, -1e-4, 1e-3, -7.0]);
    let n = a.len();
    let bytes = run(
        &ctx,
        "elementwise.wgsl",
        "add",
        &dims([n as u32, 0, 0, 0], [0.0; 4], [0; 8]),
        &Data::F16(vec![f16::ZERO; n]),
        &[Data::F16(a.clone()), Data::F16(b.clone())],
        1,
    );
    let got = as_f16(&bytes);
    let want: Vec<f16> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| f16::from_f32(x.to_f32() + y.to_f32()))
        .collect();
    let bits = |v: &[f16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want), "got {got:?}, want {want:?}");
    assert!(got[4].is_infinite(), "65504 + 65504 overflows to inf");
}

/// Mixed signatures: f16 input into an f32 output (`scale`), and an f32 input into an f16
/// output (`scale` again), where the f32 product is rounded once.
#[test]
fn scale_between_f16_and_f32() {
    let Some(ctx) = f16_device() else { return };
    let x = [0.1f32, -2.7, 1000.0, 3.0e-5, 12.345, -0.5];
    let factor = 0.3f32;
    let n = x.len();
    let uniform = dims([n as u32, 0, 0, 0], [factor, 0.0, 0.0, 0.0], [0; 8]);
    let wide = as_f32(&run(
        &ctx,
        "elementwise.wgsl",
        "scale",
        &uniform,
        &Data::F32(vec![0.0; n]),
        &[Data::F16(halves(&x))],
        1,
    ));
    let want: Vec<f32> = x
        .iter()
        .map(|&v| f16::from_f32(v).to_f32() * factor)
        .collect();
    assert_eq!(wide, want);
    let narrow = as_f16(&run(
        &ctx,
        "elementwise.wgsl",
        "scale",
        &uniform,
        &Data::F16(vec![f16::ZERO; n]),
        &[Data::F32(x.to_vec())],
        1,
    ));
    assert_eq!(narrow, halves(&x.map(|v| v * factor)));
}

/// The matmul's vec4 path with f16 operands and an f32 output (a weight gradient's
/// signature): the same fma chain in k order as f32 operands holding the same values.
#[test]
fn matmul_vec4_reads_f16_operands() {
    let Some(ctx) = f16_device() else { return };
    let (m, n, k) = (4usize, 8usize, 12usize);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.37)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.21)
        .collect();
    let (a16, b16) = (halves(&a), halves(&b));
    let uniform = dims(
        [m as u32, n as u32, k as u32, 0],
        [0.0; 4],
        [1, 0, 0, 0, 0, 0, 0, 0],
    );
    for entry in ["matmul", "matmul_a4b4"] {
        let got = as_f32(&run(
            &ctx,
            "matmul_32x32.wgsl",
            entry,
            &uniform,
            &Data::F32(vec![0.0; m * n]),
            &[Data::F16(a16.clone()), Data::F16(b16.clone())],
            1,
        ));
        let mut want = vec![0.0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut acc = 0.0f32;
                for i in 0..k {
                    acc = a16[r * k + i]
                        .to_f32()
                        .mul_add(b16[i * n + c].to_f32(), acc);
                }
                want[r * n + c] = acc;
            }
        }
        assert_eq!(got, want, "{entry}");
    }
}

/// `check_finite` on f16 values finds an f16 infinity and NaN, and passes finite values up
/// to f16's largest.
#[test]
fn anomaly_detects_non_finite_f16() {
    let Some(ctx) = f16_device() else { return };
    let cases = [
        (
            vec![f16::ONE, f16::MAX, f16::MIN, f16::from_f32(1e-7)],
            false,
        ),
        (vec![f16::ONE, f16::INFINITY, f16::ZERO, f16::ONE], true),
        (vec![f16::NAN, f16::ONE, f16::ZERO, f16::ONE], true),
    ];
    for (values, bad) in cases {
        let flag = as_f32(&run(
            &ctx,
            "anomaly.wgsl",
            "check_finite",
            &dims([values.len() as u32, 3, 0, 0], [0.0; 4], [0; 8]),
            &Data::F32(vec![f32::from_bits(u32::MAX)]),
            &[Data::F16(values.clone())],
            1,
        ));
        let step = flag[0].to_bits();
        assert_eq!(step, if bad { 3 } else { u32::MAX }, "{values:?}");
    }
}

/// The implicit-GEMM products of an f16 plan round the image values they gather to f16
/// on the bits (`round_to_f16` in matmul.wgsl); a 1x1 convolution by a weight of 1 passes
/// them through, so each output is that rounding. Checked against the `half` crate's
/// conversion on both backends: ties to even, subnormals, the overflow to infinity at
/// 65520, infinities. (Not −0: the product's sum starts at +0, so it comes out +0.)
#[test]
fn gathered_image_values_round_to_f16_like_half() {
    use kiln::backend::cpu::CpuBackend;
    use kiln::backend::{Backend, Tail};
    use kiln::graph::{Graph, ParamLayout, Plan};
    use kiln::op::{ConvGeom, Op};
    use kiln::shape::Shape;
    let t = 2f32.powi(-24);
    let values = [
        1.0,
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        std::f32::consts::PI,
        -0.1,
        65504.0,
        65519.99,
        65520.0,
        -65520.0,
        1.0e6,
        2f32.powi(-14),
        2f32.powi(-14) - t / 2.0,
        t,
        1.5 * t,
        2.5 * t,
        0.4 * t,
        -0.6 * t,
        1.0e-5,
        -3.3e-6,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let n = values.len();
    let geom = ConvGeom {
        n: 1,
        c: 1,
        h: 1,
        w: n,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
    };
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[1, 1, 1, n]));
    let w = g.param(
        "w",
        Shape::new(&[1, 1]),
        kiln::nn::Init::Uniform { bound: 1.0 },
    );
    let op = Op::ConvMatMul {
        geom,
        bias: false,
        act: None,
    };
    let y = g.op(op, &[x, w]).unwrap();
    let layout = ParamLayout::grouped_in(&g, &|_| false, kiln::precision::Precision::F16);
    let plan = Plan::build(&g, &layout, &[y], &[]).unwrap();
    let want: Vec<u32> = values
        .iter()
        .map(|&v| f16::from_f32(v).to_f32().to_bits())
        .collect();
    let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("cpu", Box::new(CpuBackend::new()))];
    if let Ok(b) = kiln::backend::wgpu::WgpuBackend::new(AdapterPolicy::AllowSoftware) {
        if b.context().has_f16() {
            backends.push(("gpu", Box::new(b)));
        }
    }
    for (name, backend) in &mut backends {
        let mut params = vec![0.0; layout.size];
        params[layout.get("w").unwrap().offset] = 1.0;
        backend
            .init_model(&layout, &params, &vec![0.0; layout.buffers_size], None)
            .unwrap();
        let id = backend.compile(&plan, Tail::default()).unwrap();
        backend
            .run(id, &[&values], &kiln::optim::StepScalars::default())
            .unwrap();
        let got = backend.read_slot(id, plan.output_slot(y).unwrap()).unwrap();
        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "{name}: {:e} gave {:e}, f16 rounds it to {:e}",
                values[i],
                f32::from_bits(*g),
                f32::from_bits(*w)
            );
        }
    }
}
