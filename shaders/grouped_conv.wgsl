// Grouped convolution computed directly, mirroring src/backend/cpu/conv/grouped.rs loop for
// loop (the same order of additions; taps in the padding are skipped, not added as zeros).
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2.. the inputs.
// Geometry (the layout of conv.wgsl, plus the groups):
//   d1 = C, d2 = H, d3 = W, e0 = KH, e1 = KW, e2 = SH, e3 = SW, e4 = PH, e5 = PW,
//   e6 = OH, e7 = OW, e8 = DH, e9 = DW, e10 = G (groups), e11 = OC, e12 = N,
//   e13 = 1 to accumulate (grouped_conv_weight_grad, a piece of a step split by images).
// A group holds C/G input channels and OC/G output channels; a weight row is C/G·KH·KW.

// The input coordinate output position o reads through tap offset off (stride s, padding
// pad, input length len), or len when it falls in the padding. Compared in padded
// coordinates, since u32 would wrap below zero.
fn gc_input_at(o: u32, s: u32, off: u32, pad: u32, len: u32) -> u32 {
    let p = o * s + off;
    if (p < pad || p - pad >= len) {
        return len;
    }
    return p - pad;
}

// out [N·OH·OW, OC] from in0 = x [N, C, H, W] and in1 = w [OC, C/G·KH·KW].
// Dims: d0 = N·OH·OW·OC (invocations). One invocation per output.
@compute @workgroup_size(256)
fn grouped_conv(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let c = dims.d1;
    let h = dims.d2;
    let w = dims.d3;
    let kh = dims.e0;
    let kw = dims.e1;
    let oh = dims.e6;
    let ow = dims.e7;
    let oc = dims.e11;
    let cg = c / dims.e10;
    let ocg = oc / dims.e10;

    let r = i / oc;
    let o = i - r * oc;
    let ro = r / ow;
    let ox = r - ro * ow;
    let n = ro / oh;
    let oy = ro - n * oh;
    let first = (n * c + (o / ocg) * cg) * h * w;
    let wrow = o * cg * kh * kw;

    var acc = 0.0;
    for (var ch = 0u; ch < cg; ch++) {
        for (var ky = 0u; ky < kh; ky++) {
            let iy = gc_input_at(oy, dims.e2, ky * dims.e8, dims.e4, h);
            if (iy == h) {
                continue;
            }
            for (var kx = 0u; kx < kw; kx++) {
                let ix = gc_input_at(ox, dims.e3, kx * dims.e9, dims.e5, w);
                if (ix == w) {
                    continue;
                }
                let wv = ld1(wrow + (ch * kh + ky) * kw + kx);
                acc = acc + ld0(first + (ch * h + iy) * w + ix) * wv;
            }
        }
    }
    st_out(i, acc);
}

// The output position (one axis) tap offset off reads padded coordinate pos from:
// (pos − off) / s when whole and below len, else len.
fn gc_source(pos: u32, off: u32, s: u32, len: u32) -> u32 {
    if (off > pos) {
        return len;
    }
    let t = pos - off;
    let o = t / s;
    if (o * s != t || o >= len) {
        return len;
    }
    return o;
}

// out = dx [N, C, H, W] from in0 = dy [N·OH·OW, OC] and in1 = w [OC, C/G·KH·KW].
// Dims: d0 = N·C·H·W (invocations). One invocation per pixel, gathering its group's
// output channels (ascending), then kernel rows and columns (ascending).
@compute @workgroup_size(256)
fn grouped_conv_input_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let c = dims.d1;
    let h = dims.d2;
    let w = dims.d3;
    let kh = dims.e0;
    let kw = dims.e1;
    let oh = dims.e6;
    let ow = dims.e7;
    let oc = dims.e11;
    let cg = c / dims.e10;
    let ocg = oc / dims.e10;
    let kg = cg * kh * kw;

    let t = i / w;
    let x = i - t * w;
    let plane = t / h;
    let y = t - plane * h;
    let n = plane / c;
    let ch = plane - n * c;
    let group = ch / cg;
    let cc = ch - group * cg;

    var acc = 0.0;
    for (var o = group * ocg; o < (group + 1u) * ocg; o++) {
        for (var ky = 0u; ky < kh; ky++) {
            let oy = gc_source(y + dims.e4, ky * dims.e8, dims.e2, oh);
            if (oy == oh) {
                continue;
            }
            for (var kx = 0u; kx < kw; kx++) {
                let ox = gc_source(x + dims.e5, kx * dims.e9, dims.e3, ow);
                if (ox == ow) {
                    continue;
                }
                let d = ld0(((n * oh + oy) * ow + ox) * oc + o);
                acc = acc + d * ld1(o * kg + (cc * kh + ky) * kw + kx);
            }
        }
    }
    st_out(i, acc);
}

// out = dw [OC, C/G·KH·KW] from in0 = dy [N·OH·OW, OC] and in1 = x [N, C, H, W].
// Dims: d0 = OC·C/G·KH·KW (invocations). One invocation per weight, summing over the
// output rows (n, oy, ox) in order; with e13 = 1 the sum continues from the output (the
// pieces of a split step come in image order, so the terms are added in the same order).
@compute @workgroup_size(256)
fn grouped_conv_weight_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let c = dims.d1;
    let h = dims.d2;
    let w = dims.d3;
    let kh = dims.e0;
    let kw = dims.e1;
    let oh = dims.e6;
    let ow = dims.e7;
    let oc = dims.e11;
    let cg = c / dims.e10;
    let ocg = oc / dims.e10;
    let kg = cg * kh * kw;

    let o = i / kg;
    let q = i - o * kg;
    let kq = q / kw;
    let kx = q - kq * kw;
    let ch = kq / kh;
    let ky = kq - ch * kh;
    let first = (o / ocg) * cg + ch;

    var acc = 0.0;
    if (dims.e13 == 1u) {
        acc = ld_out(i);
    }
    for (var n = 0u; n < dims.e12; n++) {
        let image = (n * c + first) * h * w;
        for (var oy = 0u; oy < oh; oy++) {
            let iy = gc_input_at(oy, dims.e2, ky * dims.e8, dims.e4, h);
            if (iy == h) {
                continue;
            }
            for (var ox = 0u; ox < ow; ox++) {
                let ix = gc_input_at(ox, dims.e3, kx * dims.e9, dims.e5, w);
                if (ix == w) {
                    continue;
                }
                let d = ld0(((n * oh + oy) * ow + ox) * oc + o);
                acc = acc + d * ld1(image + iy * w + ix);
            }
        }
    }
    st_out(i, acc);
}
