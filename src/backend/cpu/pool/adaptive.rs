//! PyTorch's adaptive pooling (`AdaptiveAvgPool2d`, `AdaptiveMaxPool2d`) for output sizes
//! whose windows differ in length or spacing (uniform ones run as plain pooling, see the
//! model builder), mirrored by `shaders/adaptive_pool.wgsl`. Window `i` of `out` along an
//! axis of `len` is [⌊i·len/out⌋, ⌈(i+1)·len/out⌉) ([`AdaptiveGeom::window`]). The
//! backward kernels gather: each pixel visits the windows that contain it in output
//! order, the order in which PyTorch's kernels scatter into it.

use super::super::{for_each_sample, Real};
use crate::op::AdaptiveGeom;

/// The window's mean: its values summed row by row from zero, then divided by its height
/// and then by its width, as PyTorch's `adaptive_avg_pool2d` kernel computes it.
pub fn adaptive_avg_pool<T: Real>(x: &[T], out: &mut [T], g: &AdaptiveGeom) {
    let plane = g.h * g.w;
    for_each_sample(out, g.oh * g.ow, |p, o| {
        let image = &x[p * plane..][..plane];
        for (i, v) in o.iter_mut().enumerate() {
            let (rows, cols) = (g.rows(i / g.ow), g.cols(i % g.ow));
            let (kh, kw) = (T::of(rows.len() as f64), T::of(cols.len() as f64));
            let mut sum = T::zero();
            for y in rows {
                for &e in &image[y * g.w + cols.start..y * g.w + cols.end] {
                    sum = sum + e;
                }
            }
            *v = sum / kh / kw;
        }
    });
}

/// `dx`: each pixel sums dy / kh / kw of the windows containing it, output rows then
/// columns ascending (PyTorch adds `grad_output / kh / kw` into each window in output
/// order).
pub fn adaptive_avg_pool_grad<T: Real>(dy: &[T], out: &mut [T], g: &AdaptiveGeom) {
    let outs = g.oh * g.ow;
    for_each_sample(out, g.h * g.w, |p, dx| {
        let grad = &dy[p * outs..][..outs];
        for (i, v) in dx.iter_mut().enumerate() {
            let (y, x) = (i / g.w, i % g.w);
            let mut acc = T::zero();
            for oy in AdaptiveGeom::covering(y, g.h, g.oh) {
                let kh = T::of(g.rows(oy).len() as f64);
                for ox in AdaptiveGeom::covering(x, g.w, g.ow) {
                    let kw = T::of(g.cols(ox).len() as f64);
                    acc = acc + grad[oy * g.ow + ox] / kh / kw;
                }
            }
            *v = acc;
        }
    });
}

/// The index in `image` (one H×W plane) of window (oy, ox)'s first maximum in row order:
/// a strictly greater value or the first NaN replaces the running best, and a NaN, once
/// held, is kept, as in kiln's `MaxPool`. PyTorch's `val > maxval || isnan(val)` keeps
/// the last NaN instead: the values agree (NaN), only a gradient through a window holding
/// two NaNs goes to another of them.
fn window_argmax<T: Real>(image: &[T], g: &AdaptiveGeom, oy: usize, ox: usize) -> usize {
    let (rows, cols) = (g.rows(oy), g.cols(ox));
    let mut best = rows.start * g.w + cols.start;
    for y in rows {
        for at in y * g.w + cols.start..y * g.w + cols.end {
            let (v, best_v) = (image[at], image[best]);
            if !best_v.is_nan() && (v.is_nan() || v > best_v) {
                best = at;
            }
        }
    }
    best
}

/// Each window's first maximum (NaN if the window holds one).
pub fn adaptive_max_pool<T: Real>(x: &[T], out: &mut [T], g: &AdaptiveGeom) {
    let plane = g.h * g.w;
    for_each_sample(out, g.oh * g.ow, |p, o| {
        let image = &x[p * plane..][..plane];
        for (i, v) in o.iter_mut().enumerate() {
            *v = image[window_argmax(image, g, i / g.ow, i % g.ow)];
        }
    });
}

/// `dx`: each pixel sums dy of the windows whose maximum it is, in output order.
pub fn adaptive_max_pool_grad<T: Real>(x: &[T], dy: &[T], out: &mut [T], g: &AdaptiveGeom) {
    let (plane, outs) = (g.h * g.w, g.oh * g.ow);
    for_each_sample(out, plane, |p, dx| {
        let (image, grad) = (&x[p * plane..][..plane], &dy[p * outs..][..outs]);
        for (i, v) in dx.iter_mut().enumerate() {
            let (y, x) = (i / g.w, i % g.w);
            let mut acc = T::zero();
            for oy in AdaptiveGeom::covering(y, g.h, g.oh) {
                for ox in AdaptiveGeom::covering(x, g.w, g.ow) {
                    if window_argmax(image, g, oy, ox) == i {
                        acc = acc + grad[oy * g.ow + ox];
                    }
                }
            }
            *v = acc;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5x5 → 3x3 (windows 0..2, 1..4, 3..5 along each axis) on x[y][x] = 5y + x, by hand.
    #[test]
    fn five_to_three_by_hand() {
        let g = AdaptiveGeom {
            n: 1,
            c: 1,
            h: 5,
            w: 5,
            oh: 3,
            ow: 3,
        };
        let x: Vec<f64> = (0..25).map(f64::from).collect();
        let mut avg = vec![f64::NAN; 9];
        adaptive_avg_pool(&x, &mut avg, &g);
        // Window (0, 1): rows 0..2, columns 1..4: (1+2+3+6+7+8)/6 = 4.5; (1, 1): 3x3
        // around 12; (2, 0): rows 3..5, columns 0..2: (15+16+20+21)/4 = 18.
        assert_eq!(avg, [3.0, 4.5, 6.0, 10.5, 12.0, 13.5, 18.0, 19.5, 21.0]);
        let mut max = vec![f64::NAN; 9];
        adaptive_max_pool(&x, &mut max, &g);
        assert_eq!(max, [6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0]);
        // Pixel (1, 1) lies in windows (0|1, 0|1) of areas 4, 6, 6, 9.
        let mut dx = vec![f64::NAN; 25];
        adaptive_avg_pool_grad(&[1.0; 9], &mut dx, &g);
        let want = 1.0 / 4.0 + 1.0 / 6.0 + 1.0 / 6.0 + 1.0 / 9.0;
        assert!((dx[6] - want).abs() < 1e-15, "{}", dx[6]);
        assert!((dx.iter().sum::<f64>() - 9.0).abs() < 1e-12);
        // The max gradient goes to each window's maximum: 24 is window (2, 2)'s, 18 (pixel
        // (3, 3)) window (1, 1)'s only (it lies in (2, 2) too, whose maximum is 24), and 6
        // window (0, 0)'s.
        let dy: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut dx = vec![f64::NAN; 25];
        adaptive_max_pool_grad(&x, &dy, &mut dx, &g);
        assert_eq!(dx[24], 9.0);
        assert_eq!(dx[18], 5.0);
        assert_eq!(dx[6], 1.0);
        assert_eq!(dx.iter().sum::<f64>(), 45.0);
        assert_eq!(dx.iter().filter(|&&v| v != 0.0).count(), 9);
    }

    /// A NaN wins its windows (as PyTorch's `isnan(val)`), and ties keep the first maximum.
    #[test]
    fn nan_wins_and_ties_keep_the_first() {
        let g = AdaptiveGeom {
            n: 1,
            c: 1,
            h: 1,
            w: 5,
            oh: 1,
            ow: 3,
        };
        let x = [1.0, 2.0, f64::NAN, 2.0, 2.0];
        let mut y = [0.0; 3];
        adaptive_max_pool(&x, &mut y, &g);
        assert!(y[0] == 2.0 && y[1].is_nan() && y[2] == 2.0);
        let mut dx = [f64::NAN; 5];
        adaptive_max_pool_grad(&x, &[1.0, 10.0, 100.0], &mut dx, &g);
        // Windows 0..2, 1..4, 3..5: the first 2 (index 1), the NaN, the first 2 (index 3).
        assert_eq!(dx, [0.0, 1.0, 10.0, 100.0, 0.0]);
    }
}
