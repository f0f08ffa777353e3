//! The CPU backend runs its plans with subnormal numbers flushed to zero, as GPUs commonly
//! run f32 arithmetic.
//!
//! Why: x86 cores take a microcode assist, on the order of a hundred cycles, for each
//! operation that reads or produces a subnormal. Training makes them steadily: Adam's
//! moments of a weight whose gradient is always zero (a first-layer weight of a blank
//! border pixel of Fashion-MNIST) shrink by β1 and β2 every step and fall below 2⁻¹²⁶
//! during the second epoch, after which every update touches hundreds of thousands of
//! them; the `mlp` preset's epochs slowed from 66,000 to 47,000 images/s by the third
//! (BENCHMARKS.md). Flushing changes only values below 1.2·10⁻³⁸ (to zero), far below
//! anything the optimizers' `eps` or the tolerance policy can see.
//!
//! The flush mode is per thread, so it is set on threads of kiln's own pool only, never on
//! the caller's: [`run_flushing`] runs a plan inside that pool, whose threads set the mode
//! as they start (MXCSR's FTZ and DAZ bits on x86-64, FPCR's FZ bit on AArch64; other
//! targets keep their default). The f64 reference (`run_op`) runs wherever it is called.

use std::sync::OnceLock;

/// Sets this thread to flush subnormal results and operands to zero.
fn flush_subnormals_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    {
        // FTZ (bit 15) flushes subnormal results, DAZ (bit 6) reads subnormal operands as
        // zero; the other MXCSR bits (rounding, exception masks) are kept.
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr and ldmxcsr read and write this thread's SSE control register
        // through a valid u32 on the stack; only the two flush bits change, which no
        // safety property of Rust depends on.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= (1 << 15) | (1 << 6);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // FZ (bit 24) flushes subnormal operands and results of f32/f64 arithmetic.
        // SAFETY: reads and writes this thread's floating-point control register; only the
        // flush bit changes.
        unsafe {
            let mut fpcr: u64;
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr |= 1 << 24;
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
    }
}

/// kiln's CPU thread pool (as many threads as rayon's default: `RAYON_NUM_THREADS`, else
/// the machine's), or `None` when it could not be started.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kiln-cpu-{i}"))
            .start_handler(|_| flush_subnormals_on_this_thread())
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `work` on kiln's flushing pool (its parallel loops too), or here when the pool
/// could not be started: subnormals are then kept, which changes speed, not results
/// beyond 1.2·10⁻³⁸.
pub fn run_flushing<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(work),
        None => work(),
    }
}

/// The threads plans run on.
pub fn threads() -> usize {
    pool().map_or_else(
        rayon::current_num_threads,
        rayon::ThreadPool::current_num_threads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2⁻¹²⁶ · 2⁻¹ computed at run time (so the compiler cannot fold it).
    fn halve_smallest_normal(x: f32) -> f32 {
        std::hint::black_box(x) * std::hint::black_box(0.5)
    }

    #[test]
    fn plans_run_with_subnormals_flushed_and_the_callers_thread_keeps_them() {
        let here = halve_smallest_normal(f32::MIN_POSITIVE);
        assert_eq!(
            here,
            f32::MIN_POSITIVE / 2.0,
            "the caller's thread keeps subnormals"
        );
        let in_pool = run_flushing(|| halve_smallest_normal(f32::MIN_POSITIVE));
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert_eq!(in_pool.to_bits(), 0, "a subnormal result is flushed to +0");
        }
        // Parallel loops inside run on the pool's threads, which flush too.
        use rayon::prelude::*;
        let all: Vec<f32> = run_flushing(|| {
            (0..64)
                .into_par_iter()
                .map(|_| halve_smallest_normal(f32::MIN_POSITIVE))
                .collect()
        });
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(all.iter().all(|v| v.to_bits() == 0));
        }
        // Normal arithmetic is untouched.
        assert_eq!(run_flushing(|| halve_smallest_normal(1.0)), 0.5);
    }
}
