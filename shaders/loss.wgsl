// Losses and their gradients, mirroring src/backend/cpu/loss.rs. Labels are f32 holding
// class indices.
//
// The scalar losses run as one workgroup of 256: each invocation accumulates its rows
// (t, t+256, ...) in order, then a fixed-order tree in workgroup memory combines them, so
// a loss is bit-identical from run to run (no atomics).

const WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;

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

// The class index a label holds, clamped into [0, cols) as the CPU clamps it (its labels
// are checked on the host, so this only keeps a bad one from reading out of the row).
fn class_index(label: f32, cols: u32) -> u32 {
    return u32(clamp(label, 0.0, f32(cols - 1u)));
}

// log Σ_j exp(x_j) of the row starting at `base`, max-subtracted as the CPU does.
// Starting the max at the first element instead of −∞ gives the same value.
fn row_log_sum_exp(base: u32, cols: u32) -> f32 {
    var m = ld0(base);
    for (var j = 1u; j < cols; j++) {
        m = max(m, ld0(base + j));
    }
    var s = 0.0;
    for (var j = 0u; j < cols; j++) {
        s = s + exp(ld0(base + j) - m);
    }
    return m + log(s);
}

// out[0] = mean over rows of (1−ε)·(lse − x_y) + ε·mean_c(lse − x_c): PyTorch's
// cross_entropy with label_smoothing ε. d0 = rows, d1 = cols, f0 = ε; in0 logits, in1 labels.
// Dispatched as a single workgroup.
@compute @workgroup_size(256)
fn cross_entropy(@builtin(local_invocation_index) t: u32) {
    let rows = dims.d0;
    let cols = dims.d1;
    let eps = dims.f0;
    let c = f32(cols);
    var total = 0.0;
    for (var r = t; r < rows; r += WG) {
        let base = r * cols;
        let lse = row_log_sum_exp(base, cols);
        let y = class_index(ld1(r), cols);
        let nll = lse - ld0(base + y);
        var s = 0.0;
        for (var j = 0u; j < cols; j++) {
            s = s + (lse - ld0(base + j));
        }
        let mean_nll = s / c;
        total = total + (1.0 - eps) * nll + eps * mean_nll;
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(rows));
    }
}

// out = (softmax(x) − q)·dloss/rows with q = (1−ε)·onehot(label) + ε/C; one invocation per
// row. d0 = rows, d1 = cols, d3 = the batch's rows (the mean's divisor: a piece of a
// split batch still divides by the whole), f0 = ε; in0 logits, in1 labels, in2 dloss [1].
@compute @workgroup_size(256)
fn cross_entropy_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * 256u;
    let rows = dims.d0;
    let cols = dims.d1;
    if (r >= rows) {
        return;
    }
    let eps = dims.f0;
    let off = eps / f32(cols);
    let scale = ld2(0) / f32(dims.d3);
    let base = r * cols;
    let lse = row_log_sum_exp(base, cols);
    let y = class_index(ld1(r), cols);
    for (var j = 0u; j < cols; j++) {
        let q = select(off, 1.0 - eps + off, j == y);
        st_out(base + j, (exp(ld0(base + j) - lse) - q) * scale);
    }
}

// out[0] = mean of (p − t)²; d0 = n; in0 predictions, in1 targets. Single workgroup.
@compute @workgroup_size(256)
fn mse(@builtin(local_invocation_index) t: u32) {
    let n = dims.d0;
    var total = 0.0;
    for (var i = t; i < n; i += WG) {
        let d = ld0(i) - ld1(i);
        total = total + d * d;
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(n));
    }
}

// out = (p − t)·2·dloss/n; d0 = elements here, d3 = n, the mean's divisor (the whole
// tensor's count when the host splits it); in0 predictions, in1 targets, in2 dloss [1].
// The other losses' gradients below read d3 the same way.
@compute @workgroup_size(256)
fn mse_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = dims.d0;
    if (i >= n) {
        return;
    }
    let scale = 2.0 * ld2(0) / f32(dims.d3);
    st_out(i, (ld0(i) - ld1(i)) * scale);
}

// The losses below mirror the CPU's `mean_loss` (forward: single workgroup, d0 = n, in0
// predictions or logits, in1 targets) and `mean_loss_grad` (one invocation per element,
// in2 dloss [1]); f0 is β or δ where the loss has one.

// sign(d) with sign(0) = 0, as torch.sign.
fn sign0(d: f32) -> f32 {
    if (d > 0.0) {
        return 1.0;
    } else if (d < 0.0) {
        return -1.0;
    }
    return 0.0;
}

// max(x, 0) − x·t + ln(1 + e^(−|x|)), the first part as x·(1 − t) or −x·t: products of
// non-negative factors for targets in [0, 1], so no cancellation. The exponent is never
// positive (WGSL may assume no infinities), and 1 + e^(−|x|) lies in (1, 2].
fn bce_term(x: f32, t: f32) -> f32 {
    var linear: f32;
    if (x > 0.0) {
        linear = x * (1.0 - t);
    } else {
        linear = -x * t;
    }
    return linear + log(1.0 + exp(-abs(x)));
}

// 1/(1 + e^(−x)) from e^(−|x|), so the exponential never overflows.
fn stable_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    if (x >= 0.0) {
        return 1.0 / (1.0 + e);
    }
    return e / (1.0 + e);
}

// β = 0 never takes the quadratic branch (no division by zero): the L1 loss.
fn smooth_l1_term(d: f32, beta: f32) -> f32 {
    let z = abs(d);
    if (z < beta) {
        return 0.5 * z * z / beta;
    }
    return z - 0.5 * beta;
}

// ±1 outside (−β, β), d/β inside; d = 0 with β = 0 gets sign(0) = 0.
fn smooth_l1_slope(d: f32, beta: f32) -> f32 {
    if (d < -beta) {
        return -1.0;
    } else if (d > beta) {
        return 1.0;
    } else if (beta > 0.0) {
        return d / beta;
    }
    return 0.0;
}

fn huber_term(d: f32, delta: f32) -> f32 {
    let z = abs(d);
    if (z < delta) {
        return 0.5 * z * z;
    }
    return delta * (z - 0.5 * delta);
}

// d clamped to [−δ, δ].
fn huber_slope(d: f32, delta: f32) -> f32 {
    if (d < -delta) {
        return -delta;
    } else if (d > delta) {
        return delta;
    }
    return d;
}

// The flat element index of a 1-D launch folded into y past 65535 workgroups.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// out[0] = mean of bce_term: PyTorch's binary_cross_entropy_with_logits. Single workgroup.
@compute @workgroup_size(256)
fn bce_with_logits(@builtin(local_invocation_index) t: u32) {
    let n = dims.d0;
    var total = 0.0;
    for (var i = t; i < n; i += WG) {
        total = total + bce_term(ld0(i), ld1(i));
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(n));
    }
}

// out = (sigmoid(x) − t)·dloss/n.
@compute @workgroup_size(256)
fn bce_with_logits_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let n = dims.d0;
    if (i >= n) {
        return;
    }
    let scale = ld2(0) / f32(dims.d3);
    st_out(i, (stable_sigmoid(ld0(i)) - ld1(i)) * scale);
}

// out[0] = mean of |p − t|. Single workgroup.
@compute @workgroup_size(256)
fn l1(@builtin(local_invocation_index) t: u32) {
    let n = dims.d0;
    var total = 0.0;
    for (var i = t; i < n; i += WG) {
        total = total + abs(ld0(i) - ld1(i));
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(n));
    }
}

// out = sign(p − t)·dloss/n.
@compute @workgroup_size(256)
fn l1_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let n = dims.d0;
    if (i >= n) {
        return;
    }
    let scale = ld2(0) / f32(dims.d3);
    st_out(i, sign0(ld0(i) - ld1(i)) * scale);
}

// out[0] = mean of smooth_l1_term with β = f0. Single workgroup.
@compute @workgroup_size(256)
fn smooth_l1(@builtin(local_invocation_index) t: u32) {
    let n = dims.d0;
    let beta = dims.f0;
    var total = 0.0;
    for (var i = t; i < n; i += WG) {
        total = total + smooth_l1_term(ld0(i) - ld1(i), beta);
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(n));
    }
}

// out = smooth_l1_slope(p − t)·dloss/n with β = f0.
@compute @workgroup_size(256)
fn smooth_l1_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let n = dims.d0;
    if (i >= n) {
        return;
    }
    let scale = ld2(0) / f32(dims.d3);
    st_out(i, smooth_l1_slope(ld0(i) - ld1(i), dims.f0) * scale);
}

// out[0] = mean of huber_term with δ = f0. Single workgroup.
@compute @workgroup_size(256)
fn huber(@builtin(local_invocation_index) t: u32) {
    let n = dims.d0;
    let delta = dims.f0;
    var total = 0.0;
    for (var i = t; i < n; i += WG) {
        total = total + huber_term(ld0(i) - ld1(i), delta);
    }
    let sum = tree_sum(t, total);
    if (t == 0u) {
        st_out(0, sum / f32(n));
    }
}

// out = huber_slope(p − t)·dloss/n with δ = f0.
@compute @workgroup_size(256)
fn huber_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let n = dims.d0;
    if (i >= n) {
        return;
    }
    let scale = ld2(0) / f32(dims.d3);
    st_out(i, huber_slope(ld0(i) - ld1(i), dims.f0) * scale);
}
