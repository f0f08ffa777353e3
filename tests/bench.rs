//! `kiln bench all --quick --json` on the CPU backend and on the GPU (lavapipe in CI): one
//! JSON document whose every row has a positive, finite time and derived figures that
//! agree with it (GFLOP/s = FLOPs / time, GB/s = bytes / time, fractions of the ceilings).
//! No timing assertions: these are smoke tests of the suite and of its arithmetic.

use std::process::Command;

use serde_json::Value;

/// Runs the quick suite on `backend`; `None` when the GPU has no adapter outside CI.
fn quick_suite(backend: &str) -> Option<Value> {
    quick(backend, "all", &[])
}

/// Runs `kiln bench WHAT --quick --json` on `backend` with `env` set.
fn quick(backend: &str, what: &str, env: &[(&str, &str)]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bench", what, "--quick", "--json", "--backend", backend])
        // Matmul autotuning (a one-off of seconds per device) is not what is tested here.
        .env("KILN_TUNE", "off")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if backend == "gpu" && !out.status.success() && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED bench on gpu: {stderr}");
        return None;
    }
    assert!(out.status.success(), "{stdout}{stderr}");
    // One document, nothing else on stdout.
    Some(serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn check(report: &Value) {
    let rows = report["rows"].as_array().unwrap();
    let bandwidth = num(&report["ceilings"], "bandwidth_gbps").unwrap();
    let compute = num(&report["ceilings"], "compute_gflops").unwrap();
    assert!(bandwidth > 0.0 && compute > 0.0, "{report}");
    let mut best_matmul = 0.0f64;
    for r in rows {
        let s = num(r, "seconds").unwrap();
        assert!(s.is_finite() && s > 0.0, "{r}");
        assert!(close(num(r, "ms").unwrap(), s * 1e3), "{r}");
        assert!(r["calls"].as_u64().unwrap() >= 1, "{r}");
        assert!(r["clock"].is_string(), "{r}");
        if let Some(flops) = num(r, "flops") {
            let gflops = num(r, "gflops").unwrap();
            assert!(flops > 0.0 && close(gflops, flops / s / 1e9), "{r}");
            assert!(
                close(num(r, "fraction_of_compute").unwrap(), gflops / compute),
                "{r}"
            );
            if r["op"].as_str().unwrap().starts_with("matmul") {
                best_matmul = best_matmul.max(gflops);
            }
        } else {
            assert!(
                r["gflops"].is_null() && r["fraction_of_compute"].is_null(),
                "{r}"
            );
        }
        if let Some(bytes) = num(r, "bytes") {
            let gbps = num(r, "gbps").unwrap();
            assert!(bytes > 0.0 && close(gbps, bytes / s / 1e9), "{r}");
            assert!(
                close(num(r, "fraction_of_bandwidth").unwrap(), gbps / bandwidth),
                "{r}"
            );
        }
        if let Some(images) = num(r, "images") {
            assert!(close(num(r, "images_per_s").unwrap(), images / s), "{r}");
        }
    }
    assert!(close(best_matmul, compute), "{best_matmul} vs {compute}");

    let find = |op: &str, shape: &str| {
        rows.iter()
            .find(|r| {
                r["op"].as_str().unwrap().starts_with(op)
                    && r["shape"].as_str().unwrap().contains(shape)
            })
            .unwrap_or_else(|| panic!("no row {op} {shape} in {report}"))
    };
    // The counts themselves: 2·n³ for a square product, 2·M·N·K for a training product,
    // copies counted as read plus write, AdamW's seven arena passes.
    assert_eq!(
        num(find("matmul", "256³"), "flops"),
        Some(2.0 * 256f64.powi(3))
    );
    let mlp_first = find("matmul_tb", "mlp [8,784]·[256,784]ᵀ");
    assert_eq!(num(mlp_first, "flops"), Some(2.0 * 8.0 * 784.0 * 256.0));
    assert_eq!(
        num(mlp_first, "bytes"),
        Some(4.0 * (8.0 * 784.0 + 256.0 * 784.0 + 8.0 * 256.0))
    );
    let copy = find("copy", "MiB");
    assert!(
        close(num(copy, "fraction_of_bandwidth").unwrap(), 1.0),
        "{copy}"
    );
    assert_eq!(num(find("adamw update", "1M"), "bytes"), Some(28e6));
    for (op, shape) in [
        ("conv forward", "conv2d(1,32,3,padding=1)"),
        ("conv backward (dw, db, dx)", "conv2d(32,64,3,padding=1)"),
        ("softmax", "[128,1024]"),
        ("softmax_grad", "[128,10]"),
        ("layer_norm", "[128,1024]"),
        ("layer_norm_grad", "[128,1024]"),
        ("batch_norm_train", "[128,1024]"),
        ("batch_norm_grad", "[128,1024]"),
    ] {
        find(op, shape);
    }
    for (spec, floats) in [("mlp", 8 * (256 + 128 + 10)), ("cnn", 8 * 32 * 28 * 28)] {
        let step = find(&format!("train step {spec}"), "batch 8, ");
        assert!(num(step, "images_per_s").unwrap() > 0.0, "{step}");
        // The activation arena: at least the layers' outputs (floats of 4 bytes).
        let shape = step["shape"].as_str().unwrap();
        let memory = shape
            .split(", ")
            .nth(1)
            .and_then(|s| s.strip_suffix(" of activations"))
            .and_then(|s| s.split_once(' '))
            .and_then(|(n, unit)| {
                let scale = match unit {
                    "kB" => 1e3,
                    "MB" => 1e6,
                    "GB" => 1e9,
                    _ => return None,
                };
                n.parse::<f64>().ok().map(|n| n * scale)
            })
            .unwrap_or_else(|| panic!("no activation memory in {shape}"));
        assert!(memory >= 4.0 * floats as f64, "{spec}: {shape}");
    }
}

#[test]
fn bench_quick_cpu_reports_consistent_rows() {
    let report = quick_suite("cpu").unwrap();
    assert_eq!(report["backend"], "cpu");
    check(&report);
}

#[test]
fn bench_quick_gpu_reports_consistent_rows() {
    if let Some(report) = quick_suite("gpu") {
        assert_eq!(report["backend"], "gpu");
        check(&report);
    }
}

/// Without timestamps (forced here with `KILN_BENCH_CLOCK=wall`), GPU calls are timed by
/// the wall clock around a submit and a wait, copies included.
#[test]
fn bench_quick_gpu_wall_clock_fallback() {
    if let Some(report) = quick("gpu", "softmax", &[("KILN_BENCH_CLOCK", "wall")]) {
        assert_eq!(report["clock"], "wall");
        let rows = report["rows"].as_array().unwrap();
        assert!(rows.iter().all(|r| r["clock"] == "wall"), "{report}");
        assert!(rows.iter().any(|r| r["op"] == "softmax_grad"), "{report}");
        for r in rows {
            let s = num(r, "seconds").unwrap();
            assert!(s.is_finite() && s > 0.0, "{r}");
        }
    }
}

/// `--precision f16`: the matmul rows read f16 operands and write f16 outputs, so their
/// bytes are half the f32 rows'; the FLOPs are the same.
#[test]
fn bench_f16_counts_half_the_bytes() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "bench",
            "matmul",
            "--quick",
            "--json",
            "--backend",
            "cpu",
            "--precision",
            "f16",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["precision"], "f16");
    let rows = report["rows"].as_array().unwrap();
    let square = rows
        .iter()
        .find(|r| r["shape"] == "256³")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(num(square, "flops"), Some(2.0 * 256f64.powi(3)));
    assert_eq!(num(square, "bytes"), Some(2.0 * 3.0 * 256.0 * 256.0));
}
