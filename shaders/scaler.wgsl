// Dynamic loss scaling of f16 models on the device, with torch.cuda.amp.GradScaler's rule
// and defaults; src/backend/loss_scale.rs (`LossScale::update`) is the same rule in Rust.
//
// The scaler's state lives in the optimizer's norm buffer (optim.wgsl binding 7), read
// here as words: word 0 is the squared norm of the unscaled gradients (non-finite exactly
// when a gradient was: found_inf, see optim_half.wgsl), word 1 the scale (f32 bits), word
// 2 the growth tracker, word 3 the count of skipped steps. Bound as u32 so the counters'
// bits never pass through float registers (small integers are f32 subnormals).
//
// Binding 0 (the executor's layouts always have a uniform there) is not used.

@group(0) @binding(1) var<storage, read_write> scaler: array<u32>;
// write_loss_seed: the plan's loss-seed slot (the constant that seeds backprop).
@group(0) @binding(2) var<storage, read_write> seed: array<f32>;

const GROWTH_FACTOR: f32 = 2.0;
const BACKOFF_FACTOR: f32 = 0.5;
const GROWTH_INTERVAL: u32 = 2000u;

// Before a training run's dispatches: seed the backward pass with the scale instead of 1,
// so every gradient comes out multiplied by it. One invocation.
@compute @workgroup_size(1)
fn write_loss_seed() {
    let scale = bitcast<f32>(scaler[1]);
    for (var i = 0u; i < arrayLength(&seed); i++) {
        seed[i] = scale;
    }
}

// After the update: found_inf backs the scale off and counts a skip; otherwise the growth
// tracker counts the good step and every GROWTH_INTERVAL good steps the scale grows (if it
// stays finite). One invocation.
@compute @workgroup_size(1)
fn update_loss_scale() {
    let found_inf = (scaler[0] & 0x7f800000u) == 0x7f800000u;
    var scale = bitcast<f32>(scaler[1]);
    var tracker = scaler[2];
    if (found_inf) {
        scale = scale * BACKOFF_FACTOR;
        tracker = 0u;
        scaler[3] = scaler[3] + 1u;
    } else {
        let successful = tracker + 1u;
        if (successful >= GROWTH_INTERVAL) {
            let grown = scale * GROWTH_FACTOR;
            if ((bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u) {
                scale = grown;
            }
            tracker = 0u;
        } else {
            tracker = successful;
        }
    }
    scaler[1] = bitcast<u32>(scale);
    scaler[2] = tracker;
}
