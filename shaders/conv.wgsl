// Convolution data movement, mirroring src/backend/cpu/conv/mod.rs: im2col and its adjoint
// col2im around the matmul, and the [N·HW, C] <-> [N, C, HW] layout transposes.
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2 the input.
// Every storage buffer is read_write because the executor binds slices of one arena buffer
// for inputs and outputs alike.
//
// im2col and col2im share one geometry layout, so the host fills it the same way for both
// (only d0 differs):
//   d1 = C, d2 = H, d3 = W, e0 = KH, e1 = KW, e2 = SH, e3 = SW, e4 = PH, e5 = PW,
//   e6 = OH, e7 = OW, e8 = DH, e9 = DW   (SH, SW, DH, DW >= 1; OH, OW as ConvGeom::oh/ow
//   compute them). Tap (ky, kx) of output (oy, ox) reads padded (oy·SH + ky·DH, ox·SW + kx·DW).
// N is implied by d0.

// out [N·OH·OW, C·KH·KW] from in0 = x [N, C, H, W].
// Dims: d0 = N·OH·OW·C·KH·KW (invocations), d1..d3, e0..e9 the geometry above.
// Dispatch: one invocation per element of out (d0).
// Neighbouring invocations write neighbouring columns of one row, i.e. consecutive kx of
// one kernel row, so the reads are runs of consecutive pixels too.
@compute @workgroup_size(256)
fn im2col(
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
    let pk = c * kh * kw;

    let r = i / pk;
    let q = i - r * pk;
    let kq = q / kw;
    let kx = q - kq * kw;
    let ch = kq / kh;
    let ky = kq - ch * kh;
    let ro = r / ow;
    let ox = r - ro * ow;
    let n = ro / oh;
    let oy = ro - n * oh;

    // Padded coordinates: compared with the padding before subtracting it, since u32
    // would wrap below zero.
    let yy = oy * dims.e2 + ky * dims.e8;
    let xx = ox * dims.e3 + kx * dims.e9;
    let ph = dims.e4;
    let pw = dims.e5;
    var v = 0.0;
    if (yy >= ph && yy - ph < h && xx >= pw && xx - pw < w) {
        v = ld0(((n * c + ch) * h + (yy - ph)) * w + (xx - pw));
    }
    st_out(i, v);
}

// out = x [N, C, H, W] from in0 = cols [N·OH·OW, C·KH·KW]: the sum of every cols entry
// im2col reads from each pixel.
// Dims: d0 = N·C·H·W (invocations), d1..d3, e0..e9 the geometry above.
// Dispatch: one invocation per output pixel (d0).
// Gather, not scatter, so no atomics: the pairs (ky, oy) with oy·SH + ky == y + PH are an
// arithmetic progression (ky up by SH while oy goes down by 1), walked from the smallest
// ky whose oy is inside the output; the same for (kx, ox). The divisions happen once per
// pixel, and the sum runs ky outer, kx inner, ascending: the order in which the CPU adds
// into each pixel (taps ascending).
@compute @workgroup_size(256)
fn col2im(
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
    let sh = dims.e2;
    let sw = dims.e3;
    let oh = dims.e6;
    let ow = dims.e7;
    let pk = c * kh * kw;

    let t = i / w;
    let x = i - t * w;
    let plane = t / h;
    let y = t - plane * h;
    let n = plane / c;
    let ch = plane - n * c;
    if (dims.e8 > 1u || dims.e9 > 1u) {
        st_out(i, col2im_dilated(n, ch, y + dims.e4, x + dims.e5));
        return;
    }

    let yy = y + dims.e4;
    var oy0 = yy / sh;
    var ky0 = yy - oy0 * sh;
    if (oy0 >= oh) {
        ky0 = ky0 + (oy0 - (oh - 1u)) * sh;
        oy0 = oh - 1u;
    }
    let xx = x + dims.e5;
    var ox0 = xx / sw;
    var kx0 = xx - ox0 * sw;
    if (ox0 >= ow) {
        kx0 = kx0 + (ox0 - (ow - 1u)) * sw;
        ox0 = ow - 1u;
    }

    var acc = 0.0;
    var ky = ky0;
    var oy = oy0;
    // oy·SH + ky == y + PH throughout, so oy reaches 0 no later than ky passes y + PH;
    // breaking at oy == 0 before decrementing keeps the u32 from wrapping.
    loop {
        if (ky >= kh) {
            break;
        }
        let row0 = (n * oh + oy) * ow;
        let col0 = (ch * kh + ky) * kw;
        var kx = kx0;
        var ox = ox0;
        loop {
            if (kx >= kw) {
                break;
            }
            acc = acc + ld0((row0 + ox) * pk + col0 + kx);
            if (ox == 0u) {
                break;
            }
            ox = ox - 1u;
            kx = kx + sw;
        }
        if (oy == 0u) {
            break;
        }
        oy = oy - 1u;
        ky = ky + sh;
    }
    st_out(i, acc);
}

// col2im's sum for padded pixel (yy, xx) of channel ch of image n under a dilated kernel:
// every tap tried, ky ascending (outer) and kx ascending (inner), each kept when its
// output position (yy − ky·DH) / SH is whole and inside the output; the CPU adds in the
// same order. The taps of a pixel are no progression one can start from without a
// modular inverse, and dilated layers are rare enough that KH·KW tests per pixel do.
fn col2im_dilated(n: u32, ch: u32, yy: u32, xx: u32) -> f32 {
    let kh = dims.e0;
    let kw = dims.e1;
    let sh = dims.e2;
    let sw = dims.e3;
    let oh = dims.e6;
    let ow = dims.e7;
    let pk = dims.d1 * kh * kw;
    var acc = 0.0;
    for (var ky = 0u; ky < kh; ky++) {
        let dy = ky * dims.e8;
        if (dy > yy) {
            break;
        }
        let oy = (yy - dy) / sh;
        if (oy * sh != yy - dy || oy >= oh) {
            continue;
        }
        let row0 = (n * oh + oy) * ow;
        let col0 = (ch * kh + ky) * kw;
        for (var kx = 0u; kx < kw; kx++) {
            let dx = kx * dims.e9;
            if (dx > xx) {
                break;
            }
            let ox = (xx - dx) / sw;
            if (ox * sw != xx - dx || ox >= ow) {
                continue;
            }
            acc = acc + ld0((row0 + ox) * pk + col0 + kx);
        }
    }
    return acc;
}

// out [N, C, HW] from in0 = rows [N·HW, C]: out[(n·C + ch)·HW + p] = rows[(n·HW + p)·C + ch].
// Dims: d0 = N·C·HW (invocations), d1 = C, d2 = HW.
// Dispatch: one invocation per element (d0). Writes are contiguous; reads stride by C.
@compute @workgroup_size(256)
fn rows_to_nchw(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let c = dims.d1;
    let hw = dims.d2;
    let plane = i / hw;
    let p = i - plane * hw;
    let n = plane / c;
    let ch = plane - n * c;
    st_out(i, ld0((n * hw + p) * c + ch));
}

// out [N·HW, C] from in0 = x [N, C, HW]: out[(n·HW + p)·C + ch] = x[(n·C + ch)·HW + p].
// Dims: d0 = N·C·HW (invocations), d1 = C, d2 = HW.
// Dispatch: one invocation per element (d0). Writes are contiguous; reads stride by HW.
@compute @workgroup_size(256)
fn nchw_to_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let c = dims.d1;
    let hw = dims.d2;
    let pix = i / c;
    let ch = i - pix * c;
    let n = pix / hw;
    let p = pix - n * hw;
    st_out(i, ld0((n * c + ch) * hw + p));
}
