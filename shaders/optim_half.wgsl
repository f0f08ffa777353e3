// The optimizer of f16 models (mixed precision with dynamic loss scaling), mirroring
// src/backend/cpu/optim.rs (`grad_norm_sq_unscaled`, `optimizer_step_unscaled`).
//
// Not a module of its own: src/backend/wgpu/shaders.rs builds `enable f16;`, then
// optim.wgsl, then this file, so the entry points below reuse optim.wgsl's bindings and
// its `*_update` functions (the arithmetic of each optimizer, unchanged).
//
// What differs from optim.wgsl's entry points, as torch.cuda.amp.GradScaler does it:
// - every gradient is multiplied by 1/scale before clipping (`scaler.unscale_`); the scale
//   is norm[1] (scaler.wgsl keeps the scaler's state in the norm buffer);
// - the norm passes always run, and a non-finite unscaled gradient adds +infinity to the
//   sum, so norm[0] is non-finite exactly when GradScaler's `found_inf` is set (or the
//   sum of squares overflows f32, which is treated the same way);
// - a non-finite norm[0] skips the whole update: parameters, optimizer state and the f16
//   copy stay as they were (scaler.wgsl's update_loss_scale then backs the scale off);
// - each update writes the f16 copy of the new parameter that the next forward pass's
//   matmuls read.

// The f16 copy of the parameter arena, the piece bound at the same element offsets.
@group(0) @binding(8) var<storage, read_write> params_half: array<f16>;

// 1/scale, as GradScaler's inv_scale (exact for the powers of two the scale takes).
fn inv_scale() -> f32 {
    return 1.0 / norm[1];
}

// grad_norm_partial for f16 models: Σ clip_value(g/scale)², +infinity for a non-finite g/scale.
@compute @workgroup_size(256)
fn grad_norm_partial_half(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    let start = w * CHUNK;
    let end = min(start + CHUNK, piece.len);
    let inv = inv_scale();
    let infinity = bitcast<f32>(0x7f800000u);
    var acc = 0.0;
    for (var i = start + t; i < end; i += WG) {
        let u = grads[i] * inv;
        let c = clip_value(u);
        acc = acc + select(c * c, infinity, is_nonfinite(u));
    }
    let total = tree_sum(t, acc);
    // A 2-D grid can overshoot the chunk count; those workgroups have nothing to write.
    if (t == 0u && start < piece.len) {
        partials[piece.base / CHUNK + w] = total;
    }
}

// The element of the piece this invocation updates, or piece.len when it has none or
// when the step is skipped because some unscaled gradient was not finite.
fn element_half(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (is_nonfinite(norm[0])) {
        return piece.len;
    }
    return select(piece.len, i, i < piece.len);
}

// The unscaled, clipped gradient of element i.
fn gradient_half(i: u32) -> f32 {
    return clip_value(grads[i] * inv_scale()) * clip_coefficient();
}

@compute @workgroup_size(256)
fn sgd_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(sgd_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn adam_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(adam_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn adagrad_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(adagrad_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn rmsprop_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(rmsprop_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn adadelta_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(adadelta_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn adamax_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(adamax_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn nadam_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(nadam_update(i, gradient_half(i)));
}

@compute @workgroup_size(256)
fn radam_step_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_half(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    params_half[i] = f16(radam_update(i, gradient_half(i)));
}
