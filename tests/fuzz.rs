//! Property-based fuzzing of the three readers of untrusted input: the IDX parser
//! (`parse_idx`, `maybe_gunzip`, `Dataset::from_idx`), the model-spec parser (`parse_spec`,
//! `Model::parse` and building the model into a graph) and the checkpoint reader
//! (`Checkpoint::from_bytes`). Each is fed random bytes and mutations (truncation, byte
//! flips, insertions, deletions, lying sizes) of valid inputs; every input must give `Ok`
//! or the typed error of that reader, never a panic, and every valid input must give `Ok`.
//!
//! Each target runs proptest's default 256 cases, a few seconds in all; set the standard
//! `PROPTEST_CASES` variable for a long run (`PROPTEST_CASES=200000 cargo test --release
//! --test fuzz -- --nocapture` prints the inputs tried and the time of each target).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kiln::checkpoint::{Checkpoint, IntTensor, Tensor};
use kiln::data::{maybe_gunzip, parse_idx, Dataset};
use kiln::graph::Graph;
use kiln::nn::{parse_spec, Mode, Model};
use kiln::shape::Shape;
use kiln::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `check` on inputs drawn from `strategy`, as many as `PROPTEST_CASES` says (256 by
/// default), and reports how many inputs were tried and how long it took. A panic inside
/// `check` is caught by proptest, shrunk to a minimal input and fails the test.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    // The default reads PROPTEST_CASES; failures print their minimal input instead of
    // writing a regressions file.
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let tried = AtomicU64::new(0);
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |input| {
        tried.fetch_add(1, Ordering::Relaxed);
        check(input)
    });
    eprintln!(
        "fuzz {name}: {} inputs tried in {:.2} s ({cases} cases asked), {}",
        tried.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        if result.is_ok() {
            "no panic, every error typed"
        } else {
            "FAILED"
        }
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// Fails the case unless `result` is `Ok` or an error accepted by `typed`.
fn ok_or_typed<T>(
    what: &str,
    result: kiln::Result<T>,
    typed: impl Fn(&Error) -> bool,
) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if typed(&e) && !e.to_string().is_empty() => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!(
            "{what}: unexpected error variant {e:?}"
        ))),
    }
}

fn is_data(e: &Error) -> bool {
    matches!(e, Error::Data { .. })
}

// ---------------------------------------------------------------------------------------
// Mutations of byte strings.

/// One edit of a byte string; positions are taken modulo the length at the time.
#[derive(Clone, Debug)]
enum Mutation {
    /// Keep only the first `n % (len + 1)` bytes.
    Truncate(usize),
    /// XOR one byte with a non-zero mask.
    Flip(usize, u8),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove up to `n` bytes.
    Delete(usize, usize),
    /// Overwrite 4 bytes with a (big-endian) size that is often a lie.
    Size32(usize, u32),
    /// Overwrite 8 bytes with a (little-endian) size that is often a lie.
    Size64(usize, u64),
}

fn interesting_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(255),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(u32::MAX),
        0u32..64,
        any::<u32>(),
    ]
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(u64::MAX - 7),
        Just(1 << 63),
        Just(100_000_001),
        0u64..4096,
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), interesting_u32()).prop_map(|(i, v)| Mutation::Size32(i, v)),
        (any::<usize>(), interesting_u64()).prop_map(|(i, v)| Mutation::Size64(i, v)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 0..4)
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Truncate(n) => bytes.truncate(n % (len + 1)),
        Mutation::Flip(i, mask) if len > 0 => bytes[i % len] ^= mask,
        Mutation::Insert(i, b) => {
            let at = i % (len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let at = i % len;
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Size32(i, v) if len >= 4 => {
            let at = i % (len - 3);
            bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Size64(i, v) if len >= 8 => {
            // Half the time at the very start: the safetensors header-length field.
            let at = if i % 2 == 0 { 0 } else { i % (len - 7) };
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        _ => {}
    }
}

fn mutated(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        apply(&mut bytes, m);
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// IDX files.

fn idx_bytes(type_byte: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_byte, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec");
    enc.finish().expect("finishing a gzip stream into a Vec")
}

/// Random bytes, and random bytes behind an IDX or gzip header, so the parsers get past
/// their first check often.
fn idx_noise() -> impl Strategy<Value = Vec<u8>> {
    let bytes = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        bytes.clone(),
        (any::<u8>(), 0u8..5, bytes.clone()).prop_map(|(t, nd, rest)| {
            let mut b = vec![0, 0, t, nd];
            b.extend(rest);
            b
        }),
        bytes.clone().prop_map(|rest| {
            let mut b = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
            b.extend(rest);
            b
        }),
        bytes.prop_map(|rest| gzip(&rest)),
    ]
}

/// A valid MNIST-format pair: (images file, labels file, n, rows, cols, pixels, labels),
/// each file raw or gzip.
#[derive(Clone, Debug)]
struct IdxPair {
    images: Vec<u8>,
    labels: Vec<u8>,
    dims: (usize, usize, usize),
    pixels: Vec<u8>,
    classes: Vec<u8>,
}

fn idx_pair() -> impl Strategy<Value = IdxPair> {
    (
        1usize..6,
        1usize..6,
        1usize..6,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(n, rows, cols, gz_images, gz_labels)| {
            (
                prop::collection::vec(any::<u8>(), n * rows * cols),
                prop::collection::vec(0u8..10, n),
                Just((n, rows, cols, gz_images, gz_labels)),
            )
        })
        .prop_map(|(pixels, classes, (n, rows, cols, gz_images, gz_labels))| {
            let images = idx_bytes(0x08, &[n as u32, rows as u32, cols as u32], &pixels);
            let labels = idx_bytes(0x08, &[n as u32], &classes);
            IdxPair {
                images: if gz_images { gzip(&images) } else { images },
                labels: if gz_labels { gzip(&labels) } else { labels },
                dims: (n, rows, cols),
                pixels,
                classes,
            }
        })
}

fn check_idx(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some(arr) = ok_or_typed("parse_idx", parse_idx(bytes, "f"), is_data)? {
        let n = arr.dims.iter().product::<usize>();
        prop_assert_eq!(arr.data.len(), n, "dims {:?}", arr.dims);
    }
    ok_or_typed("maybe_gunzip", maybe_gunzip(bytes, "f"), is_data)?;
    Ok(())
}

fn check_dataset(images: &[u8], labels: &[u8]) -> Result<(), TestCaseError> {
    if let Some(d) = ok_or_typed(
        "Dataset::from_idx",
        Dataset::from_idx(images, labels, "d"),
        is_data,
    )? {
        prop_assert!(d.len > 0);
        prop_assert_eq!(d.labels.len(), d.len);
        prop_assert_eq!(d.images.len(), d.len * d.rows * d.cols);
        prop_assert!(d.labels.iter().all(|&l| usize::from(l) < d.classes));
    }
    Ok(())
}

#[test]
fn fuzz_idx_random_bytes() {
    fuzz("idx/random-bytes", (idx_noise(), idx_noise()), |(a, b)| {
        check_idx(&a)?;
        check_dataset(&a, &b)
    });
}

#[test]
fn fuzz_idx_mutated_files() {
    fuzz(
        "idx/mutated-files",
        (idx_pair(), mutations(), mutations()),
        |(pair, mi, ml)| {
            if mi.is_empty() && ml.is_empty() {
                // A valid pair reads back exactly.
                let d = Dataset::from_idx(&pair.images, &pair.labels, "d")
                    .map_err(|e| TestCaseError::fail(format!("valid pair refused: {e}")))?;
                prop_assert_eq!((d.len, d.rows, d.cols), pair.dims);
                prop_assert_eq!(&d.images, &pair.pixels);
                prop_assert_eq!(&d.labels, &pair.classes);
            }
            let images = mutated(pair.images, &mi);
            let labels = mutated(pair.labels, &ml);
            check_idx(&images)?;
            check_idx(&labels)?;
            check_dataset(&images, &labels)
        },
    );
}

// ---------------------------------------------------------------------------------------
// Model specs.

/// Tokens of the spec language, some of them wrong, for text that gets past the lexer.
const TOKENS: &[&str] = &[
    "linear",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "flatten",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "groupnorm",
    "instancenorm2d",
    "affine",
    "dropout",
    "dropout2d",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "elu",
    "selu",
    "relu6",
    "hardtanh",
    "min_val",
    "hardsigmoid",
    "hardswish",
    "softplus",
    "beta",
    "mish",
    "prelu",
    "adaptiveavgpool2d",
    "adaptivemaxpool2d",
    "ceil_mode",
    "count_include_pad",
    "softmax",
    "logsoftmax",
    "residual",
    "residual(",
    "shortcut=(",
    "shortcut",
    "swish",
    "(",
    ")",
    ",",
    "=",
    " ",
    "\t",
    "(3,5)",
    "(,)",
    "((",
    "))",
    "0",
    "1",
    "2",
    "3",
    "10",
    "784",
    "-1",
    "0.5",
    "1e-5",
    "nan",
    "inf",
    "true",
    "false",
    "maybe",
    "p",
    "bias",
    "stride",
    "padding",
    "kernel_size",
    "dilation",
    "groups",
    "in_features",
    "out_features",
    "num_features",
    "eps",
    "momentum",
    "dim",
    "negative_slope",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "4294967296",
    "1099511627777",
    "é",
    "日本",
    "\u{0}",
];

/// Numbers that stress size arithmetic, for replacing a number of a valid spec.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "1.5",
    "1e3",
    "nan",
    "65536",
    "4294967296",
    "1099511627776",
    "1099511627777",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
];

fn spec_noise() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.concat()),
    ]
}

/// A valid spec whose layers chain for `sample` = [c, h, w], built from `picks`.
fn chained_spec(sample: [usize; 3], picks: &[u8]) -> String {
    let mut picks = picks.iter().copied().chain(std::iter::repeat(0));
    let mut pick = |n: u8| usize::from(picks.next().unwrap_or(0) % n);
    let [mut c, mut h, mut w] = sample;
    let mut layers: Vec<String> = Vec::new();
    let activation = |k: usize| {
        [
            "relu",
            "tanh",
            "sigmoid",
            "gelu",
            "leaky_relu(0.2)",
            "ReLU",
            "silu",
            "elu(alpha=0.5)",
            "selu",
            "relu6",
            "hardtanh(-2,2)",
            "hardswish",
            "hardsigmoid",
            "softplus(beta=2)",
            "mish",
            "prelu",
        ][k % 16]
            .to_string()
    };
    if pick(2) == 0 {
        for _ in 0..pick(3) {
            let oc = 1 + pick(4);
            let padding = pick(2);
            let k = (1 + pick(3)).min(h + 2 * padding).min(w + 2 * padding);
            let stride = 1 + pick(2);
            let variant = pick(4);
            // A dilation whose window still fits: d·(k − 1) + 1 ≤ the padded size.
            let room = (h + 2 * padding).min(w + 2 * padding) - 1;
            let dilation = match (variant, k) {
                (2 | 3, 2..) => (1 + pick(3)).min(room / (k - 1)),
                _ => 1,
            };
            let reach = dilation * (k - 1) + 1;
            // Variant 2 is depthwise (groups = c, a channel multiplier of 1 or 2).
            let oc = if variant == 2 { c * (1 + pick(2)) } else { oc };
            layers.push(match variant {
                0 => format!("conv2d({c},{oc},{k},stride={stride},padding={padding})"),
                1 => format!("Conv2d({c}, {oc}, kernel_size=({k},{k}), padding=({padding},{padding}), stride={stride}, bias=false)"),
                2 => format!("conv2d({c},{oc},{k},{stride},{padding},{dilation},{c},true)"),
                _ => format!("conv2d(in_channels={c},out_channels={oc},kernel_size={k},stride=({stride},{stride}),padding={padding},dilation=({dilation},{dilation}))"),
            });
            h = (h + 2 * padding - reach) / stride + 1;
            w = (w + 2 * padding - reach) / stride + 1;
            c = oc;
            match pick(4) {
                0 => layers.push(format!("batchnorm2d({c})")),
                1 => layers.push(format!("groupnorm({c},{c},eps=1e-3)")),
                // Instance norm refuses one value per channel in training, as PyTorch.
                2 if h * w > 1 => layers.push(format!("instancenorm2d({c},affine=True)")),
                _ => {}
            }
            if pick(4) == 0 {
                layers.push(format!("dropout2d(p=0.{})", pick(10)));
            }
            layers.push(activation(pick(16)));
            if pick(3) == 0 {
                let shortcut = match pick(3) {
                    0 => format!(",shortcut=(conv2d({c},{c},1,bias=false),batchnorm2d({c}))"),
                    _ => String::new(),
                };
                layers.push(format!(
                    "residual(conv2d({c},{c},3,padding=1),{}{shortcut})",
                    activation(pick(16))
                ));
            }
            let k = 1 + pick(2);
            if h >= k && w >= k {
                match pick(3) {
                    0 => layers.push(format!("maxpool2d({k})")),
                    1 => layers.push(format!("avgpool2d({k},stride=1)")),
                    _ => continue,
                }
                let s = if layers.last().is_some_and(|l| l.contains("stride=1")) {
                    1
                } else {
                    k
                };
                h = (h - k) / s + 1;
                w = (w - k) / s + 1;
            }
        }
        layers.push("flatten".into());
    }
    let mut features = c * h * w;
    for _ in 0..pick(3) {
        let m = 1 + pick(8);
        layers.push(if pick(2) == 0 {
            format!("linear({features},{m})")
        } else {
            format!("linear( {features} , {m}, bias = False )")
        });
        features = m;
        match pick(6) {
            0 => layers.push(format!("dropout(p=0.{})", pick(10))),
            1 => layers.push(format!("layernorm({features})")),
            2 => layers.push(format!("batchnorm1d({features})")),
            4 => layers.push(format!("groupnorm(1,{features},affine=false)")),
            3 => layers.push(format!(
                "residual(linear({features},{features}),{}, residual(dropout(0.5)), \
                 shortcut = (linear({features},{features},bias=false)))",
                activation(pick(16))
            )),
            _ => {}
        }
        layers.push(activation(pick(16)));
    }
    layers.push(format!("linear({features},10)"));
    match pick(8) {
        0 | 1 => layers.push("softmax".into()),
        2 => layers.push("logsoftmax(dim=1)".into()),
        _ => {}
    }
    layers.join(if pick(2) == 0 { "," } else { ", " })
}

/// (sample, batch, spec) with a valid spec for that sample.
fn valid_spec() -> impl Strategy<Value = ([usize; 3], usize, String)> {
    (
        1usize..4,
        1usize..9,
        1usize..9,
        1usize..4,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(c, h, w, batch, picks)| {
            let sample = [c, h, w];
            (sample, batch, chained_spec(sample, &picks))
        })
}

/// One edit of a spec's text.
#[derive(Clone, Debug)]
enum SpecEdit {
    /// Cut at a character.
    Truncate(usize),
    /// Remove a character.
    Delete(usize),
    /// Insert a token before a character.
    Insert(usize, &'static str),
    /// Replace the number around a character with a stressful one.
    Number(usize, &'static str),
    /// Replace every occurrence of the number around a character with a stressful one, so
    /// that layers still chain and the size arithmetic behind the shape checks runs.
    Width(usize, &'static str),
    /// Repeat the text from a character on, joined by a comma.
    Repeat(usize),
}

fn spec_edit() -> impl Strategy<Value = SpecEdit> {
    prop_oneof![
        any::<usize>().prop_map(SpecEdit::Truncate),
        any::<usize>().prop_map(SpecEdit::Delete),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| SpecEdit::Insert(i, t)),
        (any::<usize>(), prop::sample::select(NUMBERS)).prop_map(|(i, n)| SpecEdit::Number(i, n)),
        (any::<usize>(), prop::sample::select(NUMBERS)).prop_map(|(i, n)| SpecEdit::Width(i, n)),
        any::<usize>().prop_map(SpecEdit::Repeat),
    ]
}

fn edit_spec(spec: &str, e: &SpecEdit) -> String {
    let mut chars: Vec<char> = spec.chars().collect();
    let len = chars.len();
    match e {
        SpecEdit::Truncate(i) => chars.truncate(i % (len + 1)),
        SpecEdit::Delete(i) if len > 0 => {
            chars.remove(i % len);
        }
        SpecEdit::Insert(i, t) => {
            let at = i % (len + 1);
            chars.splice(at..at, t.chars());
        }
        SpecEdit::Number(i, n) | SpecEdit::Width(i, n) => {
            // The runs of digits; the i-th (modulo how many there are) is the target.
            let mut runs = Vec::new();
            let mut k = 0;
            while k < len {
                if chars[k].is_ascii_digit() {
                    let start = k;
                    while k < len && chars[k].is_ascii_digit() {
                        k += 1;
                    }
                    runs.push(start..k);
                } else {
                    k += 1;
                }
            }
            if runs.is_empty() {
                return spec.to_string();
            }
            let target = runs[i % runs.len()].clone();
            let value: Vec<char> = chars[target.clone()].to_vec();
            let chosen: Vec<std::ops::Range<usize>> = if matches!(e, SpecEdit::Width(..)) {
                runs.into_iter()
                    .filter(|r| chars[r.clone()] == value[..])
                    .collect()
            } else {
                vec![target]
            };
            // Right to left, so earlier ranges stay valid.
            for r in chosen.into_iter().rev() {
                chars.splice(r, n.chars());
            }
        }
        SpecEdit::Repeat(i) => {
            let tail: Vec<char> = chars[i % (len + 1)..].to_vec();
            chars.push(',');
            chars.extend(tail);
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// Parses `spec` and builds it in both modes for a batch of `sample`s; a spec error must
/// point inside the spec, a build error must be a shape error naming a layer or the input.
fn check_spec(spec: &str, sample: [usize; 3], batch: usize) -> Result<bool, TestCaseError> {
    let is_spec = |e: &Error| match e {
        Error::Spec { position, .. } => *position <= spec.len(),
        _ => false,
    };
    let layers = ok_or_typed("parse_spec", parse_spec(spec), is_spec)?;
    let Some(model) = ok_or_typed("Model::parse", Model::parse(spec), |e| {
        matches!(e, Error::Spec { .. })
    })?
    else {
        return Ok(false);
    };
    prop_assert!(layers.is_some() || kiln::nn::PRESETS.contains(&spec.trim()));
    let mut all_built = true;
    for mode in [Mode::Train, Mode::Eval] {
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[batch, sample.iter().product()]));
        let built = ok_or_typed(
            "Model::build",
            model.build(&mut g, x, sample, mode),
            |e| matches!(e, Error::Shape { context, .. } if context.contains("layer") || context.contains("input")),
        )?;
        all_built &= built.is_some();
    }
    Ok(all_built)
}

#[test]
fn fuzz_spec_random_text() {
    fuzz(
        "spec/random-text",
        (spec_noise(), 1usize..4, 1usize..30, 1usize..30),
        |(spec, c, h, batch)| {
            check_spec(&spec, [c, h, h], batch)?;
            check_spec(&spec, [1, 28, 28], batch)?;
            Ok(())
        },
    );
}

#[test]
fn fuzz_spec_mutated_specs() {
    fuzz(
        "spec/mutated-specs",
        (valid_spec(), prop::collection::vec(spec_edit(), 0..4)),
        |((sample, batch, spec), edits)| {
            prop_assert!(
                check_spec(&spec, sample, batch)?,
                "valid spec {:?} for {:?} did not build",
                spec,
                sample
            );
            let mut text = spec;
            for e in &edits {
                text = edit_spec(&text, e);
            }
            check_spec(&text, sample, batch)?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Checkpoints.

const NAMES: &[&str] = &[
    "0.weight",
    "0.bias",
    "1.running_mean",
    "1.running_var",
    "optim.state0.0.weight",
    "x",
    "",
    "é",
];

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    let shape = prop::collection::vec(0usize..4, 0..4);
    let tensor = (prop::sample::select(NAMES), shape.clone()).prop_flat_map(|(name, shape)| {
        let n = shape.iter().product::<usize>();
        prop::collection::vec(-1e6f32..1e6, n).prop_map(move |data| Tensor {
            name: name.to_string(),
            shape: shape.clone(),
            data,
        })
    });
    let int = (prop::sample::select(NAMES), shape).prop_flat_map(|(name, shape)| {
        let n = shape.iter().product::<usize>();
        prop::collection::vec(any::<i64>(), n).prop_map(move |data| IntTensor {
            name: format!("{name}.num_batches_tracked"),
            shape: shape.clone(),
            data,
        })
    });
    let meta = prop::collection::btree_map("[a-z.]{1,12}", ".{0,16}", 0..4);
    (
        prop::collection::vec(tensor, 0..4),
        prop::collection::vec(int, 0..2),
        meta,
    )
        .prop_map(|(tensors, ints, metadata)| {
            // Names are unique in a file, and the reader returns tensors in name order.
            let mut c = Checkpoint {
                tensors,
                ints,
                metadata,
            };
            c.tensors.sort_by(|a, b| a.name.cmp(&b.name));
            c.tensors.dedup_by(|a, b| a.name == b.name);
            c.ints.sort_by(|a, b| a.name.cmp(&b.name));
            c.ints.dedup_by(|a, b| a.name == b.name);
            c.tensors
                .retain(|t| !c.ints.iter().any(|i| i.name == t.name));
            c.metadata.remove("format");
            c.metadata.remove("checksum");
            c
        })
}

/// A safetensors-shaped file: a length field (true or not), a JSON header built from
/// random tensor entries, and random data.
fn safetensors_noise() -> impl Strategy<Value = Vec<u8>> {
    let dtype = prop::sample::select(&["F32", "I64", "F16", "U8", "BOOL", "F4", "X", ""][..]);
    let number = prop_oneof![0u64..64, interesting_u64()];
    let entry = (
        prop::sample::select(NAMES),
        dtype,
        prop::collection::vec(number.clone(), 0..4),
        (number.clone(), number),
    )
        .prop_map(|(name, dtype, shape, (a, b))| {
            format!("\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{a},{b}]}}")
        });
    (
        prop::collection::vec(entry, 0..4),
        prop::option::of(".{0,12}"),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::of(interesting_u64()),
    )
        .prop_map(|(entries, meta, data, length)| {
            let mut fields = entries;
            if let Some(m) = meta {
                fields.push(format!(
                    "\"__metadata__\":{{\"format\":\"kiln-checkpoint-1\",\"checksum\":{m:?}}}"
                ));
            }
            let header = format!("{{{}}}", fields.join(","));
            let n = length.unwrap_or(header.len() as u64);
            let mut b = n.to_le_bytes().to_vec();
            b.extend_from_slice(header.as_bytes());
            b.extend(data);
            b
        })
}

fn check_checkpoint(bytes: &[u8]) -> Result<Option<Checkpoint>, TestCaseError> {
    let ckpt = ok_or_typed(
        "Checkpoint::from_bytes",
        Checkpoint::from_bytes(bytes, "c"),
        is_data,
    )?;
    if let Some(c) = &ckpt {
        for t in &c.tensors {
            prop_assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
        for t in &c.ints {
            prop_assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
    }
    Ok(ckpt)
}

#[test]
fn fuzz_checkpoint_random_bytes() {
    fuzz(
        "checkpoint/random-bytes",
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            safetensors_noise(),
            safetensors_noise(),
        ],
        |bytes| check_checkpoint(&bytes).map(|_| ()),
    );
}

#[test]
fn fuzz_checkpoint_mutated_files() {
    fuzz(
        "checkpoint/mutated-files",
        (checkpoint(), mutations()),
        |(ckpt, ms)| {
            let bytes = ckpt
                .to_bytes()
                .map_err(|e| TestCaseError::fail(format!("to_bytes: {e}")))?;
            let back = check_checkpoint(&bytes)?;
            prop_assert_eq!(back.as_ref(), Some(&ckpt), "a valid file must read back");
            // Where the tensor data starts: a byte flipped there must fail the checksum.
            let data_start =
                8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
            let single_flip = match ms.as_slice() {
                [Mutation::Flip(i, _)] if bytes.len() > data_start => i % bytes.len() >= data_start,
                _ => false,
            };
            let out = check_checkpoint(&mutated(bytes, &ms))?;
            if single_flip {
                prop_assert!(out.is_none(), "a flipped data byte was not caught");
            }
            Ok(())
        },
    );
}
