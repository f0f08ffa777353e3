// Row softmax and log-softmax and their gradients, mirroring src/backend/cpu/softmax.rs. One invocation per
// row, looping over the columns in order as the CPU does: rows are short (class counts),
// and a serial loop keeps the CPU's order of additions.
//
// dims.d0 = rows, dims.d1 = cols.

// The largest of in0's `cols` values from `base` (cols ≥ 1). Starting from the first
// element instead of −∞ (which WGSL cannot spell as a constant) gives the same maximum.
fn row_max(base: u32, cols: u32) -> f32 {
    var m = ld0(base);
    for (var j = 1u; j < cols; j++) {
        m = max(m, ld0(base + j));
    }
    return m;
}

// out = softmax(in0) per row, max-subtracted for stability.
@compute @workgroup_size(256)
fn softmax(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    if (r >= dims.d0 || cols == 0u) {
        return;
    }
    let base = r * cols;
    let m = row_max(base, cols);
    var total = 0.0;
    for (var j = 0u; j < cols; j++) {
        let e = exp(ld0(base + j) - m);
        st_out(base + j, e);
        total = total + e;
    }
    for (var j = 0u; j < cols; j++) {
        st_out(base + j, ld_out(base + j) / total);
    }
}

// out = log_softmax(in0) per row: (x − max) − log Σ exp(x − max).
@compute @workgroup_size(256)
fn log_softmax(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    if (r >= dims.d0 || cols == 0u) {
        return;
    }
    let base = r * cols;
    let m = row_max(base, cols);
    var total = 0.0;
    for (var j = 0u; j < cols; j++) {
        total = total + exp(ld0(base + j) - m);
    }
    let log_total = log(total);
    for (var j = 0u; j < cols; j++) {
        st_out(base + j, (ld0(base + j) - m) - log_total);
    }
}

// out = dy − exp(y)·Σ_c dy per row, with y = in0 (the log-softmax output) and dy = in1.
@compute @workgroup_size(256)
fn log_softmax_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    if (r >= dims.d0) {
        return;
    }
    let base = r * cols;
    var sum = 0.0;
    for (var j = 0u; j < cols; j++) {
        sum = sum + ld1(base + j);
    }
    for (var j = 0u; j < cols; j++) {
        st_out(base + j, ld1(base + j) - exp(ld0(base + j)) * sum);
    }
}

// out = y · (dy − Σ_c dy·y) per row, with y = in0 (the softmax output) and dy = in1.
@compute @workgroup_size(256)
fn softmax_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    if (r >= dims.d0) {
        return;
    }
    let base = r * cols;
    var dy_dot_y = 0.0;
    for (var j = 0u; j < cols; j++) {
        dy_dot_y = dy_dot_y + ld0(base + j) * ld1(base + j);
    }
    for (var j = 0u; j < cols; j++) {
        st_out(base + j, ld0(base + j) * (ld1(base + j) - dy_dot_y));
    }
}
