// Elementwise activations, in place. Backward kernels take the activation's *output* (which is
// all relu, sigmoid and tanh need) and scale the incoming gradient in place.
// Invocations are laid out in 2D (x: 256-wide groups, y: rows of 65535 groups) so tensors of
// more than 16.7M elements stay within the dispatch limit.

struct Ew {
    n: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;  // act or dact [n]
@group(0) @binding(1) var<storage, read> act: array<f32>;      // act [n] (backward only)
@group(0) @binding(2) var<uniform> u: Ew;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n) {
        x[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n && act[i] <= 0.0) {
        x[i] = 0.0;
    }
}

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n) {
        x[i] = 1.0 / (1.0 + exp(-x[i]));
    }
}

@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n) {
        let a = act[i];
        x[i] = x[i] * a * (1.0 - a);
    }
}

@compute @workgroup_size(256)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n) {
        x[i] = tanh(x[i]);
    }
}

@compute @workgroup_size(256)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < u.n) {
        let a = act[i];
        x[i] = x[i] * (1.0 - a * a);
    }
}
