//! WGSL modules per binding dtype signature: which storage bindings of a kernel hold f16.
//!
//! Why generated: WGSL has neither generics nor includes, and mixed precision stores
//! activations as f16 while every kernel computes in f32. So kernels never index their
//! storage arrays directly; they load and store f32 through accessor functions (`ld_out`,
//! `st_out`, `ld0`..`ld3`, the matmul's `ld0v4`/`ld1v4`, anomaly's `ld_values`), and this
//! file writes the declarations and accessors for a signature: an f16 binding is declared
//! `array<f16>` (or `array<vec4<f16>>`), widened to f32 on load and rounded to f16 on store.
//!
//! The all-f32 rendition of each block is also spelled out in the WGSL files
//! (`graph_op.wgsl`, `matmul.wgsl`, `anomaly.wgsl`), so [`shaders::ALL`](super::ALL)
//! stays a table of compile-time constants that run unchanged;
//! [`module_source`](super::module_source) swaps that
//! text for the generated one, and a test checks that the generator's f32 output is exactly
//! the text in the files.

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// One storage binding of a generated block.
struct Storage {
    /// `@binding(n)` in group 0.
    binding: u32,
    /// The WGSL variable.
    name: &'static str,
    /// Whether the array holds vec4s (a view of another binding).
    vec4: bool,
    /// The load accessor.
    load: &'static str,
    /// The store accessor, for bindings kernels write.
    store: Option<&'static str>,
}

/// `out` and `in0`..`in3` of the graph-op interface (`graph_op.wgsl`).
const GRAPH_OP: &[Storage] = &[
    Storage {
        binding: 1,
        name: "out",
        vec4: false,
        load: "ld_out",
        store: Some("st_out"),
    },
    Storage {
        binding: 2,
        name: "in0",
        vec4: false,
        load: "ld0",
        store: None,
    },
    Storage {
        binding: 3,
        name: "in1",
        vec4: false,
        load: "ld1",
        store: None,
    },
    Storage {
        binding: 4,
        name: "in2",
        vec4: false,
        load: "ld2",
        store: None,
    },
    Storage {
        binding: 5,
        name: "in3",
        vec4: false,
        load: "ld3",
        store: None,
    },
];

/// The matmul's vec4 views of `in0` and `in1` (`matmul.wgsl`).
const MATMUL_VIEWS: &[Storage] = &[
    Storage {
        binding: 2,
        name: "in0v",
        vec4: true,
        load: "ld0v4",
        store: None,
    },
    Storage {
        binding: 3,
        name: "in1v",
        vec4: true,
        load: "ld1v4",
        store: None,
    },
];

/// The values `check_finite` tests (`anomaly.wgsl`); its atomic flag at binding 1 is u32.
const ANOMALY_VALUES: &[Storage] = &[Storage {
    binding: 2,
    name: "values",
    vec4: false,
    load: "ld_values",
    store: None,
}];

/// Whether storage binding `binding` is f16 in `half` (`half[k]` is binding k + 1).
fn is_half(half: &[bool], binding: u32) -> bool {
    binding
        .checked_sub(1)
        .and_then(|k| half.get(k as usize))
        .copied()
        .unwrap_or(false)
}

/// The declarations, then the accessors, of `bindings` for the signature `half`.
fn block(bindings: &[Storage], half: &[bool]) -> String {
    let mut s = String::new();
    for b in bindings {
        let scalar = if is_half(half, b.binding) {
            "f16"
        } else {
            "f32"
        };
        let elem = if b.vec4 {
            format!("vec4<{scalar}>")
        } else {
            scalar.to_string()
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read_write> {}: array<{elem}>;",
            b.binding, b.name
        );
    }
    for b in bindings {
        let h = is_half(half, b.binding);
        let ty = if b.vec4 { "vec4<f32>" } else { "f32" };
        let load = if h {
            format!("{ty}({}[i])", b.name)
        } else {
            format!("{}[i]", b.name)
        };
        let _ = writeln!(s, "fn {}(i: u32) -> {ty} {{ return {load}; }}", b.load);
        if let Some(store) = b.store {
            let value = if h { "f16(v)" } else { "v" };
            let _ = writeln!(
                s,
                "fn {store}(i: u32, v: {ty}) {{ {}[i] = {value}; }}",
                b.name
            );
        }
    }
    s
}

/// The generated blocks of a shader file and how many leading entries of a signature may
/// be f16; `None` for files without a generated interface.
fn blocks_of(shader: &str) -> Option<(&'static [&'static [Storage]], std::ops::Range<usize>)> {
    const GRAPH: &[&[Storage]] = &[GRAPH_OP];
    const MATMUL: &[&[Storage]] = &[GRAPH_OP, MATMUL_VIEWS];
    const ANOMALY: &[&[Storage]] = &[ANOMALY_VALUES];
    match shader {
        "matmul_32x32.wgsl"
        | "matmul_64x64.wgsl"
        | "matmul_128x64.wgsl"
        | "matmul_128x128.wgsl" => Some((MATMUL, 0..5)),
        "matmul_split.wgsl" | "elementwise.wgsl" | "activation.wgsl" | "softmax.wgsl"
        | "loss.wgsl" | "reduce.wgsl" | "dropout.wgsl" | "conv.wgsl" | "grouped_conv.wgsl"
        | "pool.wgsl" | "adaptive_pool.wgsl" | "norm.wgsl" => Some((GRAPH, 0..5)),
        // Binding 1 is the atomic u32 flag; only the tested values (k = 1) may be f16.
        "anomaly.wgsl" => Some((ANOMALY, 1..2)),
        _ => None,
    }
}

/// The WGSL of `template` (the all-f32 module of `shader`) with its storage bindings typed
/// by `half`: `half[k]` makes storage binding k + 1 f16 (k = 0 is `out`, 1..=4 are
/// `in0`..`in3`; for `anomaly.wgsl` k = 1 is the tested values), missing entries are f32.
pub(super) fn generate(shader: &str, template: &str, half: &[bool]) -> Result<String> {
    if !half.contains(&true) {
        return Ok(template.to_string());
    }
    let Some((blocks, allowed)) = blocks_of(shader) else {
        return Err(Error::Unsupported(format!(
            "{shader} has no f16 variant (only graph-op kernels and anomaly.wgsl do)"
        )));
    };
    if let Some(k) = (0..half.len()).find(|k| half[*k] && !allowed.contains(k)) {
        return Err(Error::Unsupported(format!(
            "{shader}: storage binding {} cannot be f16",
            k + 1
        )));
    }
    let mut source = String::from("enable f16;\n");
    let mut rest = template;
    for bindings in blocks {
        let f32_block = block(bindings, &[]);
        let at = rest.find(&f32_block).ok_or_else(|| {
            Error::Unsupported(format!(
                "{shader}: its storage declarations differ from the generated f32 block \
                 (shaders/ and shader_gen.rs disagree)"
            ))
        })?;
        source.push_str(&rest[..at]);
        source.push_str(&block(bindings, half));
        rest = &rest[at + f32_block.len()..];
    }
    source.push_str(rest);
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_blocks_are_the_text_of_the_files() {
        let files = [
            (
                "graph_op.wgsl",
                include_str!("../../../shaders/graph_op.wgsl"),
                GRAPH_OP,
            ),
            (
                "matmul.wgsl",
                include_str!("../../../shaders/matmul.wgsl"),
                MATMUL_VIEWS,
            ),
            (
                "anomaly.wgsl",
                include_str!("../../../shaders/anomaly.wgsl"),
                ANOMALY_VALUES,
            ),
        ];
        for (name, text, bindings) in files {
            assert_eq!(text.matches(&block(bindings, &[])).count(), 1, "{name}");
        }
    }

    #[test]
    fn f16_bindings_are_declared_and_converted() {
        let b = block(GRAPH_OP, &[true, false, true]);
        assert!(b.contains("@binding(1) var<storage, read_write> out: array<f16>;"));
        assert!(b.contains("@binding(2) var<storage, read_write> in0: array<f32>;"));
        assert!(b.contains("@binding(3) var<storage, read_write> in1: array<f16>;"));
        assert!(b.contains("fn st_out(i: u32, v: f32) { out[i] = f16(v); }"));
        assert!(b.contains("fn ld_out(i: u32) -> f32 { return f32(out[i]); }"));
        assert!(b.contains("fn ld0(i: u32) -> f32 { return in0[i]; }"));
        let v = block(MATMUL_VIEWS, &[false, true]);
        assert!(v.contains("in0v: array<vec4<f16>>;"));
        assert!(v.contains("fn ld0v4(i: u32) -> vec4<f32> { return vec4<f32>(in0v[i]); }"));
        assert!(v.contains("in1v: array<vec4<f32>>;"));
    }
}
