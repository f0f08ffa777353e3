//! Loss and accuracy plots: the figure's content, both formats, `kiln plot` on a real log,
//! `kiln train --plot`, and errors for malformed logs.

mod common;

use common::kiln;

use std::path::{Path, PathBuf};

use kiln::report::plot::{self, Curves, EpochPoint, SeriesKind, StepPoint};

/// A fresh directory per test, so tests running in parallel never share files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Three epochs of two steps each, with a validation split.
fn known_curves() -> Curves {
    let epochs = (1..=3)
        .map(|e| EpochPoint {
            epoch: e,
            train_loss: 1.0 / e as f32,
            test_loss: 1.2 / e as f32,
            test_accuracy: 0.5 + 0.1 * e as f32,
            val_loss: Some(1.1 / e as f32),
            val_accuracy: Some(0.45 + 0.1 * e as f32),
        })
        .collect();
    let steps = (0..6)
        .map(|i| StepPoint {
            epoch: i / 2 + 1,
            loss: 1.5 - 0.2 * i as f32,
        })
        .collect();
    Curves {
        epochs,
        steps,
        steps_per_epoch: Some(2),
    }
}

/// The point counts of the SVG's data polylines: plotters draws axes and ticks as black
/// polylines, and kiln's legend swatches are rectangles, so the coloured ones are series.
fn series_point_counts(svg: &str) -> Vec<usize> {
    let mut counts: Vec<usize> = svg
        .split("<polyline")
        .skip(1)
        .map(|tag| &tag[..tag.find("/>").unwrap()])
        .filter(|tag| !tag.contains("stroke=\"#000000\""))
        .map(|tag| {
            let points = tag.split("points=\"").nth(1).unwrap();
            points[..points.find('"').unwrap()]
                .split_whitespace()
                .count()
        })
        .collect();
    counts.sort_unstable();
    counts
}

fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..];
            body[..body.find("</text>").unwrap()].trim().to_string()
        })
        .collect()
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    // The first chunk is IHDR: length (4 bytes), type (4), then width and height (big-endian).
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn svg_has_one_polyline_per_series_with_its_points_and_the_axis_labels() {
    let dir = scratch("svg");
    let path = dir.join("known.svg");
    let curves = known_curves();
    plot::draw(&curves, &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    let kinds: Vec<SeriesKind> = curves.series().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SeriesKind::StepLoss,
            SeriesKind::TrainLoss,
            SeriesKind::TestLoss,
            SeriesKind::ValLoss,
            SeriesKind::TestAccuracy,
            SeriesKind::ValAccuracy,
        ]
    );
    // Six step points, three epochs on each of the five epoch curves.
    assert_eq!(series_point_counts(&svg), [3, 3, 3, 3, 3, 6]);
    // One marker per epoch point.
    assert_eq!(svg.matches("<circle").count(), 15);

    let texts = texts(&svg);
    for label in ["Loss", "Accuracy", "epoch", "loss", "accuracy (%)"] {
        assert!(
            texts.iter().any(|t| t == label),
            "no '{label}' in {texts:?}"
        );
    }
    for kind in kinds {
        assert!(
            texts.iter().any(|t| t == kind.name()),
            "no legend entry '{}' in {texts:?}",
            kind.name()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn steps_end_where_their_epoch_is_plotted() {
    let series = known_curves().series();
    let steps: Vec<f64> = series[0].points.iter().map(|p| p.0).collect();
    assert_eq!(steps, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    let accuracy = &series[4].points;
    assert_eq!(accuracy[0].0, 1.0);
    assert!((accuracy[0].1 - 60.0).abs() < 1e-4, "percent: {accuracy:?}");
}

#[test]
fn non_finite_values_are_left_out() {
    let mut curves = known_curves();
    curves.epochs[1].test_loss = f32::NAN;
    let test_loss = curves
        .series()
        .into_iter()
        .find(|s| s.kind == SeriesKind::TestLoss)
        .unwrap();
    assert_eq!(test_loss.points.len(), 2);
    let dir = scratch("nan");
    plot::draw(&curves, &dir.join("nan.svg")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn png_starts_with_the_signature_and_has_the_requested_size() {
    let dir = scratch("png");
    let path = dir.join("known.png");
    plot::draw_with_size(&known_curves(), &path, (640, 360)).unwrap();
    assert_eq!(png_size(&path), (640, 360));
    plot::draw(&known_curves(), &path).unwrap();
    assert_eq!(png_size(&path), plot::DEFAULT_SIZE);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn other_extensions_and_tiny_sizes_are_refused() {
    let dir = scratch("ext");
    let err = plot::draw(&known_curves(), &dir.join("figure.pdf")).unwrap_err();
    assert!(err.to_string().contains(".svg or .png"), "{err}");
    let err = plot::draw_with_size(&known_curves(), &dir.join("f.png"), (10, 10)).unwrap_err();
    assert!(err.to_string().contains("10x10"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_line_is_an_error_naming_it() {
    let good = "{\"step\":1,\"epoch\":1,\"loss\":2.3,\"lr\":0.001}\n\n";
    for (bad, expected) in [
        ("{\"step\":2,\"epoch\":1,\"loss\":", "line 3:"),
        ("[1, 2]", "line 3: not a JSON object"),
        (
            "{\"epoch\":1,\"train_loss\":0.5}",
            "line 3: no \"test_loss\" field",
        ),
        (
            "{\"step\":2,\"epoch\":0,\"loss\":1.0}",
            "line 3: \"epoch\" must be",
        ),
        (
            "{\"step\":2,\"epoch\":1,\"loss\":\"high\"}",
            "line 3: \"loss\" is not a number",
        ),
    ] {
        let err = Curves::parse_log(&format!("{good}{bad}\n"), "run.jsonl").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("run.jsonl"), "{message}");
        assert!(message.contains(expected), "{bad}: {message}");
    }
    let err = Curves::parse_log("\n{\"other\":1}\n", "empty.jsonl").unwrap_err();
    assert!(
        err.to_string().contains("no epoch or step records"),
        "{err}"
    );

    // Through the command line: a clear error, exit status 1, no panic.
    let dir = scratch("malformed");
    let log = dir.join("bad.jsonl");
    std::fs::write(&log, format!("{good}not json\n")).unwrap();
    let (code, text) = kiln(&["plot", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!dir.join("bad.svg").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn null_metrics_and_unknown_records_are_accepted() {
    let log = "{\"epoch\":1,\"train_loss\":null,\"train_accuracy\":0.1,\"test_loss\":2.0,\"test_accuracy\":0.3,\"val_loss\":1.5,\"val_accuracy\":0.25,\"images_per_s\":10}\n{\"event\":\"restored\",\"epoch\":1}\n";
    let curves = Curves::parse_log(log, "run.jsonl").unwrap();
    assert_eq!(curves.epochs.len(), 1);
    assert!(curves.epochs[0].train_loss.is_nan());
    assert_eq!(curves.epochs[0].val_accuracy, Some(0.25));
}

#[test]
fn kiln_plot_draws_the_log_of_a_real_run() {
    let dir = scratch("cli");
    let log = dir.join("run.jsonl");
    // 256 images in batches of 64: four steps per epoch; six steps end mid-epoch 2.
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--limit",
        "256",
        "--batch-size",
        "64",
        "--epochs",
        "3",
        "--steps",
        "6",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");

    let (code, text) = kiln(&["plot", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let svg = std::fs::read_to_string(dir.join("run.svg")).unwrap();
    // Step losses (6), and train loss, test loss, test accuracy for epochs 1 and 2.
    assert_eq!(series_point_counts(&svg), [2, 2, 2, 6], "{text}");

    let png = dir.join("figure.png");
    let (code, text) = kiln(&[
        "plot",
        log.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--width",
        "800",
        "--height",
        "400",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(png_size(&png), (800, 400));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn train_plot_flag_writes_the_figure_and_refuses_bad_names_before_training() {
    let dir = scratch("train");
    let png = dir.join("train.png");
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--limit",
        "256",
        "--epochs",
        "2",
        "--val-split",
        "0.25",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(png_size(&png), plot::DEFAULT_SIZE);

    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--limit",
        "256",
        "--plot",
        dir.join("train.pdf").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(".svg or .png"), "{text}");
    assert!(
        !text.contains("epoch 1/"),
        "trained before refusing: {text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn validation_metrics_reach_the_log_and_the_figure() {
    let dir = scratch("val");
    let log = dir.join("run.jsonl");
    let svg = dir.join("run.svg");
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--steps",
        "3",
        "--val-split",
        "0.1",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let epoch = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("{\"epoch\":"))
        .map(str::to_string)
        .unwrap();
    assert!(
        epoch.contains("\"val_loss\":") && epoch.contains("\"val_accuracy\":"),
        "{epoch}"
    );
    let (code, text) = kiln(&["plot", log.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let labels = texts(&std::fs::read_to_string(&svg).unwrap());
    assert!(labels.iter().any(|t| t == "val accuracy"), "{labels:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
