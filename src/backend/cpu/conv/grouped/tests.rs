//! The plane-at-a-time grouped convolution against the per-output forms it replaced (the
//! shader's loops): the same bits in f32 and f64, over strided, padded, dilated,
//! depthwise and multi-group geometries (the per-output forms' values are checked against
//! PyTorch and finite differences elsewhere: parity cases, gradcheck, torch_diff).

use super::super::super::for_each_sample;
use super::*;
use crate::op::ConvGeom;

/// The output position (along one axis) that tap offset `off` reads padded coordinate
/// `pos` from, when there is one: `(pos − off) / stride`, whole and below `len`.
fn source(pos: usize, off: usize, stride: usize, len: usize) -> Option<usize> {
    let t = pos.checked_sub(off)?;
    (t.is_multiple_of(stride) && t / stride < len).then_some(t / stride)
}

/// The input position (along one axis) that output `o` reads through tap offset `off`
/// with padding `pad`, when it lies inside the input of length `len`.
fn ref_input_at(o: usize, stride: usize, off: usize, pad: usize, len: usize) -> Option<usize> {
    let p = (o * stride + off).checked_sub(pad)?;
    (p < len).then_some(p)
}

/// `out [N·OH·OW, OC]`: output (r, o) = Σ over its group's channels c', kernel rows ky
/// and columns kx (in that order, ascending) of `x[n, g·C/G + c', iy, ix] · w[o, (c'·KH +
/// ky)·KW + kx]`, g = o / (OC/G), skipping taps in the padding.
fn per_output_conv<T: Real>(x: &[T], w: &[T], out: &mut [T], gg: &GroupGeom, oc: usize) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let plane = g.h * g.w;
    for_each_sample(out, oh * ow * oc, |n, sample| {
        for (p, row) in sample.chunks_exact_mut(oc).enumerate() {
            let (oy, ox) = (p / ow, p % ow);
            for (o, v) in row.iter_mut().enumerate() {
                let first = (n * g.c + (o / ocg.max(1)) * cg) * plane;
                let wrow = &w[o * kg..][..kg];
                *v = window_dot(&x[first..][..cg * plane], wrow, g, cg, oy, ox);
            }
        }
    });
}

/// The sum of one output of [`grouped_conv`]: `group` holds its group's `cg` channel planes.
fn window_dot<T: Real>(
    group: &[T],
    wrow: &[T],
    g: &ConvGeom,
    cg: usize,
    oy: usize,
    ox: usize,
) -> T {
    let mut acc = T::zero();
    for c in 0..cg {
        for ky in 0..g.kh {
            let Some(iy) = ref_input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                continue;
            };
            for kx in 0..g.kw {
                let Some(ix) = ref_input_at(ox, g.sw, kx * g.dw, g.pw, g.w) else {
                    continue;
                };
                let wv = wrow[(c * g.kh + ky) * g.kw + kx];
                acc = acc + group[(c * g.h + iy) * g.w + ix] * wv;
            }
        }
    }
    acc
}

/// `dx [N, C, H, W]`: pixel (n, c, y, x) gathers, over its group's output channels j
/// (ascending), then kernel rows ky and columns kx (ascending) whose output position
/// exists, `dy[(n·OH + oy)·OW + ox, g·OC/G + j] · w[g·OC/G + j, (c'·KH + ky)·KW + kx]`.
fn per_pixel_input_grad<T: Real>(dy: &[T], w: &[T], out: &mut [T], gg: &GroupGeom, oc: usize) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    for_each_sample(out, g.c * g.h * g.w, |n, sample| {
        for (i, v) in sample.iter_mut().enumerate() {
            let (c, y, x) = (i / (g.h * g.w), (i / g.w) % g.h, i % g.w);
            let (group, cc) = (c / cg.max(1), c % cg.max(1));
            let mut acc = T::zero();
            for o in group * ocg..(group + 1) * ocg {
                for ky in 0..g.kh {
                    let Some(oy) = source(y + g.ph, ky * g.dh, sh, oh) else {
                        continue;
                    };
                    for kx in 0..g.kw {
                        let Some(ox) = source(x + g.pw, kx * g.dw, sw, ow) else {
                            continue;
                        };
                        let d = dy[((n * oh + oy) * ow + ox) * oc + o];
                        acc = acc + d * w[o * kg + (cc * g.kh + ky) * g.kw + kx];
                    }
                }
            }
            *v = acc;
        }
    });
}

/// `dw [OC, C/G·KH·KW]`: weight (o, q) sums, over the output rows r = (n, oy, ox) in
/// order, `dy[r, o] · x[n, g·C/G + c', iy, ix]` for the rows whose tap is inside the
/// input. One weight row per task (its sums do not depend on the thread count).
fn per_weight_weight_grad<T: Real>(dy: &[T], x: &[T], out: &mut [T], gg: &GroupGeom, oc: usize) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let plane = g.h * g.w;
    let weight_row = |o: usize, row: &mut [T]| {
        let first = (o / ocg.max(1)) * cg;
        for (q, v) in row.iter_mut().enumerate() {
            let (c, ky, kx) = (q / (g.kh * g.kw), (q / g.kw) % g.kh, q % g.kw);
            let mut acc = T::zero();
            for n in 0..g.n {
                let image = &x[(n * g.c + first + c) * plane..][..plane];
                for oy in 0..oh {
                    let Some(iy) = ref_input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                        continue;
                    };
                    for ox in 0..ow {
                        let Some(ix) = ref_input_at(ox, g.sw, kx * g.dw, g.pw, g.w) else {
                            continue;
                        };
                        let d = dy[((n * oh + oy) * ow + ox) * oc + o];
                        acc = acc + d * image[iy * g.w + ix];
                    }
                }
            }
            *v = acc;
        }
    };
    if kg == 0 {
        return;
    }
    use rayon::prelude::*;
    let out = &mut out[..oc * kg];
    if oc * kg * g.n * oh * ow >= 1 << 16 {
        out.par_chunks_mut(kg)
            .enumerate()
            .for_each(|(o, row)| weight_row(o, row));
    } else {
        for (o, row) in out.chunks_mut(kg).enumerate() {
            weight_row(o, row);
        }
    }
}

fn values(len: usize, seed: u64) -> Vec<f64> {
    (0..len)
        .map(|k| ((k as u64 * 2654435761 + seed) % 1000) as f64 / 500.0 - 1.0)
        .collect()
}

fn geometries() -> Vec<(GroupGeom, usize)> {
    let conv =
        |n, c, h, w, k: (usize, usize), s: (usize, usize), p: (usize, usize), d: (usize, usize)| {
            ConvGeom {
                n,
                c,
                h,
                w,
                kh: k.0,
                kw: k.1,
                sh: s.0,
                sw: s.1,
                ph: p.0,
                pw: p.1,
                dh: d.0,
                dw: d.1,
            }
        };
    vec![
        (
            GroupGeom {
                conv: conv(2, 4, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1)),
                groups: 4,
            },
            8,
        ),
        (
            GroupGeom {
                conv: conv(1, 6, 8, 9, (3, 2), (2, 1), (1, 0), (1, 1)),
                groups: 2,
            },
            4,
        ),
        (
            GroupGeom {
                conv: conv(3, 3, 7, 7, (2, 3), (1, 2), (2, 1), (2, 1)),
                groups: 3,
            },
            3,
        ),
        (
            GroupGeom {
                conv: conv(1, 6, 9, 9, (3, 3), (2, 2), (2, 2), (2, 2)),
                groups: 3,
            },
            6,
        ),
        (
            GroupGeom {
                conv: conv(2, 2, 5, 4, (5, 4), (3, 2), (2, 2), (1, 1)),
                groups: 2,
            },
            2,
        ),
        (
            GroupGeom {
                conv: conv(1, 4, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1)),
                groups: 4,
            },
            4,
        ),
    ]
}

fn bits_agree<T: Real>() {
    for (gg, oc) in geometries() {
        let g = gg.conv;
        let rows = g.n * g.oh() * g.ow();
        let of = |v: Vec<f64>| v.into_iter().map(T::of).collect::<Vec<T>>();
        let x = of(values(g.n * g.c * g.h * g.w, 1));
        let w = of(values(oc * gg.group_patch(), 2));
        let dy = of(values(rows * oc, 3));
        let (mut a, mut b) = (vec![T::nan(); rows * oc], vec![T::nan(); rows * oc]);
        grouped_conv(&x, &w, &mut a, &gg, oc);
        per_output_conv(&x, &w, &mut b, &gg, oc);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(p, q)| p.f64().to_bits() == q.f64().to_bits()),
            "forward {gg:?}"
        );
        let n = x.len();
        let (mut a, mut b) = (vec![T::nan(); n], vec![T::nan(); n]);
        grouped_conv_input_grad(&dy, &w, &mut a, &gg, oc);
        per_pixel_input_grad(&dy, &w, &mut b, &gg, oc);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(p, q)| p.f64().to_bits() == q.f64().to_bits()),
            "input grad {gg:?}"
        );
        let n = w.len();
        let (mut a, mut b) = (vec![T::nan(); n], vec![T::nan(); n]);
        grouped_conv_weight_grad(&dy, &x, &mut a, &gg, oc);
        per_weight_weight_grad(&dy, &x, &mut b, &gg, oc);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(p, q)| p.f64().to_bits() == q.f64().to_bits()),
            "weight grad {gg:?}"
        );
    }
}

#[test]
fn plane_forms_give_the_bits_of_the_per_output_forms() {
    bits_agree::<f32>();
    bits_agree::<f64>();
}

/// The definition with signed coordinates: y[n, o, oy, ox] = Σ_{c', ky, kx} x[n, g·C/G + c',
/// oy·sh + ky·dh − ph, ox·sw + kx·dw − pw] · w[o, c', ky, kx], as NCHW.
fn definition(x: &[f64], w: &[f64], gg: &GroupGeom, oc: usize) -> Vec<f64> {
    let g = gg.conv;
    let (oh, ow, cg) = (g.oh(), g.ow(), gg.group_channels());
    let mut y = vec![0.0; g.n * oc * oh * ow];
    for n in 0..g.n {
        for o in 0..oc {
            let group = o / (oc / gg.groups);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for c in 0..cg {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                                let ix = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = ((n * g.c + group * cg + c) * g.h + iy as usize) * g.w
                                    + ix as usize;
                                acc += x[xi] * w[((o * cg + c) * g.kh + ky) * g.kw + kx];
                            }
                        }
                    }
                    y[((n * oc + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

/// Forward against the definition; the gradients by adjointness: ⟨conv(x), dy⟩ equals
/// ⟨x, input_grad(dy)⟩ and ⟨w, weight_grad(dy, x)⟩ (the op is bilinear in x and w).
#[test]
fn forward_matches_the_definition_and_gradients_are_its_adjoints() {
    for (gg, oc) in geometries() {
        let g = gg.conv;
        let (oh, ow) = (g.oh(), g.ow());
        let rows = g.n * oh * ow;
        let x = values(g.n * g.c * g.h * g.w, 11);
        let w = values(oc * gg.group_patch(), 12);
        let dy = values(rows * oc, 13);
        let mut y = vec![f64::NAN; rows * oc];
        grouped_conv(&x, &w, &mut y, &gg, oc);
        let want = definition(&x, &w, &gg, oc);
        for n in 0..g.n {
            for o in 0..oc {
                for p in 0..oh * ow {
                    let (got, want) = (
                        y[(n * oh * ow + p) * oc + o],
                        want[(n * oc + o) * oh * ow + p],
                    );
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{gg:?} [{n},{o},{p}]: {got} vs {want}"
                    );
                }
            }
        }
        let lhs = dot(&y, &dy);
        let mut dx = vec![f64::NAN; x.len()];
        grouped_conv_input_grad(&dy, &w, &mut dx, &gg, oc);
        let mut dw = vec![f64::NAN; w.len()];
        grouped_conv_weight_grad(&dy, &x, &mut dw, &gg, oc);
        let scale = lhs.abs().max(1.0);
        assert!(
            (dot(&x, &dx) - lhs).abs() < 1e-12 * scale,
            "{gg:?} input grad"
        );
        assert!(
            (dot(&w, &dw) - lhs).abs() < 1e-12 * scale,
            "{gg:?} weight grad"
        );
    }
}
