// Element-wise and broadcast kernels, mirroring src/backend/cpu/elementwise.rs.
//
// Bindings follow the graph-op convention: 0 the Dims uniform, 1 the output, 2.. the op's
// inputs in op order. Every storage buffer is read_write because the executor binds
// slices of one arena buffer for inputs and outputs alike.

// d0 = n, d1 = cols: out[i] = x[i] + b[i % cols].
@compute @workgroup_size(256)
fn bias_add(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld0(i) + ld1(i % dims.d1));
}

// d0 = rows, d1 = cols, d2 = 1 to add to out (the host sums row ranges of a tensor too
// large for one binding); one invocation per column. Summing down the column in row order
// keeps the CPU's order of additions, and neighbouring invocations read neighbouring
// addresses, so the loads stay coalesced without a tree.
@compute @workgroup_size(256)
fn bias_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = gid.x + gid.y * nwg.x * 256u;
    let cols = dims.d1;
    if (c >= cols) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < dims.d0; r++) {
        acc = acc + ld0(r * cols + c);
    }
    if (dims.d2 == 1u) {
        acc = ld_out(c) + acc;
    }
    st_out(c, acc);
}

// d0 = n.
@compute @workgroup_size(256)
fn add(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld0(i) + ld1(i));
}

// d0 = n, f0 = factor.
@compute @workgroup_size(256)
fn scale(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld0(i) * dims.f0);
}

// d0 = n, f0 = factor: the gradient of Sum/Mean, a [1] value spread over the input's shape.
@compute @workgroup_size(256)
fn broadcast(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld0(0) * dims.f0);
}
