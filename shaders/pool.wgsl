// Max and average pooling (PyTorch's implicit padding and ceil_mode: max over a window's
// input positions only, average with or without count_include_pad), mirroring
// src/backend/cpu/pool/mod.rs.
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2.. the op's
// inputs in op order. Every storage buffer is read_write because the executor binds
// slices of one arena buffer for inputs and outputs alike.
//
// All four entry points read the same geometry, so the host fills one Dims for a pooling
// layer and only d0 changes between them:
//   d0 = invocations (n·c·oh·ow for the forward kernels, n·c·h·w for the gradients)
//   e0 = h, e1 = w, e2 = kh, e3 = kw, e4 = sh, e5 = sw, e6 = oh, e7 = ow, d2 = ph, d3 = pw
// with oh = (h + 2·ph − kh) / sh + 1 and ow likewise, rounded up in ceil mode (sh, sw ≥ 1,
// 2·ph ≤ kh, 2·pw ≤ kw, h, w ≥ 1, and in ceil mode the last window starts before
// h + ph, so every window holds an input position). Windows start at (oy·sh, ox·sw) in
// padded coordinates, input position y at y + ph. f0 = kh·kw as a float (the average's
// divisor; a u32 product could wrap for windows larger than the input). d1 = n·c.
// e8 = the average's divisor rule: 0 f0 for every window, 1 each window's own with
// padding counted (ceil mode: clipped to the padded input), 2 its input positions only.
//
// The gradients run in gather form, one invocation per input pixel visiting the windows
// that contain it in a fixed order, so they need no atomics and add in the CPU's order.

// By bits, because shader compilers may assume floats are never NaN and fold `v != v`.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Index into in0 of the maximum of window (oy, ox) of the plane starting at `base`.
// Only a strictly greater value replaces the running best, so ties keep the first in
// row-then-column order (PyTorch's choice); NaN beats every number and, once held, is kept,
// so a window holding NaN yields its first NaN. `best_nan` guards the comparison because a
// compare against NaN cannot be trusted under fast-math.
fn window_argmax(base: u32, oy: u32, ox: u32) -> u32 {
    let w = dims.e1;
    let ys = inside(oy * dims.e4, dims.d2, dims.e2, dims.e0);
    let xs = inside(ox * dims.e5, dims.d3, dims.e3, w);
    let top = base + ys.x * w + xs.x;
    var best = top;
    var best_v = ld0(top);
    var best_nan = is_nan(best_v);
    for (var ky = 0u; ky < ys.y; ky++) {
        let row = top + ky * w;
        for (var kx = 0u; kx < xs.y; kx++) {
            let v = ld0(row + kx);
            let v_nan = is_nan(v);
            if (!best_nan && (v_nan || v > best_v)) {
                best = row + kx;
                best_v = v;
                best_nan = v_nan;
            }
        }
    }
    return best;
}

// The input positions along one axis of a window starting at padded position `start`:
// (the first one, how many), those of start .. start + k inside [pad, pad + len). The
// window always reaches past `pad` and starts at most at pad + len − 1, so nothing wraps.
fn inside(start: u32, pad: u32, k: u32, len: u32) -> vec2<u32> {
    let lo = select(0u, pad - start, pad > start);
    let hi = min(k, len + pad - start);
    return vec2<u32>(start + lo - pad, hi - lo);
}

// The divisor of the average of window (oy, ox) under rule e8 ≥ 1, as PyTorch's
// avg_pool2d: the window clipped to the padded input, or to the input. Each factor is at
// most the padded length, and their product is taken in f32, as the host's f0 is.
fn divisor(oy: u32, ox: u32) -> f32 {
    let ys = oy * dims.e4;
    let xs = ox * dims.e5;
    if (dims.e8 == 1u) {
        let hy = min(ys + dims.e2, dims.e0 + 2u * dims.d2) - ys;
        let hx = min(xs + dims.e3, dims.e1 + 2u * dims.d3) - xs;
        return f32(hy) * f32(hx);
    }
    let iy = inside(ys, dims.d2, dims.e2, dims.e0);
    let ix = inside(xs, dims.d3, dims.e3, dims.e1);
    return f32(iy.y) * f32(ix.y);
}

// First window along an axis that contains (padded) position i: ceil((i + 1 − k) / s),
// written (i − k) / s + 1 so that a large stride cannot wrap, or 0 while i + 1 ≤ k
// (where the subtraction would).
fn first_cover(i: u32, k: u32, s: u32) -> u32 {
    if (i + 1u <= k) {
        return 0u;
    }
    return (i - k) / s + 1u;
}

// One past the last window containing i: i / s + 1, clipped to the number of windows.
fn end_cover(i: u32, s: u32, outs: u32) -> u32 {
    return min(i / s + 1u, outs);
}

// out [N, C, OH, OW] = max of each window of in0 = x [N, C, H, W].
// Reads d0 = n·c·oh·ow, e0..e7. Bindings: out, in0 = x. Dispatch n·c·oh·ow invocations.
@compute @workgroup_size(256)
fn max_pool(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let ohw = dims.e6 * dims.e7;
    let p = i / ohw;
    let r = i % ohw;
    st_out(i, ld0(window_argmax(p * dims.e0 * dims.e1, r / dims.e7, r % dims.e7)));
}

// out = dx [N, C, H, W]: each pixel sums dy over the windows (rows, then columns) whose
// argmax, recomputed from x, it is.
// Reads d0 = n·c·h·w, e0..e7. Bindings: out, in0 = x, in1 = dy [N, C, OH, OW].
// Dispatch n·c·h·w invocations.
@compute @workgroup_size(256)
fn max_pool_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let h = dims.e0;
    let w = dims.e1;
    let ow = dims.e7;
    let hw = h * w;
    let p = i / hw;
    let r = i % hw;
    let y = r / w;
    let x = r % w;
    let base = p * hw;
    let dbase = p * dims.e6 * ow;
    // The windows containing the pixel, in padded coordinates.
    let py = y + dims.d2;
    let px = x + dims.d3;
    let oy_end = end_cover(py, dims.e4, dims.e6);
    let ox_lo = first_cover(px, dims.e3, dims.e5);
    let ox_end = end_cover(px, dims.e5, ow);
    var acc = 0.0;
    for (var oy = first_cover(py, dims.e2, dims.e4); oy < oy_end; oy++) {
        for (var ox = ox_lo; ox < ox_end; ox++) {
            if (window_argmax(base, oy, ox) == i) {
                acc = acc + ld1(dbase + oy * ow + ox);
            }
        }
    }
    st_out(i, acc);
}

// out [N, C, OH, OW] = sum of each window of in0 = x (rows, then columns) / (kh·kw).
// Reads d0 = n·c·oh·ow, e0..e7. Bindings: out, in0 = x. Dispatch n·c·oh·ow invocations.
@compute @workgroup_size(256)
fn avg_pool(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let w = dims.e1;
    let ohw = dims.e6 * dims.e7;
    let p = i / ohw;
    let r = i % ohw;
    let ys = inside((r / dims.e7) * dims.e4, dims.d2, dims.e2, dims.e0);
    let xs = inside((r % dims.e7) * dims.e5, dims.d3, dims.e3, w);
    let top = p * dims.e0 * w + ys.x * w + xs.x;
    var acc = 0.0;
    for (var ky = 0u; ky < ys.y; ky++) {
        let row = top + ky * w;
        for (var kx = 0u; kx < xs.y; kx++) {
            acc = acc + ld0(row + kx);
        }
    }
    if (dims.e8 == 0u) {
        st_out(i, acc / dims.f0);
    } else {
        st_out(i, acc / divisor(r / dims.e7, r % dims.e7));
    }
}

// out = dx [N, C, H, W]: each pixel sums dy over the windows containing it (rows, then
// columns) and divides by kh·kw once at the end, as the CPU does; under a per-window
// divisor rule (e8 ≥ 1) it sums each window's dy / divisor instead.
// Reads d0 = n·c·h·w, e0..e7. Bindings: out, in0 = dy [N, C, OH, OW].
// Dispatch n·c·h·w invocations.
@compute @workgroup_size(256)
fn avg_pool_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let w = dims.e1;
    let ow = dims.e7;
    let hw = dims.e0 * w;
    let p = i / hw;
    let r = i % hw;
    let y = r / w;
    let x = r % w;
    let dbase = p * dims.e6 * ow;
    let py = y + dims.d2;
    let px = x + dims.d3;
    let oy_end = end_cover(py, dims.e4, dims.e6);
    let ox_lo = first_cover(px, dims.e3, dims.e5);
    let ox_end = end_cover(px, dims.e5, ow);
    var acc = 0.0;
    for (var oy = first_cover(py, dims.e2, dims.e4); oy < oy_end; oy++) {
        for (var ox = ox_lo; ox < ox_end; ox++) {
            if (dims.e8 == 0u) {
                acc = acc + ld0(dbase + oy * ow + ox);
            } else {
                acc = acc + ld0(dbase + oy * ow + ox) / divisor(oy, ox);
            }
        }
    }
    if (dims.e8 == 0u) {
        st_out(i, acc / dims.f0);
    } else {
        st_out(i, acc);
    }
}
