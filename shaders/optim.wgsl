// The optimizer family: one update rule per entry point, as PyTorch defines each, over the whole
// flat parameter buffer. CPU twins: src/cpu/optim.rs (same names, same formulas).
//   sgd_update       g += λp;  v = μv + g;  p −= lr·v
//   nesterov_update  g += λp;  v = μv + g;  p −= lr·(g + μv)
//   adam_update      g += λp;  m = β1·m + (1−β1)g;  v = β2·v + (1−β2)g²;  p −= (lr/bc1)·m/(√v/√bc2 + ε)
//   adamw_update     p *= 1 − lr·λ;  then Adam's step without the L2 term
// The learning rate and Adam's bias corrections change every step. They come from `h`, a
// 16-byte uniform that a GPU-side copy fills from the epoch's table (one row per step, written
// by the host once per epoch) before each step's pass, so a schedule costs no per-step host
// write, submit or readback. A uniform, not a storage read of the table: on llvmpipe a storage
// load is a loop over the SIMD lanes, and one per invocation made this kernel 6x slower.
// Four parameters per invocation through vec4s: the host pads params, grads and the state to a
// multiple of 4 floats (the padding stays zero).

// Elements off4..n4 (vec4s) are updated: off4 > 0 where plain SGD already updated the input
// layer inside its weight-gradient product (SGD_STEP, matmul_common.wgsl).
struct Optim {
    n4: u32, off4: u32, momentum: f32, weight_decay: f32,
    beta1: f32, beta2: f32, eps: f32, _p0: u32,
}

struct StepHyper {
    lr: f32, bc1: f32, bc2: f32, t: u32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;  // params [n4]
@group(0) @binding(1) var<storage, read_write> state1: array<vec4<f32>>;  // momentum_buffer or exp_avg [n4]
@group(0) @binding(2) var<storage, read_write> state2: array<vec4<f32>>;  // exp_avg_sq [n4] (Adam only)
@group(0) @binding(3) var<storage, read> grads: array<vec4<f32>>;         // grads [n4]
@group(0) @binding(4) var<uniform> h: StepHyper;                          // this step's row of hyper
@group(0) @binding(6) var<uniform> u: Optim;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return u.off4 + gid.x + gid.y * nwg.x * 256u;
}

// The SGD family's step; Nesterov steps along g + μ·v instead of v.
fn momentum_step(gid: vec3<u32>, nwg: vec3<u32>, nesterov: bool) {
    let i = index(gid, nwg);
    if (i >= u.n4) {
        return;
    }
    let p = params[i];
    let g = grads[i] + u.weight_decay * p;
    // At μ = 0 there is no momentum buffer (PyTorch keeps none): v is g, and the buffer is
    // neither read nor written. On llvmpipe, where each access is a loop over the lanes, that
    // saves two of this kernel's five per element (measured: about a quarter of its time).
    var v = g;
    if (u.momentum != 0.0) {
        v = u.momentum * state1[i] + g;
        state1[i] = v;
    }
    params[i] = p - h.lr * select(v, g + u.momentum * v, nesterov);
}

@compute @workgroup_size(256)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    momentum_step(gid, nwg, false);
}

@compute @workgroup_size(256)
fn nesterov_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    momentum_step(gid, nwg, true);
}

// Adam's moments and step, shared by adam_update and adamw_update; `g` already holds any L2 term.
fn adam_step(i: u32, p: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    let m = u.beta1 * state1[i] + (1.0 - u.beta1) * g;
    let v = u.beta2 * state2[i] + (1.0 - u.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let step = h.lr / h.bc1;
    return p - step * m / (sqrt(v) / sqrt(h.bc2) + u.eps);
}

@compute @workgroup_size(256)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= u.n4) {
        return;
    }
    let p = params[i];
    params[i] = adam_step(i, p, grads[i] + u.weight_decay * p);
}

@compute @workgroup_size(256)
fn adamw_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= u.n4) {
        return;
    }
    let p = params[i] * (1.0 - h.lr * u.weight_decay);
    params[i] = adam_step(i, p, grads[i]);
}
