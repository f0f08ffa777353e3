// PyTorch's adaptive pooling (AdaptiveAvgPool2d, AdaptiveMaxPool2d) for windows that differ
// in length or spacing, mirroring src/backend/cpu/pool/adaptive.rs: window i of OUT along
// an axis of LEN is [floor(i·LEN/OUT), ceil((i+1)·LEN/OUT)); the backward kernels gather,
// each pixel visiting the windows that contain it, [floor(p·OUT/LEN), ceil((p+1)·OUT/LEN)),
// in output order. Shape inference keeps (LEN + 1)·(OUT + 1) below 2^32.
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2.. the inputs.
// Dims: d0 = invocations, e0 = H, e1 = W, e2 = OH, e3 = OW.

// The window of output i along an axis: (start, end).
fn ap_window(i: u32, len: u32, outs: u32) -> vec2<u32> {
    return vec2<u32>(i * len / outs, ((i + 1u) * len + outs - 1u) / outs);
}

// The outputs along an axis whose windows contain position p: (first, end).
fn ap_covering(p: u32, len: u32, outs: u32) -> vec2<u32> {
    return vec2<u32>(p * outs / len, min(((p + 1u) * outs + len - 1u) / len, outs));
}

// Output element i as (plane, oy, ox).
fn ap_output(i: u32) -> vec3<u32> {
    let outs = dims.e2 * dims.e3;
    let plane = i / outs;
    let o = i - plane * outs;
    let oy = o / dims.e3;
    return vec3<u32>(plane, oy, o - oy * dims.e3);
}

// Input pixel i as (plane, y, x).
fn ap_pixel(i: u32) -> vec3<u32> {
    let t = i / dims.e1;
    let plane = t / dims.e0;
    return vec3<u32>(plane, t - plane * dims.e0, i - t * dims.e1);
}

fn ap_is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Index into in0 of the first maximum of window (oy, ox) of the plane at `base`: a
// strictly greater value or the first NaN replaces the running best, and a NaN is kept
// (PyTorch keeps the last NaN; the values agree, see the CPU's window_argmax).
fn ap_argmax(base: u32, oy: u32, ox: u32) -> u32 {
    let w = dims.e1;
    let rows = ap_window(oy, dims.e0, dims.e2);
    let cols = ap_window(ox, w, dims.e3);
    var best = base + rows.x * w + cols.x;
    var best_v = ld0(best);
    var best_nan = ap_is_nan(best_v);
    for (var y = rows.x; y < rows.y; y++) {
        for (var x = cols.x; x < cols.y; x++) {
            let at = base + y * w + x;
            let v = ld0(at);
            let v_nan = ap_is_nan(v);
            if (!best_nan && (v_nan || v > best_v)) {
                best = at;
                best_v = v;
                best_nan = v_nan;
            }
        }
    }
    return best;
}

// out [N, C, OH, OW] from in0 = x [N, C, H, W]: the window's sum, row by row from zero,
// divided by its height and then its width. One invocation per output (d0).
@compute @workgroup_size(256)
fn adaptive_avg_pool(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let w = dims.e1;
    let o = ap_output(i);
    let rows = ap_window(o.y, dims.e0, dims.e2);
    let cols = ap_window(o.z, w, dims.e3);
    let base = o.x * dims.e0 * w;
    var sum = 0.0;
    for (var y = rows.x; y < rows.y; y++) {
        for (var x = cols.x; x < cols.y; x++) {
            sum = sum + ld0(base + y * w + x);
        }
    }
    st_out(i, sum / f32(rows.y - rows.x) / f32(cols.y - cols.x));
}

// out = dx [N, C, H, W] from in0 = dy [N, C, OH, OW]: each pixel sums dy / kh / kw of the
// windows containing it. One invocation per pixel (d0).
@compute @workgroup_size(256)
fn adaptive_avg_pool_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let h = dims.e0;
    let w = dims.e1;
    let p = ap_pixel(i);
    let oys = ap_covering(p.y, h, dims.e2);
    let oxs = ap_covering(p.z, w, dims.e3);
    let base = p.x * dims.e2 * dims.e3;
    var acc = 0.0;
    for (var oy = oys.x; oy < oys.y; oy++) {
        let rows = ap_window(oy, h, dims.e2);
        let kh = f32(rows.y - rows.x);
        for (var ox = oxs.x; ox < oxs.y; ox++) {
            let cols = ap_window(ox, w, dims.e3);
            let kw = f32(cols.y - cols.x);
            acc = acc + ld0(base + oy * dims.e3 + ox) / kh / kw;
        }
    }
    st_out(i, acc);
}

// out [N, C, OH, OW] from in0 = x [N, C, H, W]: each window's first maximum. One
// invocation per output (d0).
@compute @workgroup_size(256)
fn adaptive_max_pool(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let o = ap_output(i);
    st_out(i, ld0(ap_argmax(o.x * dims.e0 * dims.e1, o.y, o.z)));
}

// out = dx [N, C, H, W] from in0 = x and in1 = dy [N, C, OH, OW]: each pixel sums dy of
// the windows whose maximum it is, in output order. One invocation per pixel (d0).
@compute @workgroup_size(256)
fn adaptive_max_pool_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let h = dims.e0;
    let w = dims.e1;
    let p = ap_pixel(i);
    let oys = ap_covering(p.y, h, dims.e2);
    let oxs = ap_covering(p.z, w, dims.e3);
    let base = p.x * h * w;
    let obase = p.x * dims.e2 * dims.e3;
    var acc = 0.0;
    for (var oy = oys.x; oy < oys.y; oy++) {
        for (var ox = oxs.x; ox < oxs.y; ox++) {
            if (ap_argmax(base, oy, ox) == i) {
                acc = acc + ld1(obase + oy * dims.e3 + ox);
            }
        }
    }
    st_out(i, acc);
}
