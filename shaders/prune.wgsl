// Masked training: after the optimizer's update, zero every pruned weight and its optimizer
// state, so pruned weights stay exactly +0 (and their momentum or Adam moments with them).
// CPU twin: src/cpu/prune.rs (same name, same rule).
//   apply_mask  params, state1, state2 = mask == 0 ? 0 : themselves
// Four parameters per invocation through vec4s, over the same padded buffers as optim.wgsl;
// `states` says how many state buffers are real (SGD binds a placeholder for state2).

struct Mask {
    n4: u32, states: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;  // params [n4]
@group(0) @binding(1) var<storage, read_write> state1: array<vec4<f32>>;  // momentum_buffer or exp_avg [n4]
@group(0) @binding(2) var<storage, read_write> state2: array<vec4<f32>>;  // exp_avg_sq [n4] (Adam only)
@group(0) @binding(3) var<storage, read> mask: array<vec4<f32>>;          // mask [n4]: 1 keep, 0 pruned
@group(0) @binding(4) var<uniform> u: Mask;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn apply_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= u.n4) {
        return;
    }
    let keep = mask[i] != vec4<f32>(0.0);
    let zero = vec4<f32>(0.0);
    params[i] = select(zero, params[i], keep);
    if (u.states >= 1u) {
        state1[i] = select(zero, state1[i], keep);
    }
    if (u.states >= 2u) {
        state2[i] = select(zero, state2[i], keep);
    }
}
