// The second pass of a split-K product (matmul.wgsl with dims.e12 set): out[M, N] = the
// parts' sums in0 [P, M, N] added in order, then what the product's own store() would
// have done: with d3 = 1 add to out, with HAS_BIAS add the bias in1 [N], with HAS_ACT
// apply activation_core.wgsl's act_apply(ACT_KIND, ·). In f32 the bias and the activation
// are then those of MatMulBias and MatMulBiasAct, after the sum.
//
// dims.d0 = M·N, d1 = N, d2 = P (parts), d3 = 1 to accumulate. One invocation per output;
// the parts' values of an output are M·N apart, and neighbouring invocations read
// neighbouring floats of each part.
//
// Two entry points as in matmul.wgsl: only `split_sum_bias` mentions in1, since plain
// products bind no bias.

override HAS_BIAS: bool = false;
override HAS_ACT: bool = false;
override ACT_KIND: u32 = 0u;

// Part 0 + part 1 + .. in order, then the epilogue; `bias` is 0 unless HAS_BIAS.
fn split_store(i: u32, bias: f32) {
    let count = dims.d0;
    var x = ld0(i);
    for (var p = 1u; p < dims.d2; p++) {
        x = x + ld0(p * count + i);
    }
    if (dims.d3 == 1u) {
        x = ld_out(i) + x;
    }
    if (HAS_BIAS) {
        x = x + bias;
    }
    if (HAS_ACT) {
        x = act_apply(ACT_KIND, x, vec2(0.0));
    }
    st_out(i, x);
}

@compute @workgroup_size(256)
fn split_sum(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    split_store(i, 0.0);
}

@compute @workgroup_size(256)
fn split_sum_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    split_store(i, ld1(i % dims.d1));
}
