// Reductions and classification metrics, mirroring src/backend/cpu/reduce.rs.
//
// `sum`, `mean` and `correct` run as one workgroup of 256: each invocation accumulates a
// strided slice (t, t+256, ...) in order, then a fixed-order tree in workgroup memory
// combines them, so results are bit-identical from run to run (no atomics).

const WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;
// Counts stay integers until the end so that they are exact however many rows there are.
var<workgroup> counts: array<u32, WG>;

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
    return partial[0];
}

fn tree_count(t: u32, v: u32) -> u32 {
    counts[t] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride >> 1u) {
        if (t < stride) {
            counts[t] = counts[t] + counts[t + stride];
        }
        workgroupBarrier();
    }
    return counts[0];
}

fn strided_sum(t: u32, n: u32) -> f32 {
    var acc = 0.0;
    for (var i = t; i < n; i += WG) {
        acc = acc + ld0(i);
    }
    return acc;
}

// Index of the row's maximum, the first one on ties (a later element must be strictly
// greater to win), as torch.argmax.
fn row_argmax(base: u32, cols: u32) -> u32 {
    var best = 0u;
    var best_v = ld0(base);
    for (var j = 1u; j < cols; j++) {
        let v = ld0(base + j);
        if (v > best_v) {
            best = j;
            best_v = v;
        }
    }
    return best;
}

// out[0] = Σ in0; d0 = n. Single workgroup.
@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_index) t: u32) {
    let total = tree_sum(t, strided_sum(t, dims.d0));
    if (t == 0u) {
        st_out(0, total);
    }
}

// out[0] = Σ in0², the L2 penalty; d0 = n. Single workgroup.
@compute @workgroup_size(256)
fn sum_squares(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < dims.d0; i += WG) {
        acc = acc + ld0(i) * ld0(i);
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        st_out(0, total);
    }
}

// out[0] = Σ |in0|, the L1 penalty; d0 = n. Single workgroup.
@compute @workgroup_size(256)
fn sum_abs(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < dims.d0; i += WG) {
        acc = acc + abs(ld0(i));
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        st_out(0, total);
    }
}

// out = 2·x·dy (the L2 penalty's gradient), in0 = x, in1 = dy [1]; d0 = n, 1-D.
@compute @workgroup_size(256)
fn sum_squares_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld0(i) * (2.0 * ld1(0)));
}

// out = sign(x)·dy (the L1 penalty's gradient, sign(0) = 0 as torch.sign), in0 = x,
// in1 = dy [1]; d0 = n, 1-D.
@compute @workgroup_size(256)
fn sum_abs_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let x = ld0(i);
    let dy = ld1(0);
    st_out(i, select(select(0.0, -dy, x < 0.0), dy, x > 0.0));
}

// out[0] = Σ in0 / n; d0 = n. Single workgroup.
@compute @workgroup_size(256)
fn mean(@builtin(local_invocation_index) t: u32) {
    let total = tree_sum(t, strided_sum(t, dims.d0));
    if (t == 0u) {
        st_out(0, total / f32(dims.d0));
    }
}

// out[r] = f32(argmax of row r); d0 = rows, d1 = cols. One invocation per row.
@compute @workgroup_size(256)
fn argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= dims.d0) {
        return;
    }
    st_out(r, f32(row_argmax(r * dims.d1, dims.d1)));
}

// out[0] = number of rows whose argmax equals the label, as f32; d0 = rows, d1 = cols,
// in0 logits, in1 labels. Compared as floats, as the CPU compares them. Single workgroup.
@compute @workgroup_size(256)
fn correct(@builtin(local_invocation_index) t: u32) {
    let rows = dims.d0;
    let cols = dims.d1;
    var hits = 0u;
    for (var r = t; r < rows; r += WG) {
        if (f32(row_argmax(r * cols, cols)) == ld1(r)) {
            hits += 1u;
        }
    }
    let total = tree_count(t, hits);
    if (t == 0u) {
        st_out(0, f32(total));
    }
}

// out[d0] += in0[0] * f0: adds a weighted [1] value (a batch's loss, its correct count) to metric
// accumulator d0; `out` is bound to the metrics buffer. Dispatched as one invocation.
@compute @workgroup_size(1)
fn accumulate() {
    st_out(dims.d0, ld_out(dims.d0) + ld0(0) * dims.f0);
}
