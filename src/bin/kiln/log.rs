//! `--log FILE`: one JSON object per line, per step and per epoch.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use kiln::train::Event;
use kiln::{Error, Result};

/// A JSON-lines writer of training events.
pub struct JsonLog {
    out: BufWriter<File>,
    path: String,
}

/// A JSON number (the shortest decimal that reads back as the value), or null for NaN and
/// infinities, which JSON cannot hold.
fn num<T: std::fmt::Display + Into<f64> + Copy>(v: T) -> String {
    if v.into().is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

impl JsonLog {
    /// Creates (truncates) the log file.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(JsonLog {
            out: BufWriter::new(file),
            path: path.display().to_string(),
        })
    }

    /// Writes the line for an event (start and batch events have none).
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let line = match event {
            Event::Step {
                step,
                epoch,
                loss,
                lr,
                grad_norm,
            } => {
                let norm =
                    grad_norm.map_or(String::new(), |g| format!(",\"grad_norm\":{}", num(g)));
                format!(
                    "{{\"step\":{step},\"epoch\":{epoch},\"loss\":{},\"lr\":{}{norm}}}",
                    num(*loss),
                    num(*lr)
                )
            }
            Event::EpochEnd(r) => {
                // Validation metrics only with --val-split, so `kiln plot` can draw them.
                let val = match (r.val_loss, r.val_accuracy) {
                    (Some(l), Some(a)) => {
                        format!(",\"val_loss\":{},\"val_accuracy\":{}", num(l), num(a))
                    }
                    _ => String::new(),
                };
                let scale = r.loss_scale.map_or(String::new(), |s| {
                    format!(
                        ",\"loss_scale\":{},\"skipped_steps\":{}",
                        num(s.scale),
                        s.skipped
                    )
                });
                format!(
                    "{{\"epoch\":{},\"train_loss\":{},\"train_accuracy\":{},\"test_loss\":{},\"test_accuracy\":{},\"images_per_s\":{}{val}{scale}}}",
                    r.epoch,
                    num(r.train_loss),
                    num(r.train_accuracy),
                    num(r.test_loss),
                    num(r.test_accuracy),
                    num(r.images_per_s)
                )
            }
            _ => return Ok(()),
        };
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}
