// out[M, N] = op(in0) · op(in1), the register-blocked product behind Op::MatMul.
//
// dims.d0 = M, d1 = N, d2 = K, d3 = 1 to add to out instead of overwriting it (the host
// splits a product too large for one binding along K and sums the pieces), e12 = the K of
// each part of a split-K product (with SPLIT_K; see below). in0 is [M, K]
// in memory, or [K, M] when TRANS_A; in1 is [K, N], or [N, K] when TRANS_B: the flags read
// an operand as its transpose in place, so no gradient needs a transposed copy.
//
// The tile configuration is a block of constants the host puts in front of this file, one
// module per configuration (src/backend/wgpu/matmul.rs lists them):
//   WX, WY  invocations per workgroup along N and along M;
//   TM, TN  rows and columns of out each invocation computes (multiples of 4);
//   BK      the depth of the K tiles staged in workgroup memory.
// A workgroup computes one BM x BN tile of out (BM = WY·TM, BN = WX·TN). Tiles are
// numbered row-major (dims.e0 = ceil(N / BN) tiles per row) and the host folds their
// count into x and y (workgroup wg.x + wg.y·nwg.x computes that tile), so no dimension of
// the dispatch exceeds the device's limit; a workgroup past the last tile returns at once.
//
// Invocation (tx, ty) owns rows ty·4 + r + g·4·WY (r < 4, g < TM/4) and columns
// tx·4 + c + h·4·WX (c < 4, h < TN/4): groups of four contiguous rows and columns,
// interleaved across the workgroup, so that it reads its operands from the workgroup
// tiles as whole vec4s and neighbouring invocations read neighbouring vec4s.
//
// Four entry points differ only in how they read global memory: `matmul` reads both
// operands a float at a time; `matmul_a4`, `matmul_b4` and `matmul_a4b4` read in0, in1 or
// both as vec4 through the aliases in0v and in1v (the host picks them when an operand's
// contiguous dimension, binding offset and length are multiples of 4 floats). Each has a
// `matmul_bias*` twin with the bias epilogue below.
//
// Every configuration and every entry point computes each output the same way: an f32
// accumulator starting at 0 that takes fma(a[k], b[k], acc) for k = 0, 1, .., K-1 in
// order (the K tail is padded with zeros in both operands, and fma(0, 0, acc) = acc), then
// adds it to out in accumulate mode. So the results do not depend on the configuration
// the autotuner picks: they are bit-identical.
//
// Op::MatMulBias runs the same kernel with a bias epilogue: out[M, N] = op(in0)·op(in1) +
// in2 (the bias [N], broadcast over the rows). The `matmul_bias*` entry points read the
// invocation's bias columns through ld2 before the product, and with the override HAS_BIAS
// set, store() adds them to each value (after the accumulate-mode add, so the last piece
// of a product the host cut into pieces along K adds the bias once) before its one store. In f32 that is the
// accumulator plus the bias in f32, rounded once: bit-identical to MatMul then BiasAdd.
// Why entry points as well as the constant: wgpu counts a binding an entry point's code
// mentions as used whatever the overrides are, and plain products bind no in2, so only
// the bias entry points may read it.
//
// Op::MatMulBiasAct adds an activation to that epilogue: the bias entry points with
// HAS_ACT set and ACT_KIND = Activation::code (relu, sigmoid or tanh) apply
// activation_core.wgsl's act_apply (prepended to every matmul module, the text the
// activation kernel runs) to the biased sum before the one store. In f32 that is
// bit-identical to MatMulBias then Activation; a product the host cut into pieces along K
// runs it in the last piece only, after the sum, as it does the bias (and a split-K
// product in its second pass, below).
//
// Op::ConvMatMul and Op::ConvWeightGrad run this kernel as an implicit GEMM, one operand
// gathered from an image: matmul_im2col.wgsl (prepended to every matmul module) has that
// half; fetch_a, fetch_b and begin() hand over to it when COLS_A or COLS_B is set.
//
// Split-K (SPLIT_K set, dims.e12 = L, a multiple of every BK): a product with few output
// tiles and a long K runs as ceil(K / L) partial products, part p summing k in
// [p·L, (p+1)·L), each a whole grid of tiles (workgroup f = wg.x + wg.y·nwg.x computes
// tile f % tiles of part f / tiles), so that many workgroups share a sum one workgroup
// would otherwise walk alone. A part stores its raw sums at out[p·M·N + row·N + col] (out is then the host's
// f32 scratch), without the accumulate-mode add or the epilogue: matmul_split.wgsl adds
// the parts in order and applies those. Each part is the same fma chain as above over its
// range, so the configuration still never changes a bit.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override HAS_ACT: bool = false;
override ACT_KIND: u32 = 0u;
// A part of a split-K product (dims.e12 its K). An override, so that the pipelines of
// unsplit products compile without the split's arithmetic and stores: as a runtime branch
// on e12 it made lavapipe's unsplit products up to half again slower.
override SPLIT_K: bool = false;

const BM: u32 = WY * TM;
const BN: u32 = WX * TN;
const NT: u32 = WX * WY;
// Rows (one per k) of the workgroup tiles in vec4s, padded by one vec4 so that the
// transposing stores (k fastest across invocations) spread over the memory banks.
const AS: u32 = BM / 4u + 1u;
const BS: u32 = BN / 4u + 1u;
// Floats of each operand one invocation stages per K tile.
const LA: u32 = BM * BK / NT;
const LB: u32 = BN * BK / NT;
// vec4 groups of rows and columns per invocation.
const RM: u32 = TM / 4u;
const RN: u32 = TN / 4u;

// Both tiles are stored k-major ([k][m] and [k][n]).
var<workgroup> a_s: array<vec4<f32>, BK * AS>;
var<workgroup> b_s: array<vec4<f32>, BK * BS>;

// vec4 views of the operands (only the vec4 entry points use them), read through their
// accessors like the scalar bindings (all-f32 rendition; shader_gen.rs generates the f16
// ones, whose views are array<vec4<f16>>).
@group(0) @binding(2) var<storage, read_write> in0v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> in1v: array<vec4<f32>>;
fn ld0v4(i: u32) -> vec4<f32> { return in0v[i]; }
fn ld1v4(i: u32) -> vec4<f32> { return in1v[i]; }

// acc[(g·4 + r)·RN + h]: row group g, row r, column group h.
var<private> acc: array<vec4<f32>, TM * RN>;
// The next K tile, fetched from global memory while the current one is multiplied.
var<private> pa: array<f32, LA>;
var<private> pb: array<f32, LB>;
var<private> pa4: array<vec4<f32>, LA / 4u>;
var<private> pb4: array<vec4<f32>, LB / 4u>;
var<private> tx: u32;
var<private> ty: u32;
var<private> t: u32;
var<private> row0: u32;
var<private> col0: u32;
// The first k of the workgroup's sum (its part's, under split-K) and where a part stores.
var<private> k_first: u32;
var<private> out_base: u32;
// The bias of the invocation's columns, in acc's column order (0 past N); filled by
// load_bias() in the bias entry points, read by store() when HAS_BIAS.
var<private> bias_v: array<vec4<f32>, RN>;

// Output tiles of one (partial) product, and the number of parts (1 unless split-K).
fn tile_count() -> u32 {
    return ((dims.d0 + BM - 1u) / BM) * dims.e0;
}

fn part_count() -> u32 {
    if (!SPLIT_K) {
        return 1u;
    }
    return (dims.d2 + dims.e12 - 1u) / dims.e12;
}

// What workgroup wg.x + wg.y·nwg.x computes: tile `tile` of part `part`. It depends on
// the workgroup alone, so the product loops' barriers stay in uniform control flow.
struct Work {
    tile: u32,
    part: u32,
}

fn work_of(flat: u32) -> Work {
    if (!SPLIT_K) {
        return Work(flat, 0u);
    }
    let tiles = tile_count();
    let part = flat / tiles;
    return Work(flat - part * tiles, part);
}

// Whether the workgroup has no tile: the host folds the workgroups into x and y, so the
// last row of the grid may run past the last tile of the last part.
fn idle(w: Work) -> bool {
    return w.part >= part_count() || w.tile >= tile_count();
}

// The first k of the workgroup's sum, and the number of K tiles it walks from there.
fn part_k0(w: Work) -> u32 {
    if (!SPLIT_K) {
        return 0u;
    }
    return w.part * dims.e12;
}

fn part_k_tiles(w: Work) -> u32 {
    var len = dims.d2;
    if (SPLIT_K) {
        len = min(dims.e12, dims.d2 - part_k0(w));
    }
    return (len + BK - 1u) / BK;
}

fn begin(w: Work, lid: vec3<u32>) {
    tx = lid.x;
    ty = lid.y;
    t = lid.x + lid.y * WX;
    let row_tile = w.tile / dims.e0;
    row0 = row_tile * BM;
    col0 = (w.tile - row_tile * dims.e0) * BN;
    k_first = part_k0(w);
    out_base = w.part * dims.d0 * dims.d1;
    begin_cols();
}

fn put_a(kk: u32, mm: u32, v: f32) {
    a_s[kk * AS + mm / 4u][mm % 4u] = v;
}

fn put_b(kk: u32, nn: u32, v: f32) {
    b_s[kk * BS + nn / 4u][nn % 4u] = v;
}

// Float e of the A tile: (kk, mm), mapped so that consecutive invocations read consecutive
// addresses of whichever dimension is contiguous in memory.
fn a_coord(e: u32) -> vec2<u32> {
    if (TRANS_A) {
        return vec2<u32>(e / BM, e % BM);
    }
    return vec2<u32>(e % BK, e / BK);
}

fn b_coord(e: u32) -> vec2<u32> {
    if (TRANS_B) {
        return vec2<u32>(e % BK, e / BK);
    }
    return vec2<u32>(e / BN, e % BN);
}

// Scalar reads; floats past M, N or K are 0.
fn fetch_a(k0: u32) {
    if (COLS_A) {
        fetch_a_cols(k0);
        return;
    }
    let m = dims.d0;
    let k = dims.d2;
    for (var l = 0u; l < LA; l++) {
        let c = a_coord(t + l * NT);
        let gk = k0 + c.x;
        let gm = row0 + c.y;
        var v = 0.0;
        if (gk < k && gm < m) {
            if (TRANS_A) {
                v = ld0(gk * m + gm);
            } else {
                v = ld0(gm * k + gk);
            }
        }
        pa[l] = v;
    }
}

fn stage_a() {
    for (var l = 0u; l < LA; l++) {
        let c = a_coord(t + l * NT);
        put_a(c.x, c.y, pa[l]);
    }
}

fn fetch_b(k0: u32) {
    if (COLS_B) {
        fetch_b_cols(k0);
        return;
    }
    let n = dims.d1;
    let k = dims.d2;
    for (var l = 0u; l < LB; l++) {
        let c = b_coord(t + l * NT);
        let gk = k0 + c.x;
        let gn = col0 + c.y;
        var v = 0.0;
        if (gk < k && gn < n) {
            if (TRANS_B) {
                v = ld1(gn * k + gk);
            } else {
                v = ld1(gk * n + gn);
            }
        }
        pb[l] = v;
    }
}

fn stage_b() {
    for (var l = 0u; l < LB; l++) {
        let c = b_coord(t + l * NT);
        put_b(c.x, c.y, pb[l]);
    }
}

// vec4 reads: the contiguous dimension is a multiple of 4, so a vector is wholly inside
// the operand or wholly outside (and then 0). Vector v of the A tile: when A is stored
// [K, M], (kk, mm) with mm a multiple of 4 (stored as one vec4); when it is [M, K],
// (kk, mm) with kk a multiple of 4 (stored as four floats).
fn a4_coord(v: u32) -> vec2<u32> {
    if (TRANS_A) {
        return vec2<u32>(v / (BM / 4u), (v % (BM / 4u)) * 4u);
    }
    return vec2<u32>((v % (BK / 4u)) * 4u, v / (BK / 4u));
}

fn b4_coord(v: u32) -> vec2<u32> {
    if (TRANS_B) {
        return vec2<u32>((v % (BK / 4u)) * 4u, v / (BK / 4u));
    }
    return vec2<u32>(v / (BN / 4u), (v % (BN / 4u)) * 4u);
}

fn fetch_a4(k0: u32) {
    let m = dims.d0;
    let k = dims.d2;
    for (var l = 0u; l < LA / 4u; l++) {
        let c = a4_coord(t + l * NT);
        let gk = k0 + c.x;
        let gm = row0 + c.y;
        var v = vec4<f32>(0.0);
        if (gk < k && gm < m) {
            if (TRANS_A) {
                v = ld0v4((gk * m + gm) / 4u);
            } else {
                v = ld0v4((gm * k + gk) / 4u);
            }
        }
        pa4[l] = v;
    }
}

fn stage_a4() {
    for (var l = 0u; l < LA / 4u; l++) {
        let c = a4_coord(t + l * NT);
        if (TRANS_A) {
            a_s[c.x * AS + c.y / 4u] = pa4[l];
        } else {
            for (var i = 0u; i < 4u; i++) {
                put_a(c.x + i, c.y, pa4[l][i]);
            }
        }
    }
}

fn fetch_b4(k0: u32) {
    let n = dims.d1;
    let k = dims.d2;
    for (var l = 0u; l < LB / 4u; l++) {
        let c = b4_coord(t + l * NT);
        let gk = k0 + c.x;
        let gn = col0 + c.y;
        var v = vec4<f32>(0.0);
        if (gk < k && gn < n) {
            if (TRANS_B) {
                v = ld1v4((gn * k + gk) / 4u);
            } else {
                v = ld1v4((gk * n + gn) / 4u);
            }
        }
        pb4[l] = v;
    }
}

fn stage_b4() {
    for (var l = 0u; l < LB / 4u; l++) {
        let c = b4_coord(t + l * NT);
        if (TRANS_B) {
            for (var i = 0u; i < 4u; i++) {
                put_b(c.x + i, c.y, pb4[l][i]);
            }
        } else {
            b_s[c.x * BS + c.y / 4u] = pb4[l];
        }
    }
}

// One K tile: for each k in order, the outer product of the invocation's TM values of A
// and TN values of B, added into the accumulators with fma.
fn multiply() {
    for (var kk = 0u; kk < BK; kk++) {
        var a: array<vec4<f32>, RM>;
        var b: array<vec4<f32>, RN>;
        for (var g = 0u; g < RM; g++) {
            a[g] = a_s[kk * AS + g * WY + ty];
        }
        for (var h = 0u; h < RN; h++) {
            b[h] = b_s[kk * BS + h * WX + tx];
        }
        for (var g = 0u; g < RM; g++) {
            for (var r = 0u; r < 4u; r++) {
                let av = vec4<f32>(a[g][r]);
                for (var h = 0u; h < RN; h++) {
                    let i = (g * 4u + r) * RN + h;
                    acc[i] = fma(av, b[h], acc[i]);
                }
            }
        }
    }
}

// The bias of the invocation's columns (bias entry points only: they alone read in2).
fn load_bias() {
    let n = dims.d1;
    for (var h = 0u; h < RN; h++) {
        let col = col0 + h * 4u * WX + tx * 4u;
        for (var c = 0u; c < 4u; c++) {
            if (col + c < n) {
                bias_v[h][c] = ld2(col + c);
            }
        }
    }
}

// Writes (or, with d3 = 1, adds) the in-bounds outputs of the invocation, plus the bias
// with HAS_BIAS, then the activation with HAS_ACT; a split-K part writes its raw sums.
fn store() {
    if (SPLIT_K) {
        store_part();
        return;
    }
    let m = dims.d0;
    let n = dims.d1;
    for (var g = 0u; g < RM; g++) {
        for (var r = 0u; r < 4u; r++) {
            let row = row0 + g * 4u * WY + ty * 4u + r;
            if (row >= m) {
                continue;
            }
            for (var h = 0u; h < RN; h++) {
                let col = col0 + h * 4u * WX + tx * 4u;
                let v = acc[(g * 4u + r) * RN + h];
                for (var c = 0u; c < 4u; c++) {
                    if (col + c < n) {
                        let i = row * n + col + c;
                        var x = v[c];
                        if (dims.d3 == 1u) {
                            x = ld_out(i) + x;
                        }
                        if (HAS_BIAS) {
                            x = x + bias_v[h][c];
                        }
                        if (HAS_ACT) {
                            x = act_apply(ACT_KIND, x, vec2(0.0));
                        }
                        st_out(i, x);
                    }
                }
            }
        }
    }
}

// A split-K part's raw sums, at its place in the scratch.
fn store_part() {
    let m = dims.d0;
    let n = dims.d1;
    for (var g = 0u; g < RM; g++) {
        for (var r = 0u; r < 4u; r++) {
            let row = row0 + g * 4u * WY + ty * 4u + r;
            for (var h = 0u; h < RN; h++) {
                let col = col0 + h * 4u * WX + tx * 4u;
                let v = acc[(g * 4u + r) * RN + h];
                for (var c = 0u; c < 4u; c++) {
                    if (row < m && col + c < n) {
                        st_out(out_base + row * n + col + c, v[c]);
                    }
                }
            }
        }
    }
}

// The product loops, one per way of reading the operands (scalar or vec4 for each), each
// leaving the invocation's outputs in acc: the next K tile is fetched from global memory
// into registers while the current one is multiplied out of workgroup memory.

fn product(k0: u32, tiles: u32) {
    fetch_a(k0);
    fetch_b(k0);
    for (var kt = 0u; kt < tiles; kt++) {
        stage_a();
        stage_b();
        workgroupBarrier();
        if (kt + 1u < tiles) {
            fetch_a(k0 + (kt + 1u) * BK);
            fetch_b(k0 + (kt + 1u) * BK);
        }
        multiply();
        workgroupBarrier();
    }
}

fn product_a4(k0: u32, tiles: u32) {
    fetch_a4(k0);
    fetch_b(k0);
    for (var kt = 0u; kt < tiles; kt++) {
        stage_a4();
        stage_b();
        workgroupBarrier();
        if (kt + 1u < tiles) {
            fetch_a4(k0 + (kt + 1u) * BK);
            fetch_b(k0 + (kt + 1u) * BK);
        }
        multiply();
        workgroupBarrier();
    }
}

fn product_b4(k0: u32, tiles: u32) {
    fetch_a(k0);
    fetch_b4(k0);
    for (var kt = 0u; kt < tiles; kt++) {
        stage_a();
        stage_b4();
        workgroupBarrier();
        if (kt + 1u < tiles) {
            fetch_a(k0 + (kt + 1u) * BK);
            fetch_b4(k0 + (kt + 1u) * BK);
        }
        multiply();
        workgroupBarrier();
    }
}

fn product_a4b4(k0: u32, tiles: u32) {
    fetch_a4(k0);
    fetch_b4(k0);
    for (var kt = 0u; kt < tiles; kt++) {
        stage_a4();
        stage_b4();
        workgroupBarrier();
        if (kt + 1u < tiles) {
            fetch_a4(k0 + (kt + 1u) * BK);
            fetch_b4(k0 + (kt + 1u) * BK);
        }
        multiply();
        workgroupBarrier();
    }
}

// The entry points: `matmul*` for Op::MatMul, `matmul_bias*` (with HAS_BIAS) for
// Op::MatMulBias; the suffix says which operands are read as vec4. A workgroup past the
// last tile returns at once (the tile index is uniform across the workgroup, so the
// barriers in the product loops stay in uniform control flow).

@compute @workgroup_size(WX, WY)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    product(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_a4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    product_a4(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_b4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    product_b4(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_a4b4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    product_a4b4(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_bias(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    load_bias();
    product(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_bias_a4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    load_bias();
    product_a4(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_bias_b4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    load_bias();
    product_b4(part_k0(w), part_k_tiles(w));
    store();
}

@compute @workgroup_size(WX, WY)
fn matmul_bias_a4b4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let w = work_of(wg.x + wg.y * nwg.x);
    if (idle(w)) {
        return;
    }
    begin(w, lid);
    load_bias();
    product_a4b4(part_k0(w), part_k_tiles(w));
    store();
}
