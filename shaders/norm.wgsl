// Batch and layer normalisation, mirroring src/backend/cpu/norm.rs (same formulas; PyTorch
// semantics: biased variance to normalise, unbiased for the running estimate).
//
// Batch norm sees x as [N, C, S] (S = H·W for NCHW, 1 for [N, C]); a channel's M = N·S
// values sit at (n·C + k)·S + s. Stats are [2, C]: row 0 the means, row 1 the biased
// variances. Layer norm normalises each row of [rows, cols] over its columns.
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2.. the op's
// inputs in op order. Every storage buffer is read_write because the executor binds
// slices of one arena buffer for inputs and outputs alike.
//
// Reductions run one workgroup of 256 per channel (or per row): each invocation sums a
// strided slice (t, t+256, ...) in order, then a fixed-order tree in workgroup memory
// combines them, so results are bit-identical from run to run (no atomics). A channel
// with many values and few channels beside it (the `cnn` preset's first batch norm: 32
// channels of 100,352 values) would leave most of a GPU idle that way, so the per-channel
// reductions also run in parts (src/backend/wgpu/channel_parts.rs): workgroup g sums part
// p = g % P of channel k = g / P, the values m in [p·L, min((p+1)·L, N·S)) (dims.e0 = P,
// dims.e1 = L), into a scratch of P partial results per channel that a second kernel
// combines in order. With P = 1 and L = N·S the part kernels are the whole-channel ones. The CPU sums
// sequentially instead, so the two agree to rounding, not bit for bit. Variances are
// two-pass: a second sweep over the data once the tree has shared the mean, since
// E[x²] − mean² cancels catastrophically in f32.
//
// Per-channel and per-row kernels take their channel/row from the workgroup index
// wid.x + wid.y·nwg.x, so a host may fold more than 65535 of them into y exactly as it
// folds 1-D dispatches; workgroups past the end return at once (a uniform exit, before
// any barrier).

const WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;
var<workgroup> partial2: array<vec2<f32>, WG>;

// Sums every invocation's `v` in a fixed order; the result is valid in all invocations.
// Must be reached in uniform control flow (it holds barriers).
fn tree_sum(t: u32, v: f32) -> f32 {
    partial[t] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride >> 1u) {
        if (t < stride) {
            partial[t] = partial[t] + partial[t + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // A following tree overwrites partial[0]: every invocation must have read it first.
    workgroupBarrier();
    return total;
}

// Two sums in one tree (same order per component as tree_sum).
fn tree_sum2(t: u32, v: vec2<f32>) -> vec2<f32> {
    partial2[t] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride >> 1u) {
        if (t < stride) {
            partial2[t] = partial2[t] + partial2[t + stride];
        }
        workgroupBarrier();
    }
    let total = partial2[0];
    workgroupBarrier();
    return total;
}

fn inv_std(variance: f32, eps: f32) -> f32 {
    return 1.0 / sqrt(variance + eps);
}

// The flat index of the m-th value (m < N·S, n-major) of channel k; d1 = C, d2 = S.
fn bn_index(m: u32, k: u32) -> u32 {
    let s = dims.d2;
    let n = m / s;
    return (n * dims.d1 + k) * s + (m - n * s);
}

// The channel (or row) a per-channel (per-row) workgroup works on.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The part a per-channel workgroup sums: (channel k, part p, first m, end m), from
// dims.e0 = parts per channel and dims.e1 = values per part.
fn channel_part(wid: vec3<u32>, nwg: vec3<u32>) -> vec4<u32> {
    let g = group_index(wid, nwg);
    let parts = dims.e0;
    let k = g / parts;
    let p = g - k * parts;
    let start = p * dims.e1;
    let end = min(start + dims.e1, dims.d0 * dims.d2);
    return vec4<u32>(k, p, start, end);
}

// Mean and 1/sqrt(biased var + eps) of row `r` of in0 ([rows, cols], cols = d1), two-pass.
// Valid in all invocations; must be reached in uniform control flow.
fn row_stats(t: u32, r: u32, eps: f32) -> vec2<f32> {
    let cols = dims.d1;
    let base = r * cols;
    var acc = 0.0;
    for (var j = t; j < cols; j += WG) {
        acc = acc + ld0(base + j);
    }
    let mean = tree_sum(t, acc) / f32(cols);
    var acc2 = 0.0;
    for (var j = t; j < cols; j += WG) {
        let d = ld0(base + j) - mean;
        acc2 = acc2 + d * d;
    }
    let variance = tree_sum(t, acc2) / f32(cols);
    return vec2<f32>(mean, inv_std(variance, eps));
}

// out [2, C·P] = (mean, biased variance) of each part of each channel of in0 = x [N, C, S]:
// row 0 the means, row 1 the variances, part p of channel k at k·P + p. With P = 1 that is
// the [2, C] stats themselves; with more parts batch_norm_stats_combine merges them.
// Dims: d0 = N, d1 = C, d2 = S, e0 = P, e1 = L.
// Dispatch: C·P workgroups ((C·P, 1, 1); fold into y past 65535), one per part.
@compute @workgroup_size(256)
fn batch_norm_stats(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let part = channel_part(wid, nwg);
    let k = part.x;
    let c = dims.d1;
    if (k >= c) {
        return;
    }
    let count = f32(part.w - part.z);
    var acc = 0.0;
    for (var m = part.z + t; m < part.w; m += WG) {
        acc = acc + ld0(bn_index(m, k));
    }
    let mean = tree_sum(t, acc) / count;
    var acc2 = 0.0;
    for (var m = part.z + t; m < part.w; m += WG) {
        let d = ld0(bn_index(m, k)) - mean;
        acc2 = acc2 + d * d;
    }
    let variance = tree_sum(t, acc2) / count;
    if (t == 0u) {
        let at = k * dims.e0 + part.y;
        st_out(at, mean);
        st_out(c * dims.e0 + at, variance);
    }
}

// out [2, C] = the (mean, biased variance) of each channel from in0 = its parts' [2, C·P]
// (batch_norm_stats with P parts), merged in part order by Chan et al.'s pairwise update,
// which adds the squared distance between the parts' means instead of re-reading x.
// Dims: d0 = N, d1 = C, d2 = S, e0 = P, e1 = L.
// Dispatch: C invocations (1-D).
@compute @workgroup_size(256)
fn batch_norm_stats_combine(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (k >= c) {
        return;
    }
    let parts = dims.e0;
    let total = dims.d0 * dims.d2;
    let row = c * parts;
    var n = f32(min(dims.e1, total));
    var mean = ld0(k * parts);
    var m2 = ld0(row + k * parts) * n;
    for (var p = 1u; p < parts; p++) {
        let start = p * dims.e1;
        let nb = f32(min(start + dims.e1, total) - start);
        let mb = ld0(k * parts + p);
        let delta = mb - mean;
        let merged = n + nb;
        mean = mean + delta * (nb / merged);
        m2 = m2 + ld0(row + k * parts + p) * nb + delta * delta * (n * nb / merged);
        n = merged;
    }
    st_out(k, mean);
    st_out(c + k, m2 / n);
}

// out = (x − mean)·(1/sqrt(var + eps))·gamma + beta per channel, from in0 = x [N, C, S],
// in1 = stats [2, C] (batch or running), in2 = gamma [C], in3 = beta [C].
// Dims: d0 = N, d1 = C, d2 = S, f0 = eps.
// Dispatch: N·C·S invocations (1-D).
@compute @workgroup_size(256)
fn batch_norm_apply(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (i >= dims.d0 * c * dims.d2) {
        return;
    }
    let k = (i / dims.d2) % c;
    st_out(i, (ld0(i) - ld1(k)) * inv_std(ld1(c + k), dims.f0) * ld2(k) + ld3(k));
}

// out = in0·gamma + beta per channel: in0 = x [N, C, S], in1 = gamma [C], in2 = beta [C]
// (group norm's affine, after its normalisation).
// Dims: d0 = N, d1 = C, d2 = S.
// Dispatch: N·C·S invocations (1-D).
@compute @workgroup_size(256)
fn channel_affine(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (i >= dims.d0 * c * dims.d2) {
        return;
    }
    let k = (i / dims.d2) % c;
    st_out(i, ld0(i) * ld1(k) + ld2(k));
}

// PReLU, per channel of in0 = x [N, C, S] with in1 = weight [C]: out = x where x > 0,
// else weight·x. Dims: d0 = N, d1 = C, d2 = S. Dispatch: N·C·S invocations (1-D).
@compute @workgroup_size(256)
fn prelu(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (i >= dims.d0 * c * dims.d2) {
        return;
    }
    let x = ld0(i);
    st_out(i, select(ld1((i / dims.d2) % c) * x, x, x > 0.0));
}

// PReLU's input gradient: out = dy where x > 0, else weight·dy; in0 = x, in1 = weight [C],
// in2 = dy. Dims and dispatch as prelu.
@compute @workgroup_size(256)
fn prelu_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (i >= dims.d0 * c * dims.d2) {
        return;
    }
    let dy = ld2(i);
    st_out(i, select(ld1((i / dims.d2) % c) * dy, dy, ld0(i) > 0.0));
}

// The terms of PReLU's weight gradient: out = 0 where x > 0, else x·dy; in0 = x, in1 = dy
// (channel_sum adds them per channel). Dims and dispatch as prelu.
@compute @workgroup_size(256)
fn prelu_weight_terms(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0 * dims.d1 * dims.d2) {
        return;
    }
    let x = ld0(i);
    st_out(i, select(x * ld1(i), 0.0, x > 0.0));
}

// out [5, C] = each channel's (mean, invstd, gamma·invstd, Σdy, Σdy·x̂), what
// batch_norm_grad reads, from in0 = stats [2, C] (batch_norm_stats of x), in1 = gamma [C],
// in2 = Σdy·x̂ [C] (batch_norm_gamma_grad), in3 = Σdy [C] (channel_sum).
// Dims: d1 = C, f0 = eps.
// Dispatch: C invocations (1-D).
@compute @workgroup_size(256)
fn batch_norm_grad_coeffs(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    if (k >= c) {
        return;
    }
    let istd = inv_std(ld0(c + k), dims.f0);
    st_out(k, ld0(k));
    st_out(c + k, istd);
    st_out(2u * c + k, ld1(k) * istd);
    st_out(3u * c + k, ld3(k));
    st_out(4u * c + k, ld2(k));
}

// out = dx [N, C, S], the gradient through the batch statistics:
// dx = gamma·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), M = N·S, from in0 = x, in1 = the
// channels' coefficients [5, C] (batch_norm_grad_coeffs), in2 = dy [N, C, S].
// Dims: d0 = N, d1 = C, d2 = S.
// Dispatch: N·C·S invocations (1-D).
@compute @workgroup_size(256)
fn batch_norm_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d1;
    let count = dims.d0 * dims.d2;
    if (i >= count * c) {
        return;
    }
    let k = (i / dims.d2) % c;
    let fcount = f32(count);
    let xhat = (ld0(i) - ld1(k)) * ld1(c + k);
    let dx = fcount * ld2(i) - ld1(3u * c + k) - xhat * ld1(4u * c + k);
    st_out(i, (ld1(2u * c + k) / fcount) * dx);
}

// out [C·P] = Σ dy·x̂ over each part of each channel (gamma's gradient; with P = 1 the
// [C] gradient itself), from in0 = x [N, C, S], in1 = stats [2, C], in2 = dy [N, C, S].
// Dims: d0 = N, d1 = C, d2 = S, f0 = eps, e0 = P, e1 = L.
// Dispatch: C·P workgroups ((C·P, 1, 1); fold into y past 65535), one per part.
@compute @workgroup_size(256)
fn batch_norm_gamma_grad(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let part = channel_part(wid, nwg);
    let k = part.x;
    let c = dims.d1;
    if (k >= c) {
        return;
    }
    let mean = ld1(k);
    let istd = inv_std(ld1(c + k), dims.f0);
    var acc = 0.0;
    for (var m = part.z + t; m < part.w; m += WG) {
        let i = bn_index(m, k);
        acc = acc + ld2(i) * ((ld0(i) - mean) * istd);
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        st_out(k * dims.e0 + part.y, total);
    }
}

// out [C·P] = Σ dy over each part of each channel (beta's gradient; with P = 1 the [C]
// gradient itself), from in0 = dy [N, C, S].
// Dims: d0 = N, d1 = C, d2 = S, e0 = P, e1 = L.
// Dispatch: C·P workgroups ((C·P, 1, 1); fold into y past 65535), one per part.
@compute @workgroup_size(256)
fn channel_sum(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let part = channel_part(wid, nwg);
    let k = part.x;
    if (k >= dims.d1) {
        return;
    }
    var acc = 0.0;
    for (var m = part.z + t; m < part.w; m += WG) {
        acc = acc + ld0(bn_index(m, k));
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        st_out(k * dims.e0 + part.y, total);
    }
}

// out [C] = each channel's parts added in order, from in0 = [C·P] (channel_sum or
// batch_norm_gamma_grad with P parts).
// Dims: d1 = C, e0 = P.
// Dispatch: C invocations (1-D).
@compute @workgroup_size(256)
fn channel_parts_sum(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k = gid.x + gid.y * nwg.x * 256u;
    if (k >= dims.d1) {
        return;
    }
    let parts = dims.e0;
    var acc = 0.0;
    for (var p = 0u; p < parts; p++) {
        acc = acc + ld0(k * parts + p);
    }
    st_out(k, acc);
}

// Updates out = running [2, C] (mean row, variance row) IN PLACE from in0 = batch stats
// [2, C] of `count` values per channel: mean ← (1 − m)·mean + m·batch_mean,
// var ← (1 − m)·var + m·batch_var·count/(count − 1); with count = 1 the biased variance is
// kept (PyTorch refuses such a batch in training; dividing by zero would store NaN).
// Dims: d0 = C, d1 = count (= N·S), f0 = momentum.
// Dispatch: C invocations (1-D).
@compute @workgroup_size(256)
fn batch_norm_running(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k = gid.x + gid.y * nwg.x * 256u;
    let c = dims.d0;
    if (k >= c) {
        return;
    }
    let m = dims.f0;
    let keep = 1.0 - m;
    let count = dims.d1;
    var bessel = 1.0;
    if (count > 1u) {
        bessel = f32(count) / f32(count - 1u);
    }
    st_out(k, keep * ld_out(k) + m * ld0(k));
    st_out(c + k, keep * ld_out(c + k) + m * (ld0(c + k) * bessel));
}

// out = layer norm of each row of in0 = x [rows, cols]: (x − mean)·invstd·gamma + beta,
// in1 = gamma [cols], in2 = beta [cols].
// Dims: d0 = rows, d1 = cols, f0 = eps.
// Dispatch: rows workgroups ((rows, 1, 1); fold into y past 65535), one per row.
@compute @workgroup_size(256)
fn layer_norm(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = group_index(wid, nwg);
    if (r >= dims.d0) {
        return;
    }
    let cols = dims.d1;
    let stats = row_stats(t, r, dims.f0);
    let base = r * cols;
    for (var j = t; j < cols; j += WG) {
        st_out(base + j, (ld0(base + j) - stats.x) * stats.y * ld1(j) + ld2(j));
    }
}

// out = dx [rows, cols] of layer norm, the row statistics recomputed from in0 = x:
// with g = dy·gamma, dx = invstd·(g − mean(g) − x̂·mean(g·x̂)); in1 = gamma [cols],
// in2 = dy [rows, cols].
// Dims: d0 = rows, d1 = cols, f0 = eps.
// Dispatch: rows workgroups ((rows, 1, 1); fold into y past 65535), one per row.
@compute @workgroup_size(256)
fn layer_norm_grad(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = group_index(wid, nwg);
    if (r >= dims.d0) {
        return;
    }
    let cols = dims.d1;
    let stats = row_stats(t, r, dims.f0);
    let mean = stats.x;
    let istd = stats.y;
    let base = r * cols;
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = t; j < cols; j += WG) {
        let g = ld2(base + j) * ld1(j);
        acc = acc + vec2<f32>(g, g * ((ld0(base + j) - mean) * istd));
    }
    let means = tree_sum2(t, acc) / f32(cols);
    for (var j = t; j < cols; j += WG) {
        let xhat = (ld0(base + j) - mean) * istd;
        st_out(base + j, istd * (ld2(base + j) * ld1(j) - means.x - xhat * means.y));
    }
}

// out [cols] = Σ over rows of dy·x̂ (layer norm's gamma gradient), from in0 = x
// [rows, cols], in1 = dy [rows, cols]; each column sums its rows in order, as the CPU does.
// For a few rows only: with more (channel_parts.rs) the same gradient is
// layer_norm_row_stats, then layer_norm_gamma_grad_partial, then channel_parts_sum.
// Dims: d0 = rows, d1 = cols, f0 = eps.
// Dispatch: cols invocations (1-D, as any 1-D kernel, folded into y past 65535 groups).
// Nothing is kept from the forward pass, so each workgroup (256 columns) re-derives every
// row's statistics with all its invocations, by the very tree layer_norm uses; the rows
// are then a sequential loop, each invocation adding its column's term. That costs
// ceil(cols/256) reads of x, not the rows·cols² of an invocation re-deriving them alone.
@compute @workgroup_size(256)
fn layer_norm_gamma_grad(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let cols = dims.d1;
    let first = group_index(wid, nwg) * WG;
    // Uniform per workgroup, so the exit happens before any barrier for all or none.
    if (first >= cols) {
        return;
    }
    let j = first + t;
    let inside = j < cols;
    var acc = 0.0;
    for (var r = 0u; r < dims.d0; r++) {
        let stats = row_stats(t, r, dims.f0);
        if (inside) {
            let i = r * cols + j;
            acc = acc + ld1(i) * ((ld0(i) - stats.x) * stats.y);
        }
    }
    if (inside) {
        st_out(j, acc);
    }
}

// out [2, rows] = each row's (mean, 1/sqrt(biased var + eps)) of in0 = x [rows, cols], by
// the very tree layer_norm uses.
// Dims: d0 = rows, d1 = cols, f0 = eps.
// Dispatch: rows workgroups ((rows, 1, 1); fold into y past 65535), one per row.
@compute @workgroup_size(256)
fn layer_norm_row_stats(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = group_index(wid, nwg);
    if (r >= dims.d0) {
        return;
    }
    let stats = row_stats(t, r, dims.f0);
    if (t == 0u) {
        st_out(r, stats.x);
        st_out(dims.d0 + r, stats.y);
    }
}

// out [cols·P] = Σ dy·x̂ over the rows [p·L, min((p+1)·L, rows)) of part p, for column j
// at j·P + p (P = 1: the [cols] gradient itself), in row order, from in0 = x [rows, cols],
// in1 = the rows' stats [2, rows] (layer_norm_row_stats), in2 = dy [rows, cols].
// Dims: d0 = rows, d1 = cols, e0 = P, e1 = L, e2 = columns rounded up to 256.
// Dispatch: P·e2 invocations (1-D): invocation i sums column i % e2 over part i / e2, so
// neighbouring invocations read neighbouring columns.
@compute @workgroup_size(256)
fn layer_norm_gamma_grad_partial(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    let p = i / dims.e2;
    let j = i - p * dims.e2;
    if (j >= cols || p >= dims.e0) {
        return;
    }
    let rows = dims.d0;
    let end = min((p + 1u) * dims.e1, rows);
    var acc = 0.0;
    for (var r = p * dims.e1; r < end; r++) {
        let at = r * cols + j;
        acc = acc + ld2(at) * ((ld0(at) - ld1(r)) * ld1(rows + r));
    }
    st_out(j * dims.e0 + p, acc);
}

