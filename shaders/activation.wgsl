// The Op::Activation* kernels; the functions are activation_core.wgsl's (prepended).
//
// KIND selects the function (Activation::code, listed in activation_core.wgsl). It has no
// default so that a pipeline built without it fails loudly instead of silently computing
// relu. dims.d0 = n, (dims.f0, dims.f1) = Activation::params.

override KIND: u32;

// out = f(in0)
@compute @workgroup_size(256)
fn activation(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, act_apply(KIND, ld0(i), vec2(dims.f0, dims.f1)));
}

// out = dy · f'(x), with x = in0 (the activation's input) and dy = in1.
@compute @workgroup_size(256)
fn activation_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld1(i) * act_derivative(KIND, ld0(i), vec2(dims.f0, dims.f1)));
}

// out = dy · f'(x) from y = f(x) = in0 and dy = in1 (relu, sigmoid, tanh).
@compute @workgroup_size(256)
fn activation_grad_from_output(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    st_out(i, ld1(i) * act_derivative_from_output(KIND, ld0(i)));
}
