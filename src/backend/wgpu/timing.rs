//! Device time of compiled plans and of buffer copies, for `kiln bench`. With
//! `TIMESTAMP_QUERY` (requested by `context.rs` whenever the adapter has it) every call is
//! its own compute pass with timestamps written at its start and end, all calls in one
//! submit; without it (or with `KILN_BENCH_CLOCK=wall`), each call is timed by the wall
//! clock around its submit and a wait.

use std::time::Instant;

use super::WgpuBackend;
use crate::backend::PlanId;
use crate::error::{Error, Result};

/// How a time was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries at the start and end of each call's pass.
    GpuTimestamps,
    /// Wall clock (around a submit and a wait on the GPU; around the call on the CPU).
    Wall,
}

impl Clock {
    /// The name printed in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "gpu-timestamps",
            Clock::Wall => "wall",
        }
    }
}

/// Seconds per call of a repeated measurement, in call order.
#[derive(Clone, Debug, PartialEq)]
pub struct Timings {
    /// One entry per call.
    pub seconds: Vec<f64>,
    /// How they were taken.
    pub clock: Clock,
}

/// Timestamp pairs per submit: wgpu allows 4096 queries per set.
const MAX_PAIRS: usize = 1024;

impl WgpuBackend {
    /// Whether this device writes timestamp queries (pass-level timing).
    pub fn has_timestamps(&self) -> bool {
        self.context()
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The clock [`Self::time_plan`] and [`Self::time_copy`] use: timestamps when the
    /// device has them, unless `KILN_BENCH_CLOCK=wall` asks for the wall clock (to compare
    /// the two, and to exercise the fallback on devices that have timestamps).
    pub fn bench_clock(&self) -> Clock {
        let wall = std::env::var("KILN_BENCH_CLOCK").is_ok_and(|v| v.eq_ignore_ascii_case("wall"));
        if self.has_timestamps() && !wall {
            Clock::GpuTimestamps
        } else {
            Clock::Wall
        }
    }

    /// Times `calls` executions of compiled plan `id` (its dispatches and its optimizer
    /// update, on the inputs and scalars of the last [`crate::backend::Backend::run`],
    /// which must have happened so that they are on the device).
    pub fn time_plan(&self, id: PlanId, clip_by_norm: bool, calls: usize) -> Result<Timings> {
        self.time_calls(calls, &mut |encoder, writes| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kiln bench"),
                timestamp_writes: writes,
            });
            self.record_plan(id, clip_by_norm, &mut pass)
        })
    }

    /// Times `calls` copies of `bytes` bytes (a multiple of 4) from one buffer to another:
    /// the device's bandwidth ceiling (each copy reads and writes `bytes`).
    pub fn time_copy(&self, bytes: u64, calls: usize) -> Result<Timings> {
        let ctx = self.context();
        let make = |label| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let (src, dst) = ctx.scoped("allocating the copy benchmark's buffers", || {
            (make("kiln bench copy src"), make("kiln bench copy dst"))
        })?;
        // Timestamps only come from passes: an empty pass ends just before the copy and
        // another begins just after it (both written when the work before them is done).
        let mut one = |encoder: &mut wgpu::CommandEncoder,
                       writes: Option<wgpu::ComputePassTimestampWrites<'_>>|
         -> Result<()> {
            let (before, after) = match &writes {
                Some(w) => (
                    Some(wgpu::ComputePassTimestampWrites {
                        query_set: w.query_set,
                        beginning_of_pass_write_index: None,
                        end_of_pass_write_index: w.beginning_of_pass_write_index,
                    }),
                    Some(wgpu::ComputePassTimestampWrites {
                        query_set: w.query_set,
                        beginning_of_pass_write_index: w.end_of_pass_write_index,
                        end_of_pass_write_index: None,
                    }),
                ),
                None => (None, None),
            };
            if before.is_some() {
                drop(encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("kiln bench copy start"),
                    timestamp_writes: before,
                }));
            }
            encoder.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
            if after.is_some() {
                drop(encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("kiln bench copy end"),
                    timestamp_writes: after,
                }));
            }
            Ok(())
        };
        // The first use of a buffer clears it; keep that out of the measurement.
        self.submit_and_wait(&mut |e| one(e, None))?;
        if self.bench_clock() == Clock::GpuTimestamps {
            return self.time_calls(calls, &mut one);
        }
        // Without timestamps, all copies go in one submit so its overhead is shared.
        let start = Instant::now();
        self.submit_and_wait(&mut |e| {
            for _ in 0..calls.max(1) {
                one(e, None)?;
            }
            Ok(())
        })?;
        let each = start.elapsed().as_secs_f64() / calls.max(1) as f64;
        Ok(Timings {
            seconds: vec![each; calls.max(1)],
            clock: Clock::Wall,
        })
    }

    /// Encodes one submit with `record`, submits it and waits.
    fn submit_and_wait(
        &self,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        let ctx = self.context();
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("kiln bench"),
            });
        record(&mut encoder)?;
        ctx.scoped("a benchmark submit", || {
            ctx.queue.submit([encoder.finish()]);
        })?;
        ctx.wait("a benchmark submit")
    }

    /// Runs `record` once per call; it records one call into the encoder, writing the
    /// given timestamps (when there are any) at the call's start and end.
    fn time_calls(
        &self,
        calls: usize,
        record: &mut dyn FnMut(
            &mut wgpu::CommandEncoder,
            Option<wgpu::ComputePassTimestampWrites<'_>>,
        ) -> Result<()>,
    ) -> Result<Timings> {
        let calls = calls.max(1);
        if self.bench_clock() == Clock::Wall {
            let mut seconds = Vec::with_capacity(calls);
            for _ in 0..calls {
                let ctx = self.context();
                let mut encoder =
                    ctx.device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("kiln bench"),
                        });
                record(&mut encoder, None)?;
                let commands = encoder.finish();
                let start = Instant::now();
                ctx.scoped("a benchmark submit", || {
                    ctx.queue.submit([commands]);
                })?;
                ctx.wait("a benchmark submit")?;
                seconds.push(start.elapsed().as_secs_f64());
            }
            return Ok(Timings {
                seconds,
                clock: Clock::Wall,
            });
        }
        let mut seconds = Vec::with_capacity(calls);
        let mut left = calls;
        while left > 0 {
            let n = left.min(MAX_PAIRS);
            seconds.extend(self.timestamped_batch(n, record)?);
            left -= n;
        }
        Ok(Timings {
            seconds,
            clock: Clock::GpuTimestamps,
        })
    }

    /// `n` calls in one submit, each bracketed by a pair of timestamps; their durations.
    fn timestamped_batch(
        &self,
        n: usize,
        record: &mut dyn FnMut(
            &mut wgpu::CommandEncoder,
            Option<wgpu::ComputePassTimestampWrites<'_>>,
        ) -> Result<()>,
    ) -> Result<Vec<f64>> {
        let ctx = self.context();
        let queries = 2 * n as u32;
        let bytes = u64::from(queries) * 8;
        let (set, resolved, staging) = ctx.scoped("creating timestamp queries", || {
            let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kiln bench timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: queries,
            });
            let buffer = |label, usage| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let resolved = buffer(
                "kiln bench timestamps resolved",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let staging = buffer(
                "kiln bench timestamps read",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            (set, resolved, staging)
        })?;
        self.submit_and_wait(&mut |encoder| {
            for i in 0..n as u32 {
                record(
                    encoder,
                    Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
                )?;
            }
            encoder.resolve_query_set(&set, 0..queries, &resolved, 0);
            encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
            Ok(())
        })?;
        let ticks = read_u64(self, &staging)?;
        let period_ns = f64::from(ctx.queue.get_timestamp_period());
        Ok(ticks
            .chunks_exact(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * period_ns * 1e-9)
            .collect())
    }
}

/// Maps a `MAP_READ` buffer whose work has completed and reads it as u64s.
fn read_u64(backend: &WgpuBackend, staging: &wgpu::Buffer) -> Result<Vec<u64>> {
    let ctx = backend.context();
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait("reading timestamps")?;
    rx.recv()
        .map_err(|e| Error::gpu("reading timestamps", e))?
        .map_err(|e| Error::gpu("mapping timestamps", e))?;
    let ticks = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu("mapping timestamps", e))?;
        view.chunks_exact(8)
            .map(|b| {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                u64::from_le_bytes(word)
            })
            .collect()
    };
    staging.unmap();
    Ok(ticks)
}
