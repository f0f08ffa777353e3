//! The matmul kernel's tile configurations and its launch: which module (configuration),
//! which entry point (scalar or vec4 reads of each operand), the uniform and the folded
//! dispatch of one product. The autotuner (`tune.rs`) picks the configuration; every
//! configuration computes the same sums in the same order, so the pick never changes a
//! result.

use super::kernels::{fold, Dims, Launch};
use crate::error::{Error, Result};
use crate::graph::{rounds_im2col, Slot, Step};
use crate::op::{ConvGeom, Op};

/// One tile configuration of `shaders/matmul.wgsl`: a workgroup of `wx` x `wy`
/// invocations, each computing `tm` x `tn` outputs, computes a `wy·tm` x `wx·tn` tile of the
/// product, staging K `bk` at a time in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulConfig {
    /// Short name, as written in the tuning cache and accepted by `KILN_TUNE`.
    pub name: &'static str,
    /// Its module in [`shaders::ALL`](super::shaders::ALL).
    pub shader: &'static str,
    /// Invocations per workgroup along N.
    pub wx: u32,
    /// Invocations per workgroup along M.
    pub wy: u32,
    /// Rows of the output per invocation (a multiple of 4).
    pub tm: u32,
    /// Columns of the output per invocation (a multiple of 4).
    pub tn: u32,
    /// Depth of the K tiles (a multiple of 4).
    pub bk: u32,
}

impl MatmulConfig {
    /// Rows of the output tile a workgroup computes.
    pub const fn tile_m(&self) -> u32 {
        self.wy * self.tm
    }

    /// Columns of the output tile a workgroup computes.
    pub const fn tile_n(&self) -> u32 {
        self.wx * self.tn
    }

    /// Invocations per workgroup.
    pub const fn invocations(&self) -> u32 {
        self.wx * self.wy
    }

    /// Bytes of workgroup memory: both K tiles, rows padded by one vec4.
    pub const fn workgroup_bytes(&self) -> u32 {
        16 * self.bk * (self.tile_m() / 4 + 1 + self.tile_n() / 4 + 1)
    }

    /// Whether a device with these limits can run it.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        self.wx <= limits.max_compute_workgroup_size_x
            && self.wy <= limits.max_compute_workgroup_size_y
            && self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// The constants block its module starts with (after the graph-op interface).
    pub fn wgsl_constants(&self) -> String {
        format!(
            "const WX: u32 = {}u;\nconst WY: u32 = {}u;\nconst TM: u32 = {}u;\n\
             const TN: u32 = {}u;\nconst BK: u32 = {}u;\n",
            self.wx, self.wy, self.tm, self.tn, self.bk
        )
    }

    /// Whether the kernel's staging loops divide evenly: every invocation stages the same
    /// whole number of vec4s of each operand per K tile; and whether the floats it stages
    /// of each tile lie in one column (invocations a multiple of BK and of BN), which the
    /// implicit-GEMM convolution's index arithmetic relies on.
    const fn is_valid(&self) -> bool {
        let n = self.invocations();
        self.tm.is_multiple_of(4)
            && self.tn.is_multiple_of(4)
            && self.bk.is_multiple_of(4)
            && (self.tile_m() * self.bk).is_multiple_of(4 * n)
            && (self.tile_n() * self.bk).is_multiple_of(4 * n)
            && n.is_multiple_of(self.bk)
            && n.is_multiple_of(self.tile_n())
    }
}

/// The configurations the autotuner chooses from, smallest tiles first.
pub const CONFIGS: &[MatmulConfig] = &[
    MatmulConfig {
        name: "32x32",
        shader: "matmul_32x32.wgsl",
        wx: 8,
        wy: 8,
        tm: 4,
        tn: 4,
        bk: 16,
    },
    DEFAULT,
    MatmulConfig {
        name: "128x64",
        shader: "matmul_128x64.wgsl",
        wx: 16,
        wy: 16,
        tm: 8,
        tn: 4,
        bk: 16,
    },
    MatmulConfig {
        name: "128x128",
        shader: "matmul_128x128.wgsl",
        wx: 16,
        wy: 16,
        tm: 8,
        tn: 8,
        bk: 8,
    },
];

/// The configuration used when tuning is off, and whenever tuning cannot decide: 64x64
/// tiles of 16x16 invocations with 4x4 outputs each, within WebGPU's default limits.
pub const DEFAULT: MatmulConfig = MatmulConfig {
    name: "64x64",
    shader: "matmul_64x64.wgsl",
    wx: 16,
    wy: 16,
    tm: 4,
    tn: 4,
    bk: 16,
};

const _: () = {
    let mut i = 0;
    while i < CONFIGS.len() {
        assert!(CONFIGS[i].is_valid());
        i += 1;
    }
};

/// The configuration named `name` (case-insensitive).
pub fn config_named(name: &str) -> Option<MatmulConfig> {
    CONFIGS
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name.trim()))
        .copied()
}

/// The sizes of one product: out[m, n] = op(a) · op(b), summing over k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulProblem {
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// Length of each sum.
    pub k: usize,
}

/// Chooses the configuration of one product (the executor passes the autotuner's choice).
pub type Pick<'a> = &'a dyn Fn(&MatmulProblem) -> MatmulConfig;

fn dim(shape: &crate::shape::Shape, i: usize, what: &str) -> Result<usize> {
    shape
        .dims()
        .get(i)
        .copied()
        .ok_or_else(|| Error::Graph(format!("matmul {what} has shape {shape}, not 2-D")))
}

/// How the kernel runs one op: transpose flags, whether a bias is fused, the fused
/// activation's code (`Activation::code`), and which operand, if any, is the im2col
/// matrix of an image (the implicit-GEMM convolution products).
struct Flags {
    trans_a: bool,
    trans_b: bool,
    bias: bool,
    act: Option<u32>,
    cols: Cols,
}

/// Which operand the kernel reads as `im2col(x)` from the image `x`.
#[derive(Clone, Copy, PartialEq)]
enum Cols {
    None,
    /// in0 (`Op::ConvMatMul`).
    A(ConvGeom),
    /// in1 (`Op::ConvWeightGrad`).
    B(ConvGeom),
}

/// The [`Flags`] of `op`, or `None` when the kernel does not run it.
fn flags(op: Op) -> Option<Flags> {
    let plain = |trans_a, trans_b, bias, act| Flags {
        trans_a,
        trans_b,
        bias,
        act,
        cols: Cols::None,
    };
    match op {
        Op::MatMul { trans_a, trans_b } => Some(plain(trans_a, trans_b, false, None)),
        Op::MatMulBias { trans_a, trans_b } => Some(plain(trans_a, trans_b, true, None)),
        Op::MatMulBiasAct {
            trans_a,
            trans_b,
            act,
        } => Some(plain(trans_a, trans_b, true, Some(act.code()))),
        Op::ConvMatMul { geom, bias, act } => Some(Flags {
            cols: Cols::A(geom),
            ..plain(false, true, bias, act.map(|a| a.code()))
        }),
        Op::ConvWeightGrad(geom) => Some(Flags {
            cols: Cols::B(geom),
            ..plain(true, false, false, None)
        }),
        _ => None,
    }
}

/// The sizes of a matmul step (with or without a fused bias, which the autotuner treats as
/// the same problem: the epilogue is a few loads per output), or `None` for any other op.
/// The convolution products take theirs from the geometry and the operand bound whole
/// (the weight, or the weight gradient), since a split step's image is a flat range.
pub fn problem(step: &Step) -> Result<Option<MatmulProblem>> {
    let Some(f) = flags(step.op) else {
        return Ok(None);
    };
    match f.cols {
        Cols::A(g) => {
            let w = step
                .input_shapes
                .get(1)
                .ok_or_else(|| Error::Graph("conv product without a weight".into()))?;
            return Ok(Some(MatmulProblem {
                m: g.n * g.oh() * g.ow(),
                n: dim(w, 0, "weight")?,
                k: g.patch(),
            }));
        }
        Cols::B(g) => {
            return Ok(Some(MatmulProblem {
                m: dim(&step.shape, 0, "output")?,
                n: g.patch(),
                k: g.n * g.oh() * g.ow(),
            }));
        }
        Cols::None => {}
    }
    let a = step
        .input_shapes
        .first()
        .ok_or_else(|| Error::Graph("matmul without inputs".into()))?;
    let (m, k) = if f.trans_a {
        (dim(a, 1, "a")?, dim(a, 0, "a")?)
    } else {
        (dim(a, 0, "a")?, dim(a, 1, "a")?)
    };
    let n = dim(&step.shape, 1, "output")?;
    Ok(Some(MatmulProblem { m, n, k }))
}

/// Whether an operand whose contiguous dimension is `contiguous` can be read as vec4:
/// that dimension, the binding's offset and its length are all multiples of 4 floats.
fn vec4_ok(contiguous: usize, slot: Option<&Slot>) -> bool {
    slot.is_some_and(|s| {
        contiguous.is_multiple_of(4) && s.offset.is_multiple_of(4) && s.len.is_multiple_of(4)
    })
}

fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported(format!("dimension {v} exceeds u32")))
}

/// The launch of matmul step `step` (`MatMul`; `MatMulBias` through the bias entry points
/// with `HAS_BIAS` set; `MatMulBiasAct` as well with `HAS_ACT` and `ACT_KIND`) in
/// configuration `config` on a device with at most `max` workgroups per dimension.
pub fn launch(step: &Step, config: &MatmulConfig, max: u32) -> Result<Launch> {
    let Some(f) = flags(step.op) else {
        return Err(Error::Graph(format!("{} is not a matmul", step.op.name())));
    };
    let (trans_a, trans_b, bias, act) = (f.trans_a, f.trans_b, f.bias, f.act);
    let p = problem(step)?.ok_or_else(|| Error::Graph("not a matmul".into()))?;
    let tiles_n = p.n.div_ceil(config.tile_n() as usize).max(1);
    let tiles_m = p.m.div_ceil(config.tile_m() as usize).max(1);
    // An im2col operand is gathered a float at a time.
    let a4 = !matches!(f.cols, Cols::A(_))
        && vec4_ok(if trans_a { p.m } else { p.k }, step.inputs.first());
    let b4 = !matches!(f.cols, Cols::B(_))
        && vec4_ok(if trans_b { p.k } else { p.n }, step.inputs.get(1));
    let entry = match (bias, a4, b4) {
        (false, false, false) => "matmul",
        (false, true, false) => "matmul_a4",
        (false, false, true) => "matmul_b4",
        (false, true, true) => "matmul_a4b4",
        (true, false, false) => "matmul_bias",
        (true, true, false) => "matmul_bias_a4",
        (true, false, true) => "matmul_bias_b4",
        (true, true, true) => "matmul_bias_a4b4",
    };
    let groups = fold(tiles_m * tiles_n, max).map_err(|_| {
        Error::Unsupported(format!(
            "a {}x{} product in {} tiles needs {} workgroups, more than {max} x {max}",
            p.m,
            p.n,
            config.name,
            tiles_m * tiles_n
        ))
    })?;
    Ok(Launch {
        shader: config.shader,
        entry,
        constants: vec![
            ("TRANS_A", f64::from(u8::from(trans_a))),
            ("TRANS_B", f64::from(u8::from(trans_b))),
            ("HAS_BIAS", f64::from(u8::from(bias))),
            ("HAS_ACT", f64::from(u8::from(act.is_some()))),
            ("ACT_KIND", f64::from(act.unwrap_or(0))),
            ("COLS_A", f64::from(u8::from(matches!(f.cols, Cols::A(_))))),
            ("COLS_B", f64::from(u8::from(matches!(f.cols, Cols::B(_))))),
            ("ROUND_COLS", f64::from(u8::from(rounds_im2col(step)))),
            ("SPLIT_K", 0.0),
        ],
        dims: Dims {
            d: [u(p.m)?, u(p.n)?, u(p.k)?, 0],
            f: [0.0; 4],
            e: extra_dims(tiles_n, f.cols)?,
        },
        groups,
        needs_scalars: false,
    })
}

/// `e0` = tiles per row of the output, then the convolution's geometry in the layout
/// `shaders/matmul_im2col.wgsl` documents (e1..e11, dilation in e13 and e14; zeros for
/// plain products); `e12` stays 0 here, and
/// [`split_k::launches`](super::split_k::launches) sets it for a split product's parts.
fn extra_dims(tiles_n: usize, cols: Cols) -> Result<[u32; 16]> {
    let mut e = [0; 16];
    e[0] = u(tiles_n)?;
    if let Cols::A(g) | Cols::B(g) = cols {
        let geometry = [
            g.c,
            g.h,
            g.w,
            g.kh,
            g.kw,
            g.sh,
            g.sw,
            g.ph,
            g.pw,
            g.oh(),
            g.ow(),
        ];
        for (o, v) in e[1..12].iter_mut().zip(geometry) {
            *o = u(v)?;
        }
        e[13] = u(g.dh)?;
        e[14] = u(g.dw)?;
        // Offsets into the image are formed in u32 (up to the last pixel).
        u(g.n * g.c * g.h * g.w)?;
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ArenaKind, Slot};
    use crate::shape::Shape;

    fn slot(offset: usize, len: usize) -> Slot {
        Slot {
            arena: ArenaKind::Activations,
            offset,
            len,
        }
    }

    fn step(ta: bool, tb: bool, m: usize, n: usize, k: usize, offsets: [usize; 2]) -> Step {
        let a = if ta { vec![k, m] } else { vec![m, k] };
        let b = if tb { vec![n, k] } else { vec![k, n] };
        Step {
            op: Op::MatMul {
                trans_a: ta,
                trans_b: tb,
            },
            inputs: vec![slot(offsets[0], m * k), slot(offsets[1], k * n)],
            input_shapes: vec![Shape(a), Shape(b)],
            output: slot(4096, m * n),
            shape: Shape(vec![m, n]),
            node: 0,
        }
    }

    #[test]
    fn every_config_has_its_module_with_its_constants() {
        for c in CONFIGS {
            let (_, src) = super::super::shaders::ALL
                .iter()
                .find(|(name, _)| *name == c.shader)
                .unwrap_or_else(|| panic!("{} has no module {}", c.name, c.shader));
            assert!(src.contains(&c.wgsl_constants()), "{}", c.name);
            assert!(c.fits(&wgpu::Limits::default()), "{}", c.name);
        }
        assert!(CONFIGS.contains(&DEFAULT));
        let names: std::collections::BTreeSet<_> = CONFIGS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CONFIGS.len());
        assert_eq!(config_named(" 128X64 "), Some(CONFIGS[2]));
        assert_eq!(config_named("7x7"), None);
    }

    #[test]
    fn vec4_reads_need_a_contiguous_dimension_offset_and_length_of_multiples_of_four() {
        let max = 65_535;
        let entry = |s: &Step| launch(s, &DEFAULT, max).unwrap().entry;
        // a [8, 12] (k contiguous), b [12, 16] (n contiguous).
        assert_eq!(
            entry(&step(false, false, 8, 16, 12, [0, 128])),
            "matmul_a4b4"
        );
        // a's contiguous dimension is k = 6: scalar; b [6, 16] is still vec4.
        assert_eq!(entry(&step(false, false, 8, 16, 6, [0, 128])), "matmul_b4");
        // aᵀ: a is [K, M] with M = 8 contiguous; bᵀ: b is [N, K] with K = 6 contiguous.
        assert_eq!(entry(&step(true, true, 8, 16, 6, [0, 128])), "matmul_a4");
        // An offset that is not a multiple of 4 floats.
        assert_eq!(entry(&step(false, false, 8, 16, 12, [2, 128])), "matmul_b4");
        assert_eq!(entry(&step(false, false, 3, 5, 7, [0, 128])), "matmul");
    }

    #[test]
    fn a_fused_bias_is_the_same_problem_through_the_bias_entry_points() {
        let plain = step(false, true, 8, 16, 12, [0, 128]);
        let mut fused = plain.clone();
        fused.op = Op::MatMulBias {
            trans_a: false,
            trans_b: true,
        };
        fused.inputs.push(slot(2048, 16));
        fused.input_shapes.push(Shape(vec![16]));
        assert_eq!(problem(&fused).unwrap(), problem(&plain).unwrap());
        let (p, f) = (
            launch(&plain, &DEFAULT, 65_535).unwrap(),
            launch(&fused, &DEFAULT, 65_535).unwrap(),
        );
        assert_eq!((p.entry, f.entry), ("matmul_a4b4", "matmul_bias_a4b4"));
        assert!(f.constants.contains(&("HAS_BIAS", 1.0)));
        assert!(p.constants.contains(&("HAS_BIAS", 0.0)));
        assert!(f.constants.contains(&("HAS_ACT", 0.0)));
        assert_eq!((p.dims, p.groups), (f.dims, f.groups));
        // A fused activation: the bias entry points with HAS_ACT and the activation's code.
        let mut act = fused.clone();
        act.op = Op::MatMulBiasAct {
            trans_a: false,
            trans_b: true,
            act: crate::op::Activation::Tanh,
        };
        assert_eq!(problem(&act).unwrap(), problem(&plain).unwrap());
        let a = launch(&act, &DEFAULT, 65_535).unwrap();
        assert_eq!(a.entry, "matmul_bias_a4b4");
        assert!(a.constants.contains(&("HAS_BIAS", 1.0)));
        assert!(a.constants.contains(&("HAS_ACT", 1.0)));
        assert!(a.constants.contains(&("ACT_KIND", 3.0)));
        assert_eq!((p.dims, p.groups), (a.dims, a.groups));
    }

    #[test]
    fn tiles_are_counted_per_configuration_and_folded() {
        let s = step(false, false, 300, 70, 5, [0, 2048]);
        for c in CONFIGS {
            let l = launch(&s, c, 8).unwrap();
            let per_row = 70usize.div_ceil(c.tile_n() as usize);
            let tiles = per_row * 300usize.div_ceil(c.tile_m() as usize);
            assert_eq!(l.dims.e[0] as usize, per_row);
            assert_eq!(l.shader, c.shader);
            let (x, y) = l.groups;
            assert!(x <= 8 && y <= 8 && (x * y) as usize >= tiles, "{}", c.name);
        }
        // 95 tiles of 32x32 do not fit 8 x 8 workgroups; 10 of 128x128 do.
        let big = step(false, false, 600, 130, 5, [0, 2048]);
        assert!(launch(&big, &CONFIGS[0], 8).is_err());
        assert!(launch(&big, &CONFIGS[3], 8).is_ok());
    }
}
