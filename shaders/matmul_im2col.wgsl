// The implicit-GEMM half of the matmul kernel (matmul.wgsl, which the executor appends
// after this file in every matmul module): reading one operand as the im2col matrix of an
// image, gathered while the tile is staged.
//
// Op::ConvMatMul and Op::ConvWeightGrad run the same kernel as an implicit GEMM: one
// operand is the im2col matrix of an image x [N, C, H, W], whose entries are read from x
// while the tile is staged, so the matrix (C·KH·KW times the image) is never written.
// COLS_A: in0 is x and A = im2col(x) [M = N·OH·OW, K = C·KH·KW] (the forward product,
// with TRANS_A false); COLS_B: in1 is x and B = im2col(x) [K = N·OH·OW, N = C·KH·KW] (the
// weight gradient, TRANS_B false). The geometry is in dims: e1 = C, e2 = H, e3 = W,
// e4 = KH, e5 = KW, e6 = SH, e7 = SW, e8 = PH, e9 = PW, e10 = OH, e11 = OW, e13 = DH,
// e14 = DW (dilation; e12 is split-K's). An entry is a
// copy of a pixel or 0 in the padding, as Op::Im2Col writes it, so the products are
// bit-identical to im2col followed by the plain kernel.
//
// The index arithmetic is kept out of the inner loops: the host only uses configurations
// with NT a multiple of BK and of BN (matmul.rs), so every float an invocation stages of
// the A tile lies in one column (kk = t % BK) and every float of the B tile in one column
// (nn = t % BN). The forward product decomposes its rows once (win_a) and the column once
// per K tile; the weight gradient decomposes its column once (tap_b) and its rows once
// (rows_b), then steps each row BK further per K tile with additions and compares (a
// division only when a row crosses into the next image), since integer division is slow
// on GPUs and scalarised on CPU drivers.
override COLS_A: bool = false;
override COLS_B: bool = false;
// In f16 plans the im2col entries are rounded to f16 as gathered, the values the unfused
// plan's f16 Im2Col output holds (an image in f32, such as the data, is otherwise read
// unrounded). The rounding is done on the bits, to nearest even as the CPU's conversion
// does, so it needs neither the f16 extension nor pack2x16float (a downlevel capability),
// and any binding signature can round.
override ROUND_COLS: bool = false;

fn gathered(v: f32) -> f32 {
    if (ROUND_COLS) {
        return round_to_f16(v);
    }
    return v;
}

// The f16 value nearest v (ties to even), as an f32: 10 of the 23 mantissa bits kept for
// normal f16 values, multiples of 2^-24 below 2^-14, infinity from 65520 up.
fn round_to_f16(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    let sign = bits & 0x80000000u;
    let a = bits & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        return v;
    }
    if (a < 0x38800000u) {
        // WGSL's round() takes ties to even; both scalings by 2^24 are exact.
        return round(v * 16777216.0) / 16777216.0;
    }
    let r = a + 0xfffu + ((a >> 13u) & 1u);
    if (r >= 0x47800000u) {
        return bitcast<f32>(sign | 0x7f800000u);
    }
    return bitcast<f32>(sign | (r & 0xffffe000u));
}

// The sentinel cols_index returns for an entry in the padding.
const PADDING: u32 = 0xffffffffu;

// Row r = (n·OH + oy)·OW + ox of im2col(x): the offset of image n in x and the top-left
// corner of its window, in padded coordinates.
struct Window {
    base: u32,
    y: u32,
    x: u32,
}

// Column q = (c·KH + ky)·KW + kx of im2col(x): the offset of channel c's plane and the tap's
// offset from the window's corner, (ky·DH, kx·DW).
struct Tap {
    plane: u32,
    y: u32,
    x: u32,
}

var<private> win_a: array<Window, LA>;
var<private> tap_b: Tap;
// (n, oy, ox) of the im2col rows the next fetch_b_cols stages, and BK as (rows, columns)
// of the output image, the step from one K tile to the next.
var<private> rows_b: array<vec3<u32>, LB>;
var<private> step_b: vec2<u32>;

fn cols_row(r: u32) -> Window {
    let ro = r / dims.e11;
    let ox = r - ro * dims.e11;
    let n = ro / dims.e10;
    let oy = ro - n * dims.e10;
    return Window(n * dims.e1 * dims.e2 * dims.e3, oy * dims.e6, ox * dims.e7);
}

fn cols_col(q: u32) -> Tap {
    let kq = q / dims.e5;
    let kx = q - kq * dims.e5;
    let ch = kq / dims.e4;
    let ky = kq - ch * dims.e4;
    return Tap(ch * dims.e2 * dims.e3, ky * dims.e13, kx * dims.e14);
}

// The index in x of im2col(x)[row, column], or PADDING. Compared with the padding before
// subtracting it, since u32 would wrap below zero.
fn cols_index(w: Window, p: Tap) -> u32 {
    let yy = w.y + p.y;
    let xx = w.x + p.x;
    if (yy < dims.e8 || yy - dims.e8 >= dims.e2 || xx < dims.e9 || xx - dims.e9 >= dims.e3) {
        return PADDING;
    }
    return w.base + p.plane + (yy - dims.e8) * dims.e3 + (xx - dims.e9);
}

// The A tile from im2col(x) (COLS_A): every float this invocation stages is in column
// k0 + t % BK.
fn fetch_a_cols(k0: u32) {
    let gk = k0 + t % BK;
    let tap = cols_col(gk);
    for (var l = 0u; l < LA; l++) {
        let gm = row0 + a_coord(t + l * NT).y;
        var v = 0.0;
        if (gk < dims.d2 && gm < dims.d0) {
            let i = cols_index(win_a[l], tap);
            if (i != PADDING) {
                v = gathered(ld0(i));
            }
        }
        pa[l] = v;
    }
}

// The B tile from im2col(x) (COLS_B): every float this invocation stages is in column
// col0 + t % BN (tap_b), in the rows rows_b holds, which then move on by BK. The product
// loops fetch K tiles in order from the workgroup's first k (k_first), as this requires.
fn fetch_b_cols(k0: u32) {
    let gn = col0 + t % BN;
    for (var l = 0u; l < LB; l++) {
        let gk = k0 + b_coord(t + l * NT).x;
        var p = rows_b[l];
        var v = 0.0;
        if (gk < dims.d2 && gn < dims.d1) {
            let win = Window(p.x * dims.e1 * dims.e2 * dims.e3, p.y * dims.e6, p.z * dims.e7);
            let i = cols_index(win, tap_b);
            if (i != PADDING) {
                v = gathered(ld1(i));
            }
        }
        pb[l] = v;
        p.z = p.z + step_b.y;
        p.y = p.y + step_b.x;
        if (p.z >= dims.e11) {
            p.z = p.z - dims.e11;
            p.y = p.y + 1u;
        }
        if (p.y >= dims.e10) {
            p.x = p.x + p.y / dims.e10;
            p.y = p.y % dims.e10;
        }
        rows_b[l] = p;
    }
}

// What an invocation's gathers need for the whole dispatch (begin() calls it).
fn begin_cols() {
    if (COLS_A) {
        for (var l = 0u; l < LA; l++) {
            win_a[l] = cols_row(row0 + a_coord(t + l * NT).y);
        }
    }
    if (COLS_B) {
        tap_b = cols_col(col0 + t % BN);
        for (var l = 0u; l < LB; l++) {
            let r = k_first + b_coord(t + l * NT).x;
            let ro = r / dims.e11;
            let n = ro / dims.e10;
            rows_b[l] = vec3<u32>(n, ro - n * dims.e10, r - ro * dims.e11);
        }
        let rows = BK / dims.e11;
        step_b = vec2<u32>(rows, BK - rows * dims.e11);
    }
}
