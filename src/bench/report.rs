//! A benchmark run's results: the ceilings, each row as a fraction of them, and the two
//! ways of printing it (a table for people, one JSON document for machines).

use serde_json::{json, Value};

use super::{BenchResult, Group};
use crate::backend::wgpu::Clock;
use crate::precision::Precision;

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The backend's description (device, driver, threads).
    pub device: String,
    /// "cpu" or "gpu".
    pub backend: &'static str,
    /// Whether the GPU is a software adapter (its figures are not performance claims).
    pub software: bool,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// The precision op and step rows ran in.
    pub precision: Precision,
    /// The clock op rows were timed with.
    pub clock: Clock,
    /// The rows, the ceilings first.
    pub rows: Vec<BenchResult>,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// `n` with a metric suffix: 1M, 10M, 2.5k.
pub fn count(n: usize) -> String {
    let f = n as f64;
    let (v, s) = if f >= 1e9 {
        (f / 1e9, "G")
    } else if f >= 1e6 {
        (f / 1e6, "M")
    } else if f >= 1e3 {
        (f / 1e3, "k")
    } else {
        (f, "")
    };
    if v.fract() == 0.0 {
        format!("{v:.0}{s}")
    } else {
        format!("{v:.2}{s}")
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

impl Report {
    /// The bandwidth ceiling: GB/s of the copy row.
    pub fn bandwidth_gbps(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.group == Group::Ceiling && r.name.starts_with("copy"))
            .and_then(BenchResult::gbps)
    }

    /// The compute ceiling: the best matmul GFLOP/s of this run.
    pub fn compute_gflops(&self) -> Option<f64> {
        self.rows
            .iter()
            .filter(|r| r.name.starts_with("matmul"))
            .filter_map(BenchResult::gflops)
            .filter(|g| g.is_finite())
            .reduce(f64::max)
    }

    /// A row's GFLOP/s as a fraction of the compute ceiling.
    pub fn fraction_of_compute(&self, r: &BenchResult) -> Option<f64> {
        Some(r.gflops()? / self.compute_gflops()?)
    }

    /// A row's GB/s as a fraction of the bandwidth ceiling.
    pub fn fraction_of_bandwidth(&self, r: &BenchResult) -> Option<f64> {
        Some(r.gbps()? / self.bandwidth_gbps()?)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "device: {}\nprecision: {}\nclock: {}{}\nceilings: {} GB/s (copy), {} GFLOP/s (best matmul)\n",
            self.device,
            self.precision,
            self.clock.name(),
            if self.software {
                " (software adapter: correctness only, not performance figures)"
            } else {
                ""
            },
            opt(self.bandwidth_gbps(), 1),
            opt(self.compute_gflops(), 1),
        );
        s.push_str(&format!(
            "{:<8} {:<28} {:<44} {:>11} {:>9} {:>8} {:>7} {:>7} {:>9}\n",
            "group", "op", "shape", "ms/call", "GFLOP/s", "GB/s", "%FLOP", "%BW", "images/s"
        ));
        for r in &self.rows {
            let pct = |f: Option<f64>| opt(f.map(|x| 100.0 * x), 1);
            s.push_str(&format!(
                "{:<8} {:<28} {:<44} {:>11.4} {:>9} {:>8} {:>7} {:>7} {:>9}\n",
                r.group.name(),
                r.name,
                r.shape,
                r.seconds * 1e3,
                opt(r.gflops(), 1),
                opt(r.gbps(), 1),
                pct(self.fraction_of_compute(r)),
                pct(self.fraction_of_bandwidth(r)),
                opt(r.images_per_s(), 0),
            ));
        }
        for why in &self.skipped {
            s.push_str(&format!("skipped: {why}\n"));
        }
        s
    }

    /// One JSON document: the device, the ceilings and every row with its derived figures.
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "group": r.group.name(),
                    "op": r.name,
                    "shape": r.shape,
                    "seconds": r.seconds,
                    "ms": r.seconds * 1e3,
                    "calls": r.calls,
                    "clock": r.clock.name(),
                    "flops": r.flops,
                    "gflops": r.gflops(),
                    "bytes": r.bytes,
                    "gbps": r.gbps(),
                    "fraction_of_compute": self.fraction_of_compute(r),
                    "fraction_of_bandwidth": self.fraction_of_bandwidth(r),
                    "images": r.images,
                    "images_per_s": r.images_per_s(),
                })
            })
            .collect();
        json!({
            "device": self.device,
            "backend": self.backend,
            "software_adapter": self.software,
            "quick": self.quick,
            "precision": self.precision.to_string(),
            "clock": self.clock.name(),
            "ceilings": {
                "bandwidth_gbps": self.bandwidth_gbps(),
                "compute_gflops": self.compute_gflops(),
            },
            "rows": rows,
            "skipped": self.skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        group: Group,
        name: &str,
        seconds: f64,
        flops: Option<f64>,
        bytes: Option<f64>,
    ) -> BenchResult {
        BenchResult {
            group,
            name: name.into(),
            shape: "s".into(),
            seconds,
            calls: 3,
            clock: Clock::Wall,
            flops,
            bytes,
            images: None,
        }
    }

    #[test]
    fn fractions_are_of_the_copy_and_the_best_matmul() {
        let r = Report {
            device: "d".into(),
            backend: "cpu",
            software: false,
            quick: true,
            precision: Precision::F32,
            clock: Clock::Wall,
            rows: vec![
                row(Group::Ceiling, "copy (memcpy)", 1.0, None, Some(20e9)),
                row(Group::Matmul, "matmul", 1.0, Some(100e9), Some(1e9)),
                row(Group::Matmul, "matmul_tb", 1.0, Some(50e9), None),
                row(Group::Softmax, "softmax", 0.5, None, Some(5e9)),
            ],
            skipped: vec![],
        };
        assert_eq!(r.bandwidth_gbps(), Some(20.0));
        assert_eq!(r.compute_gflops(), Some(100.0));
        assert_eq!(r.fraction_of_compute(&r.rows[2]), Some(0.5));
        assert_eq!(r.fraction_of_bandwidth(&r.rows[3]), Some(0.5));
        let j = r.to_json();
        assert_eq!(j["rows"][3]["gbps"], 10.0);
        assert!(r.table().contains("softmax"));
        assert_eq!(count(1_000_000), "1M");
        assert_eq!(count(100_000_000), "100M");
    }
}
