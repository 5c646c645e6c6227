// The parameter update: SGD with momentum, PyTorch's form, over the whole flat parameter buffer.
//   velocity = momentum * velocity + grads;  params -= lr * velocity
// Four parameters per invocation through vec4s: the host pads params, grads and velocity to a
// multiple of 4 floats (the padding stays zero), and on llvmpipe one vec4 access costs about
// what one scalar access does.

struct Sgd {
    n4: u32, lr: f32, momentum: f32, _p0: u32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;    // params [n4]
@group(0) @binding(1) var<storage, read_write> velocity: array<vec4<f32>>;  // velocity [n4]
@group(0) @binding(2) var<storage, read> grads: array<vec4<f32>>;           // grads [n4]
@group(0) @binding(3) var<uniform> u: Sgd;

@compute @workgroup_size(256)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= u.n4) {
        return;
    }
    let v = u.momentum * velocity[i] + grads[i];
    velocity[i] = v;
    params[i] = params[i] - u.lr * v;
}
