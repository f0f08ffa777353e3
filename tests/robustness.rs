//! Bad input is a typed error whose message names the problem, never a panic: IDX data
//! (through the library and `kiln train/eval --data DIR`), configuration values, model
//! specs, and checkpoint files (truncated, corrupted, lying headers, wrong shapes).
//!
//! The format-level IDX errors (magic, element type, truncation, count mismatch, label
//! range, gzip, empty set) have unit tests next to the parser in `src/data`; here they are
//! checked end to end through the command line.

mod common;

use common::kiln;

use std::path::{Path, PathBuf};

use kiln::backend::cpu::CpuBackend;
use kiln::checkpoint::Checkpoint;
use kiln::data::{self, Batcher, Dataset, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use kiln::graph::Graph;
use kiln::nn::{Mode, Model, MAX_ELEMENTS};
use kiln::shape::Shape;
use kiln::train::{TrainConfig, Trainer};
use kiln::Error;

// ---------------------------------------------------------------------------------------
// Helpers.

/// A u8 IDX file with the given dims and payload (not checked against each other).
fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` images of `rows`x`cols` with labels `i % 10`, as an (images, labels) IDX pair.
fn idx_set(n: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (
        idx(&[n as u32, rows as u32, cols as u32], &pixels),
        idx(&[n as u32], &labels),
    )
}

/// A fresh, empty directory unique to this test and process.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-robust-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an MNIST-format directory: a train split of `train` = (n, rows, cols) (gzip) and
/// a test split of `test` (raw).
fn write_data_dir(dir: &Path, train: (usize, usize, usize), test: (usize, usize, usize)) {
    let (ti, tl) = idx_set(train.0, train.1, train.2);
    let (vi, vl) = idx_set(test.0, test.1, test.2);
    std::fs::write(dir.join(format!("{TRAIN_IMAGES}.gz")), gzip(&ti)).unwrap();
    std::fs::write(dir.join(format!("{TRAIN_LABELS}.gz")), gzip(&tl)).unwrap();
    std::fs::write(dir.join(TEST_IMAGES), vi).unwrap();
    std::fs::write(dir.join(TEST_LABELS), vl).unwrap();
}

/// Asserts a clean failure: exit code 1, an `error:` line holding every one of `needles`,
/// and no panic.
fn assert_cli_error(args: &[&str], needles: &[&str]) {
    let (code, text) = kiln(args);
    assert_eq!(code, 1, "{args:?}: {text}");
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {text}"));
    for n in needles {
        assert!(text.contains(n), "{args:?}: {n:?} not in {line:?}\n{text}");
    }
}

fn cpu_trainer(spec: &str, config: &TrainConfig) -> kiln::Result<Trainer> {
    Trainer::new(Box::new(CpuBackend::new()), spec, config)
}

fn small_config() -> TrainConfig {
    TrainConfig {
        batch_size: 16,
        epochs: 1,
        ..TrainConfig::default()
    }
}

fn config_message(result: kiln::Result<impl Sized>) -> String {
    match result {
        Err(Error::Config(m)) => m,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, got Ok"),
    }
}

fn data_message(result: kiln::Result<impl Sized>) -> (String, String) {
    match result {
        Err(Error::Data { path, message }) => (path, message),
        Err(other) => panic!("expected a data error, got {other:?}"),
        Ok(_) => panic!("expected a data error, got Ok"),
    }
}

// ---------------------------------------------------------------------------------------
// Images that do not fit the model.

/// A dataset of 14x14 images given to a trainer built for 28x28: fit, evaluate and the
/// detailed evaluation all refuse it with a shape error naming the dataset and both sizes.
#[test]
fn trainer_refuses_images_of_another_size() {
    let (images, labels) = idx_set(6, 14, 14);
    let small = Dataset::from_idx(&gzip(&images), &labels, "small").unwrap();
    let mut t = cpu_trainer("mlp", &small_config()).unwrap();
    let before = t.params().unwrap();
    let check = |r: kiln::Result<()>| match r {
        Err(Error::Shape { context, detail }) => {
            assert!(context.contains("dataset 'small'"), "{context}");
            assert!(detail.contains("14x14 = 196 values"), "{detail}");
            assert!(detail.contains("[1, 28, 28] (784 values)"), "{detail}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    };
    check(t.fit(&small, &small, &mut |_| {}).map(|_| ()));
    check(t.evaluate(&small).map(|_| ()));
    check(t.evaluate_detailed(&small).map(|_| ()));
    // The good test set does not rescue a bad training set, nor the reverse.
    let (_, test) = data::embedded().unwrap();
    let test = test.take(16).unwrap();
    check(t.fit(&small, &test, &mut |_| {}).map(|_| ()));
    check(t.fit(&test, &small, &mut |_| {}).map(|_| ()));
    assert_eq!(t.params().unwrap(), before, "nothing was trained");
    assert_eq!(t.steps(), 0);
}

/// `kiln train --data DIR` whose images are 14x14: the mlp preset's first layer wants 784
/// features, and the error names that layer and the shape the data gives.
#[test]
fn cli_train_refuses_data_of_another_image_size() {
    let dir = scratch("size");
    write_data_dir(&dir, (8, 14, 14), (4, 14, 14));
    let d = dir.to_str().unwrap();
    assert_cli_error(
        &["train", "--backend", "cpu", "--epochs", "1", "--data", d],
        &["layer 0 'linear(784,256)'", "[batch, 784]", "[1, 196]"],
    );
    // A model written for 14x14 trains on it (the directory itself is fine).
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--data",
        d,
        "--model",
        "linear(196,10)",
    ]);
    assert_eq!(code, 0, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Train images of 28x28 and test images of 14x14 in one directory: the test split is
/// named with both sizes.
#[test]
fn cli_train_refuses_test_split_of_another_image_size() {
    let dir = scratch("split-size");
    write_data_dir(&dir, (8, 28, 28), (4, 14, 14));
    let d = dir.to_str().unwrap();
    assert_cli_error(
        &["train", "--backend", "cpu", "--epochs", "1", "--data", d],
        &["(test)", "14x14 = 196 values", "(784 values)"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kiln eval` of a 28x28 model on a directory of 14x14 images names the first layer.
#[test]
fn cli_eval_refuses_data_of_another_image_size() {
    let dir = scratch("eval-size");
    write_data_dir(&dir, (8, 14, 14), (4, 14, 14));
    let ckpt = dir.join("mlp.safetensors");
    cpu_trainer("mlp", &small_config())
        .unwrap()
        .checkpoint()
        .unwrap()
        .write(&ckpt)
        .unwrap();
    assert_cli_error(
        &[
            "eval",
            "--backend",
            "cpu",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
        ],
        &["layer 0 'linear(784,256)'", "[1, 196]"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each malformed IDX file in a `--data` directory fails `kiln train` with the file's
/// path and what is wrong with it, and never panics.
#[test]
fn cli_names_the_malformed_idx_file_and_the_problem() {
    let (images, _) = idx_set(4, 3, 3);
    let mut bad_magic = images.clone();
    bad_magic[0] = 0x12;
    let mut f32_type = images.clone();
    f32_type[2] = 0x0D;
    let truncated = images[..images.len() - 5].to_vec();
    let mut not_gzip = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    not_gzip.extend_from_slice(&[0xff; 40]);
    let cut_gzip = {
        let g = gzip(&images);
        g[..g.len() / 2].to_vec()
    };
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "magic",
            TRAIN_IMAGES,
            bad_magic,
            "bad IDX magic: the first two bytes must be 0x00 0x00, found 0x12 0x00",
        ),
        (
            "type",
            TRAIN_IMAGES,
            f32_type,
            "IDX element type 0x0d (f32) is not supported",
        ),
        (
            "truncated",
            TRAIN_IMAGES,
            truncated,
            "need 36 bytes, found 31 (truncated)",
        ),
        ("gzip", TRAIN_IMAGES, not_gzip, "gzip data does not inflate"),
        (
            "cut-gzip",
            TRAIN_IMAGES,
            cut_gzip,
            "gzip data does not inflate",
        ),
        (
            "count",
            TRAIN_LABELS,
            idx(&[3], &[1, 2, 3]),
            "image/label count mismatch",
        ),
        (
            "label",
            TRAIN_LABELS,
            idx(&[4], &[1, 2, 10, 3]),
            "label 10 at index 2 is out of range: there are 10 classes (0..9)",
        ),
        (
            "empty",
            TRAIN_IMAGES,
            idx(&[0, 3, 3], &[]),
            "image/label count mismatch",
        ),
    ];
    for (name, file, bytes, problem) in cases {
        let dir = scratch(&format!("idx-{name}"));
        write_data_dir(&dir, (4, 3, 3), (4, 3, 3));
        // The raw file wins over the gzip one, so the bad bytes are what is read.
        std::fs::write(dir.join(file), bytes).unwrap();
        let d = dir.to_str().unwrap();
        let named = if name == "count" { TRAIN_IMAGES } else { file };
        assert_cli_error(
            &["train", "--backend", "cpu", "--epochs", "1", "--data", d],
            &[problem, named],
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // A completely empty pair (0 images, 0 labels) is refused as empty.
    let dir = scratch("idx-empty-pair");
    write_data_dir(&dir, (4, 3, 3), (4, 3, 3));
    std::fs::write(dir.join(TRAIN_IMAGES), idx(&[0, 3, 3], &[])).unwrap();
    std::fs::write(dir.join(TRAIN_LABELS), idx(&[0], &[])).unwrap();
    assert_cli_error(
        &["train", "--backend", "cpu", "--data", dir.to_str().unwrap()],
        &["dataset is empty (0 items)", "(train)"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Configuration.

#[test]
fn zero_batch_size_is_a_config_error() {
    let config = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    let m = config_message(config.validate());
    assert!(m.contains("batch size must be at least 1"), "{m}");
    let m = config_message(cpu_trainer("mlp", &config));
    assert!(m.contains("batch size must be at least 1"), "{m}");
    let (train, _) = data::embedded().unwrap();
    let m = config_message(Batcher::new(&train, 0, true, 0));
    assert!(m.contains("batch size must be at least 1"), "{m}");
    assert_cli_error(
        &["train", "--backend", "cpu", "--batch-size", "0"],
        &["invalid configuration: batch size must be at least 1"],
    );
}

/// Negative or non-finite learning rates are errors; 0 (and −0) is accepted, as
/// `torch.optim` accepts `0.0 <= lr`.
#[test]
fn negative_or_non_finite_learning_rates_are_config_errors() {
    for lr in [0.0f32, -0.0] {
        let config = TrainConfig {
            lr,
            ..TrainConfig::default()
        };
        assert!(config.validate().is_ok(), "{lr}");
    }
    for (lr, shown) in [
        (-1e-3, "got -0.001"),
        (f32::NAN, "got NaN"),
        (f32::INFINITY, "got inf"),
        (f32::NEG_INFINITY, "got -inf"),
    ] {
        let config = TrainConfig {
            lr,
            ..TrainConfig::default()
        };
        let m = config_message(config.validate());
        assert!(
            m.contains("learning rate must be >= 0 and finite") && m.contains(shown),
            "{lr}: {m}"
        );
        let m = config_message(cpu_trainer("mlp", &config));
        assert!(m.contains("learning rate"), "{lr}: {m}");
    }
    for lr in ["--lr=-1", "--lr=nan", "--lr=inf"] {
        assert_cli_error(
            &["train", "--backend", "cpu", lr],
            &["invalid configuration: learning rate must be >= 0 and finite"],
        );
    }
}

/// Specs that do not parse: a spec error whose position is where the problem is, whose
/// message says what it is, and whose display puts a caret under it.
#[test]
fn unparsable_specs_point_at_the_position() {
    let cases = [
        (
            "linear(784,256) relu",
            16,
            "expected ',' between layers, found 'r'",
        ),
        ("linear(784,256", 14, "unclosed '(' in layer 'linear'"),
        ("linear(784,,10)", 11, "empty argument"),
        (
            "linear(784,abc)",
            11,
            "'out_features' must be a positive integer, got 'abc'",
        ),
        ("linear(784,10),swish", 15, "unknown layer 'swish'"),
        ("relu,,relu", 5, "expected a layer name, found ','"),
        ("", 0, "expected a layer name, found the end of the spec"),
        (
            "relu,",
            5,
            "expected a layer name, found the end of the spec",
        ),
        ("dropout(p=1.5)", 0, "dropout p must be in [0, 1], got 1.5"),
        (
            "linear(784,10,bias=maybe)",
            19,
            "'bias' must be true or false, got 'maybe'",
        ),
        ("conv2d(1,8,3,stride=0)", 0, "'stride' must be positive"),
        (
            "linear(784,10,gamma=2)",
            20,
            "'linear' has no argument 'gamma'",
        ),
        ("relu(3)", 0, "'relu' takes at most 0 arguments"),
        (
            "linéar(784,10)",
            3,
            "expected ',' between layers, found 'é'",
        ),
        ("relu,é", 5, "expected a layer name, found 'é'"),
    ];
    for (spec, at, what) in cases {
        let err = match cpu_trainer(spec, &small_config()) {
            Err(e) => e,
            Ok(_) => panic!("{spec:?} was accepted"),
        };
        let shown = err.to_string();
        let Error::Spec {
            position, message, ..
        } = err
        else {
            panic!("{spec:?}: expected a spec error, got {shown}");
        };
        assert_eq!(position, at, "{spec:?}: {shown}");
        assert!(message.contains(what), "{spec:?}: {message}");
        // The caret sits under character `at` of the spec line (characters, not bytes).
        let lines: Vec<&str> = shown.lines().collect();
        let caret = lines.last().unwrap();
        let column = spec[..at].chars().count();
        assert_eq!(caret.trim_start().len(), 1, "{shown}");
        assert_eq!(caret.len() - 1, 2 + column, "{spec:?}:\n{shown}");
        assert!(lines.iter().any(|l| l.trim() == spec.trim()), "{shown}");
    }
    // On the command line, the caret is printed under the spec.
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--model",
        "linear(784,256) relu",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("model spec error at position 16: expected ',' between layers, found 'r'"),
        "{text}"
    );
    assert!(
        text.contains("  linear(784,256) relu\n                  ^"),
        "{text}"
    );
}

/// Layers whose shapes do not chain are shape errors naming the layer (index and text)
/// and the shapes involved.
#[test]
fn layers_that_do_not_chain_name_the_layer_and_shapes() {
    let cases = [
        (
            "conv2d(1,4,3),relu,flatten,linear(100,10)",
            "layer 3 'linear(100,10)'",
            "expects [batch, 100] but the layer before gives [1, 2704]",
        ),
        (
            "conv2d(1,4,3),linear(4,10)",
            "layer 1 'linear(4,10)'",
            "expects [batch, 4] but the layer before gives [1, 4, 26, 26]",
        ),
        (
            "conv2d(1,4,3),batchnorm2d(3)",
            "layer 1 'batchnorm2d(3)'",
            "expects [batch, 3, height, width] but the layer before gives [1, 4, 26, 26]",
        ),
        (
            "conv2d(1,4,3),maxpool2d(40)",
            "layer 1 'maxpool2d(40)'",
            "[batch, channels, >= 40, >= 40]",
        ),
        (
            "conv2d(1,4,29)",
            "layer 0 'conv2d(1,4,29)'",
            "an image of at least 29x29",
        ),
        (
            "linear(784,10),layernorm(12)",
            "layer 1 'layernorm(12)'",
            "a last dimension of 12",
        ),
    ];
    for (spec, layer, detail_part) in cases {
        match cpu_trainer(spec, &small_config()) {
            Err(Error::Shape { context, detail }) => {
                assert!(context.contains(layer), "{spec}: {context}");
                assert!(detail.contains(detail_part), "{spec}: {detail}");
            }
            Err(other) => panic!("{spec}: expected a shape error, got {other}"),
            Ok(_) => panic!("{spec}: accepted"),
        }
    }
}

/// Regression (found by `tests/fuzz.rs`): a batch norm of 2^63 channels after a layer of
/// as many made `s.numel() / (batch * c)` divide by a product that wrapped to zero, a
/// panic; sizes that overflow are now refused by name, as are sizes past `MAX_ELEMENTS`
/// and padding whose arithmetic wrapped into a model that seemed to build.
#[test]
fn oversized_layers_are_refused_by_name_not_by_panic() {
    let huge = "9223372036854775808";
    let mnist = [1, 28, 28];
    let cases = [
        // The fuzzer's minimal input: every width of 6 made 2^63, for 5 input features.
        (
            "linear(5,6),batchnorm1d(6),ReLU,linear(6,10),softmax".replace('6', huge),
            [1, 5, 1],
            "layer 0",
        ),
        (
            format!("linear(784,{huge}),batchnorm1d({huge})"),
            mnist,
            "layer 0",
        ),
        (
            format!("conv2d(1,{huge},1),batchnorm2d({huge})"),
            mnist,
            "layer 0",
        ),
        (
            "conv2d(1,1,3,padding=9223372036854775807)".to_string(),
            mnist,
            "layer 0",
        ),
        ("linear(784,1099511627777)".to_string(), mnist, "layer 0"),
        (
            "linear(784,1024),relu,linear(1024,1099511627)".to_string(),
            mnist,
            "layer 2",
        ),
        (
            "conv2d(1,65536,3),conv2d(65536,65536,16384,padding=8192)".to_string(),
            mnist,
            "layer 1",
        ),
    ];
    for (spec, sample, layer) in &cases {
        for batch in [1, 2, 4] {
            let model = Model::parse(spec).unwrap();
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[batch, sample.iter().product()]));
            match model.build(&mut g, x, *sample, Mode::Train) {
                Err(Error::Shape { context, detail }) => {
                    assert!(context.contains(layer), "{spec}: {context}: {detail}");
                    assert!(
                        detail.contains(&format!("would have more than {MAX_ELEMENTS} elements")),
                        "{spec}: {detail}"
                    );
                }
                Err(other) => panic!("{spec}: expected a shape error, got {other}"),
                Ok(_) => panic!("{spec} (batch {batch}) built"),
            }
        }
        let config = TrainConfig {
            sample: *sample,
            ..small_config()
        };
        assert!(
            matches!(cpu_trainer(spec, &config), Err(Error::Shape { .. })),
            "{spec}"
        );
    }
}

/// Regression: a spec within `MAX_ELEMENTS` but far beyond the machine's memory made the
/// parameter allocation abort the process; it is now an error that gives the size. Only
/// where Linux refuses such an allocation up front (heuristic or strict overcommit):
/// with `vm.overcommit_memory = 1` the allocation would succeed and fill memory.
#[test]
fn models_too_big_to_allocate_are_an_error() {
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if !matches!(mode.trim(), "0" | "2") {
        eprintln!("skipping: vm.overcommit_memory is {:?}", mode.trim());
        return;
    }
    // 784 x 10^9 weights: 2.9 TiB of f32, under MAX_ELEMENTS (4 TiB).
    match cpu_trainer(
        "linear(784,1000000000),relu,linear(1000000000,10)",
        &small_config(),
    ) {
        Err(Error::Unsupported(m)) => {
            assert!(m.contains("cannot be allocated"), "{m}");
            assert!(m.contains("GiB as f32"), "{m}");
        }
        Err(other) => panic!("expected an allocation error, got {other}"),
        Ok(_) => panic!("a 2.9 TiB model was allocated"),
    }
}

// ---------------------------------------------------------------------------------------
// Checkpoints.

/// A real kiln checkpoint (model tensors, Adam state, metadata) of a small CNN after two
/// steps, as bytes.
fn checkpoint_bytes() -> Vec<u8> {
    let spec = "conv2d(1,2,3,stride=2),batchnorm2d(2),relu,flatten,linear(338,10)";
    let mut t = cpu_trainer(spec, &small_config()).unwrap();
    let (train, _) = data::embedded().unwrap();
    let mut b = Batcher::new(&train, 16, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        b.next_batch(&mut x, &mut y).unwrap();
        t.train_batch(&x, &y).unwrap();
    }
    t.checkpoint().unwrap().to_bytes().unwrap()
}

fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Cut at every offset of the length field and the header and 300 seeded-random offsets
/// of the data: always a data error that says the file is truncated.
#[test]
fn truncated_checkpoints_are_refused_at_every_cut() {
    let bytes = checkpoint_bytes();
    assert!(Checkpoint::from_bytes(&bytes, "ck").is_ok());
    let data_start = 8 + header_len(&bytes);
    let mut cuts: Vec<usize> = (0..=data_start + 8).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        // xorshift64: reproducible offsets spread over the tensor data.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        cuts.push(data_start + (state as usize) % (bytes.len() - data_start));
    }
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        let (path, m) = data_message(Checkpoint::from_bytes(&bytes[..cut], "ck"));
        assert_eq!(path, "ck");
        assert!(m.contains("truncated"), "cut at {cut}: {m}");
        let expected = if cut < 8 {
            format!("file is {cut} bytes, shorter than the 8-byte header length field")
        } else if cut < data_start {
            format!(
                "header length field says {} bytes but only {} follow it",
                data_start - 8,
                cut - 8
            )
        } else {
            format!(
                "do not cover the {} bytes of tensor data exactly",
                cut - data_start
            )
        };
        assert!(m.contains(&expected), "cut at {cut}: {m}");
    }
}

/// A byte flipped anywhere in the tensor data of a file on disk fails the checksum, and
/// the error names the file.
#[test]
fn flipped_data_bytes_fail_the_checksum() {
    let bytes = checkpoint_bytes();
    let data_start = 8 + header_len(&bytes);
    let dir = scratch("flip");
    let path = dir.join("c.safetensors");
    let len = bytes.len();
    for at in [
        data_start,
        data_start + 1,
        (data_start + len) / 2,
        len - 9,
        len - 1,
    ] {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[at] ^= mask;
            std::fs::write(&path, &b).unwrap();
            let (p, m) = data_message(Checkpoint::read(&path));
            assert_eq!(p, path.display().to_string());
            assert!(
                m.contains("checksum mismatch") && m.contains("the file is corrupt"),
                "byte {at} ^ {mask:#x}: {m}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A safetensors file with `header` as its JSON header and `data` as its data.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Headers that lie about offsets, sizes or types: refused, each with its reason.
#[test]
fn lying_headers_are_refused_with_the_reason() {
    let f32s = |n: usize| vec![0u8; 4 * n];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "offsets past the end",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &f32s(2),
            ),
            "do not cover the 8 bytes of tensor data exactly",
        ),
        (
            "offsets near u64::MAX",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}}"#,
                &f32s(4),
            ),
            "do not span its shape times its element size",
        ),
        (
            "offsets that do not match the shape",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
                &f32s(4),
            ),
            "do not span its shape times its element size",
        ),
        (
            "overlapping tensors",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &f32s(3),
            ),
            "tensor 'b' has data_offsets that overlap another tensor",
        ),
        (
            "a gap between tensors",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                &f32s(3),
            ),
            "tensor 'b' has data_offsets that overlap another tensor, leave a gap",
        ),
        (
            "offsets that run backwards",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
                &f32s(2),
            ),
            "tensor 'w' has data_offsets",
        ),
        (
            "trailing bytes",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32s(2),
            ),
            "do not cover the 8 bytes of tensor data exactly",
        ),
        (
            "a shape that overflows",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                &f32s(1),
            ),
            "shape overflows",
        ),
        (
            "an unsupported dtype",
            safetensors(
                r#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
                &f32s(1),
            ),
            "tensor w is F16; kiln reads F32 and I64",
        ),
        (
            "another format",
            safetensors(
                r#"{"__metadata__":{"format":"kiln-checkpoint-0"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32s(1),
            ),
            "format 'kiln-checkpoint-0', expected 'kiln-checkpoint-1'",
        ),
        (
            "a checksum that does not match",
            safetensors(
                r#"{"__metadata__":{"format":"kiln-checkpoint-1","checksum":"00000000"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32s(1),
            ),
            "checksum mismatch (stored 00000000",
        ),
        (
            "a header that is not JSON",
            safetensors("{\"w\":", &[]),
            "invalid JSON in header",
        ),
    ];
    for (what, bytes, reason) in cases {
        let (path, m) = data_message(Checkpoint::from_bytes(&bytes, "ck"));
        assert_eq!(path, "ck", "{what}");
        assert!(m.contains(reason), "{what}: {m}");
    }
    // The header length field larger than the file, and absurdly large.
    let good = checkpoint_bytes();
    for declared in [good.len() as u64 - 7, good.len() as u64, u64::MAX] {
        let mut b = good.clone();
        b[..8].copy_from_slice(&declared.to_le_bytes());
        let (_, m) = data_message(Checkpoint::from_bytes(&b, "ck"));
        assert!(
            m.contains(&format!(
                "header length field says {declared} bytes but only {} follow it",
                good.len() - 8
            )),
            "{declared}: {m}"
        );
    }
    // Smaller than the header: the JSON is cut short.
    let mut b = good.clone();
    let n = header_len(&good) as u64 - 10;
    b[..8].copy_from_slice(&n.to_le_bytes());
    let (_, m) = data_message(Checkpoint::from_bytes(&b, "ck"));
    assert!(m.contains("invalid JSON in header"), "{m}");
}

/// A checkpoint whose tensor has the wrong shape for the model is refused, naming the
/// tensor and both shapes, and nothing is loaded: weights, optimizer state and counters
/// stay as they were, through `load_weights`, `resume` and `kiln train --init`.
#[test]
fn misshaped_tensors_are_never_loaded() {
    let spec = "linear(784,16),relu,linear(16,10)";
    let mut source = cpu_trainer(spec, &small_config()).unwrap();
    let (train, _) = data::embedded().unwrap();
    let mut b = Batcher::new(&train, 16, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    b.next_batch(&mut x, &mut y).unwrap();
    source.train_batch(&x, &y).unwrap();
    let good = source.checkpoint().unwrap();

    let config = TrainConfig {
        seed: 1,
        ..small_config()
    };
    let mut t = cpu_trainer(spec, &config).unwrap();
    let params = t.params().unwrap();
    let state = t.backend_mut().read_state(0).unwrap();
    let unchanged = |t: &mut Trainer| {
        assert_eq!(t.params().unwrap(), params, "weights were loaded");
        assert_eq!(t.backend_mut().read_state(0).unwrap(), state);
        assert_eq!(t.steps(), 0);
    };

    // A transposed weight: as many values, the wrong shape.
    let mut wrong = good.clone();
    for t in &mut wrong.tensors {
        if t.name == "0.weight" {
            t.shape = vec![784, 16];
        }
    }
    let (_, m) = data_message(t.load_weights(&wrong, "f"));
    assert!(
        m.contains("wrong shape: 0.weight is [784, 16] in the file, the model has [16, 784]"),
        "{m}"
    );
    unchanged(&mut t);
    let (_, m) = data_message(t.resume(&wrong, "f"));
    assert!(m.contains("0.weight is [784, 16]"), "{m}");
    unchanged(&mut t);

    // Regression: a tensor whose values do not fill its shape (possible in memory) made
    // `copy_from_slice` panic.
    let mut short = good.clone();
    for t in &mut short.tensors {
        if t.name == "2.bias" {
            t.data.pop();
        }
    }
    let (_, m) = data_message(t.load_weights(&short, "f"));
    assert!(
        m.contains("2.bias has 9 values for its shape [10], which needs 10"),
        "{m}"
    );
    unchanged(&mut t);

    // Optimizer state of the wrong shape: refused before the weights are written.
    let mut state_wrong = good.clone();
    for t in &mut state_wrong.tensors {
        if t.name == "optim.state0.0.weight" {
            t.shape = vec![784, 16];
        }
    }
    let (_, m) = data_message(t.resume(&state_wrong, "f"));
    assert!(
        m.contains("optim.state0.0.weight is [784, 16] with 12544 values, the model's parameter is [16, 784]"),
        "{m}"
    );
    unchanged(&mut t);

    // Metadata that lies: refused before anything changes.
    for (key, value, reason) in [
        ("step", "-1", "metadata 'step' is not a number: '-1'"),
        ("step", "4294967296", "metadata 'step' is past u32::MAX"),
        ("epoch", "x", "metadata 'epoch' is not a number: 'x'"),
        ("scheduler.lr", "0.5", "restore"),
    ] {
        let mut lying = good.clone();
        lying.metadata.insert(key.into(), value.into());
        let m = match t.resume(&lying, "f") {
            Err(Error::Data { message, .. }) | Err(Error::Config(message)) => message,
            other => panic!("{key}={value}: expected an error, got {other:?}"),
        };
        assert!(m.contains(reason), "{key}={value}: {m}");
        unchanged(&mut t);
    }
    // The good checkpoint still resumes after all that.
    t.resume(&good, "f").unwrap();
    assert_eq!(t.steps(), 1);
    assert_eq!(t.params().unwrap(), source.params().unwrap());

    // From the command line: --init with a mis-shaped file.
    let dir = scratch("init-shape");
    let file = dir.join("wrong.safetensors");
    wrong.write(&file).unwrap();
    assert_cli_error(
        &[
            "train",
            "--backend",
            "cpu",
            "--model",
            spec,
            "--init",
            file.to_str().unwrap(),
        ],
        &[
            "wrong shape: 0.weight is [784, 16] in the file",
            "wrong.safetensors",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regression: a checkpoint whose data position (`batch_in_epoch`) lies past the end of
/// the epoch made `fit` skip that many batches one by one (a hang for a large number);
/// it is now refused, and so is a position beyond the training set of this run.
#[test]
fn resume_position_past_the_epoch_is_refused() {
    let spec = "linear(784,10)";
    let mut source = cpu_trainer(spec, &small_config()).unwrap();
    let good = source.checkpoint().unwrap();
    let (train, test) = data::embedded().unwrap();
    let (train, test) = (train.take(64).unwrap(), test.take(16).unwrap());
    for position in ["4", "1000000000000000000"] {
        let mut lying = good.clone();
        lying
            .metadata
            .insert("batch_in_epoch".into(), position.into());
        let mut t = cpu_trainer(spec, &small_config()).unwrap();
        t.resume(&lying, "f").unwrap();
        let m = config_message(t.fit(&train, &test, &mut |_| {}));
        assert!(
            m.contains(&format!(
                "resumes after batch {position} of epoch 1, which has only 4 batches"
            )),
            "{m}"
        );
        assert_eq!(t.steps(), 0);
    }
    // An epoch counter at the end of the range is not an overflow.
    let mut done = good.clone();
    done.metadata.insert("epoch".into(), usize::MAX.to_string());
    let mut t = cpu_trainer(spec, &small_config()).unwrap();
    t.resume(&done, "f").unwrap();
    assert!(t.fit(&train, &test, &mut |_| {}).unwrap().is_empty());
}

/// Corrupt checkpoint files on the command line: `--init`, `--resume` and `eval` name
/// the file and the problem, and never panic.
#[test]
fn cli_names_corrupt_checkpoint_files() {
    let dir = scratch("cli-ckpt");
    let bytes = checkpoint_bytes();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let flipped = dir.join("flipped.safetensors");
    let mut b = bytes.clone();
    let last = b.len() - 2;
    b[last] ^= 0x10;
    std::fs::write(&flipped, &b).unwrap();
    let missing = dir.join("missing.safetensors");
    let c = cut.to_str().unwrap();
    let f = flipped.to_str().unwrap();
    let spec = "conv2d(1,2,3,stride=2),batchnorm2d(2),relu,flatten,linear(338,10)";
    for (args, needles) in [
        (
            vec!["train", "--backend", "cpu", "--model", spec, "--init", c],
            vec!["cut.safetensors", "truncated"],
        ),
        (
            vec!["train", "--backend", "cpu", "--model", spec, "--resume", f],
            vec!["flipped.safetensors", "checksum mismatch"],
        ),
        (
            vec!["eval", "--backend", "cpu", "--checkpoint", c],
            vec!["cut.safetensors", "truncated"],
        ),
        (
            vec!["export", "--checkpoint", f, "--out", "/dev/null"],
            vec!["flipped.safetensors", "checksum mismatch"],
        ),
        (
            vec![
                "eval",
                "--backend",
                "cpu",
                "--checkpoint",
                missing.to_str().unwrap(),
            ],
            vec!["I/O error on", "missing.safetensors"],
        ),
    ] {
        assert_cli_error(&args, &needles);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
