//! The CPU's bandwidth ceiling: a large memcpy split over every thread of the pool.

use std::time::Instant;

use rayon::prelude::*;

use super::engine::{median, Budget};

/// Median seconds of copying `bytes` bytes (rounded down to whole f32s) from one buffer
/// to another on all threads, after a first copy that faults the pages in, and the
/// number of timed copies.
pub fn cpu_copy(bytes: usize, budget: Budget) -> (f64, usize) {
    let n = (bytes / 4).max(1);
    let src: Vec<f32> = (0..n).map(|i| (i % 1024) as f32).collect();
    let mut dst = vec![0.0f32; n];
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads);
    let copy = |dst: &mut [f32]| {
        let start = Instant::now();
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        start.elapsed().as_secs_f64()
    };
    let first = copy(&mut dst);
    let calls = budget.calls(first);
    let times: Vec<f64> = (0..calls).map(|_| copy(&mut dst)).collect();
    std::hint::black_box(&dst);
    (median(&times), calls)
}
