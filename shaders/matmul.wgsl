// out[M, N] = op(in0) · op(in1), the tiled product behind Op::MatMul.
//
// dims.d0 = M, d1 = N, d2 = K, d3 = 1 to add to out instead of overwriting it (the host
// splits a product too large for one binding along K and sums the pieces). in0 is [M, K] in memory, or [K, M] when TRANS_A; in1 is
// [K, N], or [N, K] when TRANS_B: the flags read an operand as its transpose in place, so
// no gradient needs a transposed copy.
//
// Each workgroup of 16x16 invocations computes one 64x64 tile of out. Tiles are numbered
// row-major (e0 = ceil(N/64) tiles per row) and the host folds their count into x and y
// (workgroup wg.x + wg.y·nwg.x computes that tile), so no dimension of the dispatch
// exceeds the device's limit; a workgroup past the last tile reads zeros and writes
// nothing. Invocation
// (tx, ty) owns the 4x4 block of rows ty + 16i and columns tx + 16j: interleaved rather
// than contiguous so that neighbouring invocations write neighbouring columns of out
// and read neighbouring words of the tiles. K is consumed 16 at a time through
// workgroup memory, and every sum runs in k order in f32.

override TRANS_A: bool = false;
override TRANS_B: bool = false;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

// Both tiles are stored k-major ([k][m] and [k][n]) so the inner loop reads a row of each.
// Rows are padded to 65 words: the loads that walk k fastest (in0 untransposed, in1
// transposed) would otherwise hit one memory bank 16 times over at a stride of 64.
var<workgroup> a_tile: array<array<f32, 65>, 16>;
var<workgroup> b_tile: array<array<f32, 65>, 16>;

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m = dims.d0;
    let n = dims.d1;
    let k = dims.d2;
    let tile = wg.x + wg.y * nwg.x;
    let row0 = (tile / dims.e0) * TILE;
    let col0 = (tile % dims.e0) * TILE;
    let tx = lid.x;
    let ty = lid.y;

    // acc_i[j]: row ty + 16i, column tx + 16j.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    let k_tiles = (k + TILE_K - 1u) / TILE_K;
    for (var kt = 0u; kt < k_tiles; kt++) {
        let k0 = kt * TILE_K;
        // 256 invocations stage 64x16 words of each operand, 4 each. Element e is mapped
        // so that consecutive invocations read consecutive addresses of whichever
        // dimension is contiguous in memory. Words past M, N or K are staged as 0, so the
        // padded k steps add exact zeros and any M, N, K work.
        for (var l = 0u; l < 4u; l++) {
            let e = t + l * 256u;
            if (TRANS_A) {
                // in0 is [K, M]: m is contiguous.
                let kk = e / TILE;
                let mm = e % TILE;
                let gk = k0 + kk;
                let gm = row0 + mm;
                var v = 0.0;
                if (gk < k && gm < m) {
                    v = in0[gk * m + gm];
                }
                a_tile[kk][mm] = v;
            } else {
                // in0 is [M, K]: k is contiguous.
                let mm = e / TILE_K;
                let kk = e % TILE_K;
                let gk = k0 + kk;
                let gm = row0 + mm;
                var v = 0.0;
                if (gk < k && gm < m) {
                    v = in0[gm * k + gk];
                }
                a_tile[kk][mm] = v;
            }
            if (TRANS_B) {
                // in1 is [N, K]: k is contiguous.
                let nn = e / TILE_K;
                let kk = e % TILE_K;
                let gk = k0 + kk;
                let gn = col0 + nn;
                var v = 0.0;
                if (gk < k && gn < n) {
                    v = in1[gn * k + gk];
                }
                b_tile[kk][nn] = v;
            } else {
                // in1 is [K, N]: n is contiguous.
                let kk = e / TILE;
                let nn = e % TILE;
                let gk = k0 + kk;
                let gn = col0 + nn;
                var v = 0.0;
                if (gk < k && gn < n) {
                    v = in1[gk * n + gn];
                }
                b_tile[kk][nn] = v;
            }
        }
        workgroupBarrier();

        for (var kk = 0u; kk < TILE_K; kk++) {
            let b = vec4<f32>(
                b_tile[kk][tx],
                b_tile[kk][tx + 16u],
                b_tile[kk][tx + 32u],
                b_tile[kk][tx + 48u],
            );
            acc0 = acc0 + a_tile[kk][ty] * b;
            acc1 = acc1 + a_tile[kk][ty + 16u] * b;
            acc2 = acc2 + a_tile[kk][ty + 32u] * b;
            acc3 = acc3 + a_tile[kk][ty + 48u] * b;
        }
        // The next iteration overwrites the tiles.
        workgroupBarrier();
    }

    store_row(row0 + ty, col0 + tx, acc0);
    store_row(row0 + ty + 16u, col0 + tx, acc1);
    store_row(row0 + ty + 32u, col0 + tx, acc2);
    store_row(row0 + ty + 48u, col0 + tx, acc3);
}

// Writes the in-bounds columns c, c+16, c+32, c+48 of row r.
fn store_row(r: u32, c: u32, v: vec4<f32>) {
    let m = dims.d0;
    let n = dims.d1;
    if (r >= m) {
        return;
    }
    let base = r * n;
    for (var j = 0u; j < 4u; j++) {
        let col = c + 16u * j;
        if (col < n) {
            if (dims.d3 == 1u) {
                out[base + col] = out[base + col] + v[j];
            } else {
                out[base + col] = v[j];
            }
        }
    }
}
