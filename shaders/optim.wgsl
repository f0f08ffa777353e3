// Global gradient norm and the fused optimizer updates over the flat parameter arena,
// mirroring src/backend/cpu/optim.rs and src/optim/mod.rs.
//
// Not the graph-op binding convention: the uniform is the per-step StepScalars, and the
// arenas are bound one piece at a time: `piece` (binding 9) says where the bound range
// starts in the arena and how long it is, so arenas larger than one storage binding are
// updated by several dispatches. Indices below are local to the piece unless named
// global. The gradient is scaled by the clipping coefficient on the fly,
// so clipping costs no extra pass over the gradients.
//
// Order of a clipped step: grad_norm_partial (one workgroup per 4096 gradients), then
// grad_norm_final (one workgroup), then the optimizer's *_step (one invocation per
// parameter). The norm is summed in a fixed order, so it is bit-identical from run to run.
// Gradients are first clipped by value (clip_value > 0), then scaled by the norm's factor.
//
// Each optimizer's arithmetic is a function `*_update(i, g)` that writes the parameter
// and its state and returns the new parameter; the `*_step` entry points here feed it the
// clipped gradient. f16 models use optim_half.wgsl's entry points instead (that file is
// appended to this one, after `enable f16;`): they unscale the gradient by the loss scale
// first, always skip a step with non-finite gradients, and write the f16 weight copy.

// Field for field the Rust `StepScalars` (#[repr(C)], 128 bytes): tests/shaders.rs checks
// the names and offsets.
struct StepScalars {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    max_norm: f32,
    nesterov: u32,
    step: u32,
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    one_minus_dampening: f32,
    alpha: f32,
    one_minus_alpha: f32,
    clip_value: f32,
    decoupled: u32,
    amsgrad: u32,
    centered: u32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    tail_start: u32,
    tail_lr_scale: f32,
    tail_weight_decay: f32,
    skip_nonfinite: u32,
    bias_correction2: f32,
    rect: f32,
    nadam_grad_coef: f32,
    nadam_avg_coef: f32,
}

@group(0) @binding(0) var<uniform> s: StepScalars;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
// Optimizer state, as src/optim/optimizer.rs `uses_state` lists it. SGD: state0 momentum.
// Adam: state0 m, state1 v, state2 max v. Adagrad: state0 Σg². RMSprop: state0 square
// average, state1 gradient average, state2 momentum. Adadelta: state0 square average,
// state1 accumulated update. Adamax: state0 m, state1 infinity norm. NAdam, RAdam: state0
// m, state1 v. Unused ones are bound to small placeholders.
@group(0) @binding(3) var<storage, read_write> state0: array<f32>;
@group(0) @binding(4) var<storage, read_write> state1: array<f32>;
@group(0) @binding(5) var<storage, read_write> state2: array<f32>;
// One Σg² per 4096-gradient chunk, written by grad_norm_partial.
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
// norm[0] = Σg² over the whole arena (the squared norm), written by grad_norm_final. For
// f16 models norm[1..4] hold the loss scaler's state (scaler.wgsl): it shares this buffer
// because the update kernels already use WebGPU's default 8 storage bindings per stage.
@group(0) @binding(7) var<storage, read_write> norm: array<f32>;

// A multiple of CHUNK, so a piece's norm partials land at the same index whatever the
// split.
struct Piece {
    base: u32,
    len: u32,
}
// Binding 9, after optim_half.wgsl's f16 weight copy at binding 8, so that storage
// bindings are numbered 1..=n with no gap.
@group(0) @binding(9) var<uniform> piece: Piece;

const WG: u32 = 256u;
// Gradients per grad_norm_partial workgroup (16 per invocation).
const CHUNK: u32 = 4096u;

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

// NaN by its bits: compilers may assume no NaN in float compares.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// NaN/Inf by their exponent bits: compilers may assume no NaN in float compares.
fn is_nonfinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// An optimizer state below the smallest normal f32 is stored as zero, as the CPU stores
// it (src/backend/cpu/optim.rs, flush_subnormal: subnormals are slow on CPUs, and decaying
// states of weights whose gradients stopped would reach them).
fn flush_subnormal(x: f32) -> f32 {
    return select(x, 0.0, abs(x) < 1.17549435e-38);
}

// clip_grad_value_: g clamped to [−clip_value, clip_value] when clip_value > 0.
fn clip_value(g: f32) -> f32 {
    if (s.clip_value > 0.0) {
        return clamp(g, -s.clip_value, s.clip_value);
    }
    return g;
}

// partials[base/4096 + w] = Σ g² over the piece's gradients [w·4096, w·4096 + 4096) ∩
// [0, piece.len), w the workgroup's index in a possibly 2-D grid.
@compute @workgroup_size(256)
fn grad_norm_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    let start = w * CHUNK;
    let end = min(start + CHUNK, piece.len);
    var acc = 0.0;
    for (var i = start + t; i < end; i += WG) {
        let g = clip_value(grads[i]);
        acc = acc + g * g;
    }
    let total = tree_sum(t, acc);
    // A 2-D grid can overshoot the chunk count; those workgroups have nothing to write.
    if (t == 0u && start < piece.len) {
        partials[piece.base / CHUNK + w] = total;
    }
}

// norm[0] = Σ partials[0 .. ceil(len/4096)). Single workgroup.
@compute @workgroup_size(256)
fn grad_norm_final(@builtin(local_invocation_index) t: u32) {
    let chunks = (s.len + CHUNK - 1u) / CHUNK;
    var acc = 0.0;
    for (var i = t; i < chunks; i += WG) {
        acc = acc + partials[i];
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        norm[0] = total;
    }
}

// clip_grad_norm_'s factor min(1, max_norm / (‖g‖ + 1e-6)). norm[0] is read only when
// clipping is on, so it need not hold anything valid otherwise.
fn clip_coefficient() -> f32 {
    if (s.max_norm <= 0.0) {
        return 1.0;
    }
    return min(s.max_norm / (sqrt(norm[0]) + 1e-6), 1.0);
}

// The element of the piece this invocation updates, or piece.len when it has none (also
// when the step is to be skipped because the clipped norm is not finite and the host
// asked for that).
fn element(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (s.skip_nonfinite != 0u && s.max_norm > 0.0) {
        if (is_nonfinite(norm[0])) {
            return piece.len;
        }
    }
    return select(piece.len, i, i < piece.len);
}

// (learning rate, weight decay) of element i: elements from tail_start on form the second
// parameter group (for example biases and norm weights exempt from decay).
fn hyper(i: u32) -> vec2<f32> {
    if (piece.base + i >= s.tail_start) {
        return vec2<f32>(s.lr * s.tail_lr_scale, s.tail_weight_decay);
    }
    return vec2<f32>(s.lr, s.weight_decay);
}

// The clipped gradient of element i.
fn gradient(i: u32) -> f32 {
    return clip_value(grads[i]) * clip_coefficient();
}

// torch.optim.SGD: coupled weight decay, momentum with dampening, optional Nesterov.
fn sgd_update(i: u32, g: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let wd = h.y;
    let p = params[i];
    var d = g + wd * p;
    if (s.momentum != 0.0) {
        // The first step seeds the buffer with d itself, as PyTorch does (no dampening).
        var b = d;
        if (s.step > 1u) {
            b = s.momentum * state0[i] + s.one_minus_dampening * d;
        }
        b = flush_subnormal(b);
        state0[i] = b;
        if (s.nesterov != 0u) {
            d = d + s.momentum * b;
        } else {
            d = b;
        }
    }
    let updated = p - lr * d;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = sgd_update(i, gradient(i));
}

// torch.optim.Adam (coupled L2) and AdamW (decoupled decay), with AMSGrad, in PyTorch's
// order of operations; the bias corrections come from the host, computed in f64 as
// PyTorch computes them in Python.
fn adam_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let pg = adam_family_decay(params[i], g_in, lr, h.y);
    let p = pg.x;
    let m = first_moment(i, pg.y);
    let v = second_moment(i, pg.y);
    var second = v;
    if (s.amsgrad != 0u) {
        second = max(state2[i], v);
        state2[i] = second;
    }
    let denom = sqrt(second) / s.bias_correction2_sqrt + s.eps;
    let updated = p - (lr / s.bias_correction1) * m / denom;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = adam_update(i, gradient(i));
}

// torch.optim.Adagrad; the host has already decayed lr by 1/(1 + (t − 1)·lr_decay).
fn adagrad_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let wd = h.y;
    let p = params[i];
    let g = g_in + wd * p;
    let sum = state0[i] + g * g;
    state0[i] = sum;
    let updated = p - lr * g / (sqrt(sum) + s.eps);
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn adagrad_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = adagrad_update(i, gradient(i));
}

// torch.optim.RMSprop, optionally centred and with momentum.
fn rmsprop_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let wd = h.y;
    let p = params[i];
    let g = g_in + wd * p;
    let sq = flush_subnormal(s.alpha * state0[i] + s.one_minus_alpha * g * g);
    state0[i] = sq;
    var avg = sqrt(sq) + s.eps;
    if (s.centered != 0u) {
        let ga_old = state1[i];
        let ga = flush_subnormal(ga_old + s.one_minus_alpha * (g - ga_old));
        state1[i] = ga;
        avg = sqrt(sq - ga * ga) + s.eps;
    }
    var updated: f32;
    if (s.momentum > 0.0) {
        let b = flush_subnormal(s.momentum * state2[i] + g / avg);
        state2[i] = b;
        updated = p - lr * b;
    } else {
        updated = p - lr * g / avg;
    }
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn rmsprop_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = rmsprop_update(i, gradient(i));
}

// torch.optim.Adadelta (rho in `alpha`).
fn adadelta_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let wd = h.y;
    let p = params[i];
    let g = g_in + wd * p;
    let sq = flush_subnormal(s.alpha * state0[i] + s.one_minus_alpha * g * g);
    state0[i] = sq;
    let delta = sqrt(state1[i] + s.eps) / sqrt(sq + s.eps) * g;
    state1[i] = flush_subnormal(s.alpha * state1[i] + s.one_minus_alpha * delta * delta);
    let updated = p - lr * delta;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn adadelta_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = adadelta_update(i, gradient(i));
}

// Weight decay of the Adam family (Adam, AdamW, NAdam, RAdam): decoupled scales the
// parameter (AdamW's p·(1 − lr·wd)), coupled adds an L2 term to the gradient. Returns
// (parameter, gradient).
fn adam_family_decay(p: f32, g: f32, lr: f32, wd: f32) -> vec2<f32> {
    if (s.decoupled != 0u) {
        return vec2<f32>(p * (1.0 - lr * wd), g);
    }
    return vec2<f32>(p, g + wd * p);
}

// The Adam family's first moment, in torch's lerp form m + (1−β1)(g − m), stored.
fn first_moment(i: u32, g: f32) -> f32 {
    let m_old = state0[i];
    let m = flush_subnormal(m_old + s.one_minus_beta1 * (g - m_old));
    state0[i] = m;
    return m;
}

// The Adam family's second moment β2·v + (1−β2)·g², stored.
fn second_moment(i: u32, g: f32) -> f32 {
    let v = flush_subnormal(s.beta2 * state1[i] + s.one_minus_beta2 * g * g);
    state1[i] = v;
    return v;
}

// torch.optim.Adamax (coupled L2 decay): u ← max(β2·u, |g| + ε), p ← p − (lr/(1 − β1^t))·m/u.
fn adamax_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let p = params[i];
    let g = g_in + h.y * p;
    let m = first_moment(i, g);
    // torch.maximum propagates NaN; WGSL's max leaves it unspecified.
    let a = s.beta2 * state1[i];
    let b = abs(g) + s.eps;
    let u = flush_subnormal(select(max(a, b), a + b, is_nan(a) || is_nan(b)));
    state1[i] = u;
    let updated = p - (lr / s.bias_correction1) * m / u;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn adamax_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = adamax_update(i, gradient(i));
}

// torch.optim.NAdam: the host computes the momentum schedule's coefficients of g and m
// (without the learning rate); both terms share the denominator √(v / (1 − β2^t)) + ε and
// are applied one after the other, as PyTorch's two addcdiv_ calls.
fn nadam_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let pg = adam_family_decay(params[i], g_in, lr, h.y);
    let g = pg.y;
    let m = first_moment(i, g);
    let v = second_moment(i, g);
    let denom = sqrt(v / s.bias_correction2) + s.eps;
    let p = pg.x - (lr * s.nadam_grad_coef) * g / denom;
    let updated = p - (lr * s.nadam_avg_coef) * m / denom;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn nadam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = nadam_update(i, gradient(i));
}

// torch.optim.RAdam, in PyTorch's order of operations: the bias-corrected first moment
// times lr, then (when the host's rectification is non-zero) times the adaptive rate
// (1 / (√v + ε))·√(1 − β2^t) and the rectification.
fn radam_update(i: u32, g_in: f32) -> f32 {
    let h = hyper(i);
    let lr = h.x;
    let pg = adam_family_decay(params[i], g_in, lr, h.y);
    let g = pg.y;
    let m = first_moment(i, g);
    let v = second_moment(i, g);
    var step = m / s.bias_correction1 * lr;
    if (s.rect > 0.0) {
        let adaptive = (1.0 / (sqrt(v) + s.eps)) * s.bias_correction2_sqrt;
        step = step * adaptive * s.rect;
    }
    let updated = pg.x - step;
    params[i] = updated;
    return updated;
}

@compute @workgroup_size(256)
fn radam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= piece.len) {
        return;
    }
    _ = radam_update(i, gradient(i));
}
