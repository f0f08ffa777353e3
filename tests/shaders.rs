//! Static checks of the WGSL kernels in `shaders/`: every file parses and validates under
//! naga (the front end wgpu itself uses), has the entry points the executor looks up, and
//! follows the binding conventions the executor relies on. Needs no GPU, and only naga
//! and std, so it runs while the rest of the crate is in flux.

use std::collections::BTreeMap;
use std::path::PathBuf;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, Module, Scalar, ScalarKind, ShaderStage, StorageAccess, TypeInner};

/// File → the entry points the executor dispatches from it.
const ENTRY_POINTS: &[(&str, &[&str])] = &[
    (
        "matmul.wgsl",
        &[
            "matmul",
            "matmul_a4",
            "matmul_b4",
            "matmul_a4b4",
            "matmul_bias",
            "matmul_bias_a4",
            "matmul_bias_b4",
            "matmul_bias_a4b4",
        ],
    ),
    ("matmul_split.wgsl", &["split_sum", "split_sum_bias"]),
    (
        "elementwise.wgsl",
        &["bias_add", "bias_grad", "add", "scale", "broadcast"],
    ),
    (
        "activation.wgsl",
        &[
            "activation",
            "activation_grad",
            "activation_grad_from_output",
        ],
    ),
    ("activation_core.wgsl", &[]),
    (
        "softmax.wgsl",
        &["softmax", "softmax_grad", "log_softmax", "log_softmax_grad"],
    ),
    (
        "loss.wgsl",
        &[
            "cross_entropy",
            "cross_entropy_grad",
            "mse",
            "mse_grad",
            "bce_with_logits",
            "bce_with_logits_grad",
            "l1",
            "l1_grad",
            "smooth_l1",
            "smooth_l1_grad",
            "huber",
            "huber_grad",
        ],
    ),
    (
        "reduce.wgsl",
        &[
            "sum",
            "mean",
            "sum_squares",
            "sum_abs",
            "sum_squares_grad",
            "sum_abs_grad",
            "argmax",
            "correct",
            "accumulate",
        ],
    ),
    (
        "optim.wgsl",
        &[
            "grad_norm_partial",
            "grad_norm_final",
            "sgd_step",
            "adam_step",
            "adagrad_step",
            "rmsprop_step",
            "adadelta_step",
            "adamax_step",
            "nadam_step",
            "radam_step",
        ],
    ),
    (
        "optim_half.wgsl",
        &[
            "grad_norm_partial_half",
            "sgd_step_half",
            "adam_step_half",
            "adagrad_step_half",
            "rmsprop_step_half",
            "adadelta_step_half",
            "adamax_step_half",
            "nadam_step_half",
            "radam_step_half",
        ],
    ),
    ("scaler.wgsl", &["write_loss_seed", "update_loss_scale"]),
    ("philox.wgsl", &["philox_fill"]),
    ("anomaly.wgsl", &["check_finite"]),
    ("philox_core.wgsl", &[]),
    ("graph_op.wgsl", &[]),
    ("dropout.wgsl", &["dropout"]),
    (
        "conv.wgsl",
        &["im2col", "col2im", "rows_to_nchw", "nchw_to_rows"],
    ),
    (
        "grouped_conv.wgsl",
        &[
            "grouped_conv",
            "grouped_conv_input_grad",
            "grouped_conv_weight_grad",
        ],
    ),
    (
        "norm.wgsl",
        &[
            "batch_norm_stats",
            "batch_norm_apply",
            "batch_norm_grad_coeffs",
            "batch_norm_grad",
            "batch_norm_gamma_grad",
            "channel_sum",
            "channel_affine",
            "prelu",
            "prelu_grad",
            "prelu_weight_terms",
            "batch_norm_running",
            "layer_norm",
            "layer_norm_grad",
            "layer_norm_gamma_grad",
        ],
    ),
    (
        "pool.wgsl",
        &["max_pool", "max_pool_grad", "avg_pool", "avg_pool_grad"],
    ),
    (
        "adaptive_pool.wgsl",
        &[
            "adaptive_avg_pool",
            "adaptive_avg_pool_grad",
            "adaptive_max_pool",
            "adaptive_max_pool_grad",
        ],
    ),
];

/// Files whose kernels follow the graph-op convention (Dims uniform, then out, in0..in3;
/// dropout adds the step scalars at binding 7).
const GRAPH_OP_FILES: &[&str] = &[
    "matmul.wgsl",
    "matmul_split.wgsl",
    "elementwise.wgsl",
    "activation.wgsl",
    "softmax.wgsl",
    "loss.wgsl",
    "reduce.wgsl",
    "conv.wgsl",
    "grouped_conv.wgsl",
    "pool.wgsl",
    "adaptive_pool.wgsl",
    "norm.wgsl",
    "dropout.wgsl",
];

/// The constants block of the default matmul configuration (64x64 tiles), which the
/// executor puts in front of `matmul.wgsl` as it does for every configuration (each
/// module's block is checked against `matmul::CONFIGS` in src/backend/wgpu/matmul.rs).
const MATMUL_CONFIG: &str = "const WX: u32 = 16u;\nconst WY: u32 = 16u;\nconst TM: u32 = 4u;\n\
                             const TN: u32 = 4u;\nconst BK: u32 = 16u;\n";

/// Files the executor builds with `philox_core.wgsl` prepended (WGSL has no includes).
const NEEDS_PHILOX: &[&str] = &["philox.wgsl", "dropout.wgsl"];

/// Files the executor builds with `activation_core.wgsl` prepended (the activation kernels
/// and the matmul's fused activation epilogue share its functions).
const NEEDS_ACTIVATION: &[&str] = &["activation.wgsl", "matmul.wgsl", "matmul_split.wgsl"];

/// The pipeline-overridable constants the executor sets, per file.
const OVERRIDES: &[(&str, &[&str])] = &[
    (
        "matmul.wgsl",
        &[
            "TRANS_A",
            "TRANS_B",
            "HAS_BIAS",
            "HAS_ACT",
            "ACT_KIND",
            "COLS_A",
            "COLS_B",
            "ROUND_COLS",
            "SPLIT_K",
        ],
    ),
    ("matmul_split.wgsl", &["HAS_BIAS", "HAS_ACT", "ACT_KIND"]),
    ("activation.wgsl", &["KIND"]),
];

/// `StepScalars` of src/optim/scalars.rs, in order: (name, is_float).
const STEP_SCALARS: &[(&str, bool)] = &[
    ("lr", true),
    ("weight_decay", true),
    ("momentum", true),
    ("dampening", true),
    ("beta1", true),
    ("beta2", true),
    ("eps", true),
    ("bias_correction1", true),
    ("bias_correction2_sqrt", true),
    ("max_norm", true),
    ("nesterov", false),
    ("step", false),
    ("len", false),
    ("seed_lo", false),
    ("seed_hi", false),
    ("one_minus_dampening", true),
    ("alpha", true),
    ("one_minus_alpha", true),
    ("clip_value", true),
    ("decoupled", false),
    ("amsgrad", false),
    ("centered", false),
    ("one_minus_beta1", true),
    ("one_minus_beta2", true),
    ("tail_start", false),
    ("tail_lr_scale", true),
    ("tail_weight_decay", true),
    ("skip_nonfinite", false),
    ("bias_correction2", true),
    ("rect", true),
    ("nadam_grad_coef", true),
    ("nadam_avg_coef", true),
];

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

/// Every `.wgsl` file in `shaders/`, by file name.
fn shader_sources() -> BTreeMap<String, String> {
    let dir = shader_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut sources = BTreeMap::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("non-UTF-8 shader file name {}", path.display()))
            .to_string();
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        sources.insert(name, source);
    }
    let core = sources.get("philox_core.wgsl").cloned().unwrap_or_default();
    for name in NEEDS_PHILOX {
        if let Some(s) = sources.get_mut(*name) {
            *s = format!("{core}{s}");
        }
    }
    let activation = sources
        .get("activation_core.wgsl")
        .cloned()
        .unwrap_or_default();
    for name in NEEDS_ACTIVATION {
        if let Some(s) = sources.get_mut(*name) {
            *s = format!("{activation}{s}");
        }
    }
    // optim_half.wgsl extends optim.wgsl (src/backend/wgpu/shaders.rs `OPTIM_HALF`).
    let optim = sources.get("optim.wgsl").cloned().unwrap_or_default();
    if let Some(s) = sources.get_mut("optim_half.wgsl") {
        *s = format!("enable f16;\n{optim}{s}");
    }
    // matmul_im2col.wgsl is half of the matmul kernel, not a module of its own.
    let im2col = sources.remove("matmul_im2col.wgsl").unwrap_or_default();
    if let Some(s) = sources.get_mut("matmul.wgsl") {
        *s = format!("{MATMUL_CONFIG}{im2col}{s}");
    }
    // Graph-op shaders are built with the shared interface in front (src/backend/wgpu/shaders.rs).
    let prelude = sources.get("graph_op.wgsl").cloned().unwrap_or_default();
    for name in GRAPH_OP_FILES {
        if let Some(s) = sources.get_mut(*name) {
            *s = format!("{prelude}{s}");
        }
    }
    sources
}

/// Parses and validates one file, panicking with naga's rendered diagnostic (f16 is
/// allowed in modules that enable it).
fn load(name: &str, source: &str) -> Module {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
        panic!(
            "{name} does not parse:\n{}",
            e.emit_to_string_with_path(source, name)
        )
    });
    let capabilities = if source.starts_with("enable f16;") {
        Capabilities::default() | Capabilities::SHADER_FLOAT16
    } else {
        Capabilities::default()
    };
    Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{name} does not validate:\n{}",
                e.emit_to_string_with_path(source, name)
            )
        });
    module
}

fn load_file(name: &str) -> Module {
    let sources = shader_sources();
    let source = sources
        .get(name)
        .unwrap_or_else(|| panic!("shaders/{name} is missing"));
    load(name, source)
}

#[test]
fn every_shader_parses_and_validates() {
    let sources = shader_sources();
    assert!(
        !sources.is_empty(),
        "no .wgsl files in {}",
        shader_dir().display()
    );
    for (name, source) in &sources {
        load(name, source);
    }
}

#[test]
fn every_shader_file_is_expected_and_present() {
    let sources = shader_sources();
    let expected: Vec<&str> = ENTRY_POINTS.iter().map(|(f, _)| *f).collect();
    for name in sources.keys() {
        assert!(
            expected.contains(&name.as_str()),
            "shaders/{name} is not in this test's ENTRY_POINTS table"
        );
    }
    for name in expected {
        assert!(sources.contains_key(name), "shaders/{name} is missing");
    }
}

#[test]
fn expected_entry_points_exist_as_compute_shaders() {
    let sources = shader_sources();
    for (file, entries) in ENTRY_POINTS {
        let source = sources
            .get(*file)
            .unwrap_or_else(|| panic!("shaders/{file} is missing"));
        let module = load(file, source);
        for entry in *entries {
            let ep = module
                .entry_points
                .iter()
                .find(|ep| ep.name == *entry)
                .unwrap_or_else(|| {
                    let found: Vec<&str> = module
                        .entry_points
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect();
                    panic!("{file} has no entry point `{entry}` (found {found:?})")
                });
            assert_eq!(
                ep.stage,
                ShaderStage::Compute,
                "{file}: `{entry}` is not @compute"
            );
        }
    }
}

#[test]
fn workgroup_sizes_match_the_dispatch_conventions() {
    for (file, entries) in ENTRY_POINTS {
        let module = load_file(file);
        for entry in *entries {
            let Some(ep) = module.entry_points.iter().find(|ep| ep.name == *entry) else {
                continue; // reported by expected_entry_points_exist_as_compute_shaders
            };
            let expected = match *entry {
                e if e.starts_with("matmul") => [16, 16, 1],
                "accumulate" | "write_loss_seed" | "update_loss_scale" => [1, 1, 1],
                _ => [256, 1, 1],
            };
            assert_eq!(ep.workgroup_size, expected, "{file}: `{entry}`");
        }
    }
}

/// wgpu rejects a buffer bound read-only and read-write in one dispatch, and arenas bind
/// slices of one buffer as both inputs and outputs.
#[test]
fn storage_buffers_are_read_write() {
    for (name, source) in &shader_sources() {
        let module = load(name, source);
        for (_, var) in module.global_variables.iter() {
            if let AddressSpace::Storage { access } = var.space {
                assert!(
                    access.contains(StorageAccess::LOAD | StorageAccess::STORE),
                    "{name}: storage buffer `{}` is not read_write",
                    var.name.as_deref().unwrap_or("?")
                );
            }
        }
    }
}

#[test]
fn graph_op_kernels_follow_the_binding_convention() {
    let expected = [
        (0, "dims"),
        (1, "out"),
        (2, "in0"),
        (3, "in1"),
        (4, "in2"),
        (5, "in3"),
        (7, "scalars"),
    ];
    for file in GRAPH_OP_FILES {
        let module = load_file(file);
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            let name = var.name.as_deref().unwrap_or("?");
            assert_eq!(binding.group, 0, "{file}: `{name}` is not in group 0");
            // The matmul kernel's vec4 views of in0 and in1 (an entry point uses either
            // the view or the array, never both).
            if *file == "matmul.wgsl"
                && matches!((binding.binding, name), (2, "in0v") | (3, "in1v"))
            {
                assert!(
                    matches!(module.types[var.ty].inner, TypeInner::Array { base, .. }
                        if matches!(module.types[base].inner,
                            TypeInner::Vector { scalar: Scalar::F32, size: naga::VectorSize::Quad })),
                    "{file}: `{name}` is not array<vec4<f32>>"
                );
                continue;
            }
            let want = expected
                .iter()
                .find(|(b, _)| *b == binding.binding)
                .map(|(_, n)| *n);
            assert_eq!(
                want,
                Some(name),
                "{file}: binding {} is `{name}`",
                binding.binding
            );
            let ty = &module.types[var.ty];
            match binding.binding {
                0 => {
                    assert_eq!(
                        var.space,
                        AddressSpace::Uniform,
                        "{file}: `dims` is not uniform"
                    );
                    let TypeInner::Struct { members, span } = &ty.inner else {
                        panic!("{file}: `dims` is not a struct");
                    };
                    // 32 bytes, or 96 with e0..e15 for ops with more geometry; the host
                    // always writes 96 (`kernels::Dims`).
                    assert!(*span == 32 || *span == 96, "{file}: Dims is {span} bytes");
                    assert_eq!(
                        std::mem::size_of::<kiln::backend::wgpu::kernels::Dims>(),
                        96
                    );
                    let names: Vec<&str> = members
                        .iter()
                        .map(|m| m.name.as_deref().unwrap_or("?"))
                        .collect();
                    let full = [
                        "d0", "d1", "d2", "d3", "f0", "f1", "f2", "f3", "e0", "e1", "e2", "e3",
                        "e4", "e5", "e6", "e7", "e8", "e9", "e10", "e11", "e12", "e13", "e14",
                        "e15",
                    ];
                    assert_eq!(names, full[..members.len()], "{file}");
                    for (i, m) in members.iter().enumerate() {
                        let want = if (4..8).contains(&i) {
                            Scalar::F32
                        } else {
                            Scalar::U32
                        };
                        assert_eq!(
                            module.types[m.ty].inner,
                            TypeInner::Scalar(want),
                            "{file}: Dims.{}",
                            m.name.as_deref().unwrap_or("?")
                        );
                        assert_eq!(m.offset, 4 * i as u32, "{file}: Dims member {i}");
                    }
                }
                7 => assert_eq!(
                    ty.name.as_deref(),
                    Some("StepScalars"),
                    "{file}: binding 7 is not the step scalars"
                ),
                _ => assert!(
                    matches!(ty.inner, TypeInner::Array { base, .. }
                        if module.types[base].inner == TypeInner::Scalar(Scalar::F32)),
                    "{file}: `{name}` is not array<f32>"
                ),
            }
        }
    }
}

#[test]
fn override_constants_exist() {
    for (file, names) in OVERRIDES {
        let module = load_file(file);
        for name in *names {
            assert!(
                module
                    .overrides
                    .iter()
                    .any(|(_, o)| o.name.as_deref() == Some(*name)),
                "{file} has no `override {name}`"
            );
        }
    }
}

/// The field names of `pub struct StepScalars` in src/optim/scalars.rs, read from its text.
fn rust_step_scalars() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/optim/scalars.rs");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = text
        .find("pub struct StepScalars {")
        .unwrap_or_else(|| panic!("no `pub struct StepScalars` in {}", path.display()));
    let body = &text[start..];
    let body = &body[body.find('{').map_or(0, |i| i + 1)..body.find('}').unwrap_or(body.len())];
    body.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub "))
        .filter_map(|l| {
            let (name, ty) = l.split_once(':')?;
            Some((
                name.trim().to_string(),
                ty.trim().trim_end_matches(',').to_string(),
            ))
        })
        .collect()
}

#[test]
fn step_scalars_layout_matches_the_rust_struct() {
    let module = load_file("optim.wgsl");
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("StepScalars"))
        .expect("optim.wgsl has no struct StepScalars");
    let TypeInner::Struct { members, span } = &ty.inner else {
        panic!("StepScalars is not a struct");
    };
    let got: Vec<(&str, u32, Option<ScalarKind>)> = members
        .iter()
        .map(|m| {
            let kind = match module.types[m.ty].inner {
                TypeInner::Scalar(s) if s.width == 4 => Some(s.kind),
                _ => None,
            };
            (m.name.as_deref().unwrap_or("?"), m.offset, kind)
        })
        .collect();
    let want: Vec<(&str, u32, Option<ScalarKind>)> = STEP_SCALARS
        .iter()
        .enumerate()
        .map(|(i, &(name, float))| {
            let kind = if float {
                ScalarKind::Float
            } else {
                ScalarKind::Uint
            };
            (name, 4 * i as u32, Some(kind))
        })
        .collect();
    assert_eq!(got, want, "StepScalars members (name, offset, kind)");
    assert_eq!(*span, 128, "StepScalars is not 128 bytes");

    // The table above must itself follow the Rust struct, which is what the host uploads.
    let rust: Vec<(String, String)> = rust_step_scalars();
    let table: Vec<(String, String)> = STEP_SCALARS
        .iter()
        .map(|&(n, f)| (n.to_string(), if f { "f32" } else { "u32" }.to_string()))
        .collect();
    assert_eq!(rust, table, "StepScalars in src/optim/scalars.rs changed");

    let (_, var) = module
        .global_variables
        .iter()
        .find(|(_, v)| v.name.as_deref() == Some("s"))
        .expect("optim.wgsl has no `s` uniform");
    assert_eq!(var.space, AddressSpace::Uniform);
    assert_eq!(
        var.binding.as_ref().map(|b| (b.group, b.binding)),
        Some((0, 0))
    );
    assert_eq!(module.types[var.ty].name.as_deref(), Some("StepScalars"));
}

#[test]
fn optim_bindings() {
    let module = load_file("optim.wgsl");
    let expected = [
        (1, "params"),
        (2, "grads"),
        (3, "state0"),
        (4, "state1"),
        (5, "state2"),
        (6, "partials"),
        (7, "norm"),
    ];
    for (binding, name) in expected {
        let found = module
            .global_variables
            .iter()
            .find(|(_, v)| v.binding.as_ref().map(|b| (b.group, b.binding)) == Some((0, binding)));
        let (_, var) = found.unwrap_or_else(|| panic!("optim.wgsl: nothing at binding {binding}"));
        assert_eq!(
            var.name.as_deref(),
            Some(name),
            "optim.wgsl binding {binding}"
        );
    }
}

#[test]
fn philox_declares_its_functions_and_bindings() {
    let module = load_file("philox.wgsl");
    for name in ["philox4x32_10", "uniform_from_bits"] {
        assert!(
            module
                .functions
                .iter()
                .any(|(_, f)| f.name.as_deref() == Some(name)),
            "philox.wgsl has no fn {name}"
        );
    }
    let at = |binding: u32| {
        module
            .global_variables
            .iter()
            .find(|(_, v)| v.binding.as_ref().map(|b| (b.group, b.binding)) == Some((0, binding)))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("philox.wgsl: nothing at binding {binding}"))
    };
    let dims = at(0);
    assert_eq!(dims.name.as_deref(), Some("dims"));
    assert_eq!(dims.space, AddressSpace::Uniform);
    let TypeInner::Struct { span, .. } = module.types[dims.ty].inner else {
        panic!("philox.wgsl: `dims` is not a struct");
    };
    assert_eq!(span, 32, "philox.wgsl: dims must be the 32 bytes of Dims");
    let bits = at(1);
    assert_eq!(bits.name.as_deref(), Some("bits"));
    assert!(
        matches!(module.types[bits.ty].inner, TypeInner::Array { base, .. }
            if module.types[base].inner == TypeInner::Scalar(Scalar::U32)),
        "philox.wgsl: `bits` is not array<u32>"
    );
}

/// The storage arrays kernels may only reach through their accessors, with the accessors'
/// own lines excepted (`fn ld…`/`fn st…`).
const ACCESSED_ONLY_THROUGH_FUNCTIONS: &[&str] =
    &["out", "in0", "in1", "in2", "in3", "in0v", "in1v", "values"];

/// Kernels index no storage array directly, so a generated signature changes every access.
#[test]
fn kernels_reach_storage_only_through_accessors() {
    let sources = shader_sources();
    for name in GRAPH_OP_FILES.iter().chain(&["anomaly.wgsl"]) {
        let source = sources
            .get(*name)
            .unwrap_or_else(|| panic!("shaders/{name} is missing"));
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.trim_start().starts_with("fn ld") || code.trim_start().starts_with("fn st") {
                continue;
            }
            for array in ACCESSED_ONLY_THROUGH_FUNCTIONS {
                let pattern = format!("{array}[");
                for (at, _) in code.match_indices(&pattern) {
                    let before = code[..at].chars().next_back();
                    assert!(
                        before.is_some_and(|c| c.is_alphanumeric() || c == '_'),
                        "{name}:{}: `{}` indexes `{array}` directly",
                        n + 1,
                        line.trim()
                    );
                }
            }
        }
    }
}

/// Parses and validates a generated module with f16 allowed.
fn load_f16(name: &str, source: &str) -> Module {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
        panic!(
            "{name} does not parse:\n{}",
            e.emit_to_string_with_path(source, name)
        )
    });
    Validator::new(
        ValidationFlags::all(),
        Capabilities::default() | Capabilities::SHADER_FLOAT16,
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "{name} does not validate:\n{}",
            e.emit_to_string_with_path(source, name)
        )
    });
    module
}

/// The scalar width in bytes of the elements of a storage array variable.
fn element_width(module: &Module, ty: naga::Handle<naga::Type>) -> Option<u8> {
    let TypeInner::Array { base, .. } = module.types[ty].inner else {
        return None;
    };
    match module.types[base].inner {
        TypeInner::Scalar(s) => Some(s.width),
        TypeInner::Vector { scalar, .. } => Some(scalar.width),
        _ => None,
    }
}

/// Every graph-op module and anomaly.wgsl for the all-f32 signature (exactly the module in
/// `shaders::ALL`), the all-f16 one, and mixed ones (f16 out with f32 inputs; f32 out with
/// f16 inputs, as a matmul writing weight gradients; f16 on every other binding): each
/// validates with naga, declares each binding with the dtype asked for, and still reads the
/// graph-op interface's bindings only through accessors.
#[test]
fn every_binding_dtype_signature_validates() {
    use kiln::backend::wgpu::shaders::{module_source, ALL};
    let graph_op: &[&[bool]] = &[
        &[],
        &[false; 5],
        &[true; 5],
        &[true],
        &[true, false, false, false, false],
        &[false, true, true, true, true],
        &[false, true],
        &[true, false, true, false, true],
        &[false, true, false, true],
    ];
    let anomaly: &[&[bool]] = &[&[], &[false, true]];
    // Modules with a generated f16 interface: the graph-op modules (binding 6 does not
    // exist) and anomaly (binding 1 is its atomic flag). Every other module refuses f16.
    let f16_modules: Vec<&str> = [
        "matmul_32x32.wgsl",
        "matmul_64x64.wgsl",
        "matmul_128x64.wgsl",
        "matmul_128x128.wgsl",
        "anomaly.wgsl",
    ]
    .into_iter()
    .chain(
        GRAPH_OP_FILES
            .iter()
            .copied()
            .filter(|f| *f != "matmul.wgsl"),
    )
    .collect();
    for name in &f16_modules {
        assert!(
            ALL.iter().any(|(n, _)| n == name),
            "{name} is not in shaders::ALL"
        );
    }
    for (name, f32_source) in ALL {
        let signatures = match *name {
            "anomaly.wgsl" => {
                assert!(module_source(name, &[true]).is_err());
                assert!(module_source(name, &[false, true, true]).is_err());
                anomaly
            }
            n if f16_modules.contains(&n) => {
                let binding6 = [false, false, false, false, false, true];
                assert!(module_source(name, &binding6).is_err(), "{name}: binding 6");
                graph_op
            }
            _ => {
                assert_eq!(module_source(name, &[]).unwrap(), *f32_source, "{name}");
                assert_eq!(
                    module_source(name, &[false, false]).unwrap(),
                    *f32_source,
                    "{name}"
                );
                for half in [&[true][..], &[false, true], &[true; 5]] {
                    let err = module_source(name, half).unwrap_err();
                    assert!(
                        matches!(err, kiln::error::Error::Unsupported(_)),
                        "{name} {half:?}: {err}"
                    );
                }
                continue;
            }
        };
        for half in signatures {
            let source =
                module_source(name, half).unwrap_or_else(|e| panic!("{name} {half:?}: {e}"));
            let label = format!("{name} {half:?}");
            if !half.contains(&true) {
                assert_eq!(source, *f32_source, "{label}: not the f32 module");
            } else {
                assert!(source.starts_with("enable f16;"), "{label}");
            }
            let module = load_f16(&label, &source);
            for (_, var) in module.global_variables.iter() {
                let Some(binding) = &var.binding else {
                    continue;
                };
                if !matches!(var.space, AddressSpace::Storage { .. }) {
                    continue;
                }
                let var_name = var.name.as_deref().unwrap_or("?");
                let want_half = (binding.binding as usize)
                    .checked_sub(1)
                    .and_then(|k| half.get(k))
                    .copied()
                    .unwrap_or(false);
                let width = element_width(&module, var.ty);
                if var_name == "flag" {
                    continue; // anomaly's atomic u32
                }
                assert_eq!(
                    width,
                    Some(if want_half { 2 } else { 4 }),
                    "{label}: `{var_name}` at binding {}",
                    binding.binding
                );
            }
        }
    }
    assert!(module_source("nope.wgsl", &[]).is_err());
}
