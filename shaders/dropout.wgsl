// Inverted dropout on a hidden layer's activations, training only. CPU twins: src/cpu/kernels.rs.
//   dropout_forward   act = keep ? act·scale : 0                        (scale = 1/(1−p))
//   dropout_backward  dact = keep ? dact·scale·f'(act·(1−p)) : 0        (act is the dropped output)
// `keep` is a pure function of (seed, step, layer, index), the same counter-based hash as
// src/rng.rs, so the CPU and the GPU drop the same units: index = row·width + unit, with the row
// counted from the start of the batch (row0 is the chunk's first row). The step comes from this
// step's row of the hyper table, copied into a uniform before the step (see optim.wgsl).
// The backward kernel applies the activation's derivative itself, from the activation recovered
// as act·(1−p), so a layer with dropout takes its matmul without the fused derivative.

struct Dropout {
    n: u32, width: u32, row0: u32, threshold: u32,
    scale: f32, keep_prob: f32, seed: u32, stream: u32,
    act_kind: u32, _p0: u32, _p1: u32, _p2: u32,
}

struct StepHyper {
    lr: f32, bc1: f32, bc2: f32, t: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;      // act or dact [rows, width]
@group(0) @binding(1) var<storage, read> act: array<f32>;          // act [rows, width] (backward only)
@group(0) @binding(2) var<uniform> h: StepHyper;                   // this step's row of hyper
@group(0) @binding(4) var<uniform> u: Dropout;

fn mix32(v: u32) -> u32 {
    var x = v;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

fn hash3(seed: u32, stream: u32, index: u32) -> u32 {
    return mix32(seed ^ mix32(stream ^ mix32(index + 0x9e3779b9u)));
}

// Whether element i of this chunk survives: the hash's top 24 bits against p·2^24.
fn keep(i: u32) -> bool {
    return (hash3(u.seed ^ mix32(h.t), u.stream, u.row0 * u.width + i) >> 8u) >= u.threshold;
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= u.n) {
        return;
    }
    x[i] = select(0.0, x[i] * u.scale, keep(i));
}

@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= u.n) {
        return;
    }
    let h = act[i] * u.keep_prob;
    var d = 1.0;
    if (u.act_kind == 0u) {
        d = select(0.0, 1.0, h > 0.0);
    } else if (u.act_kind == 1u) {
        d = h * (1.0 - h);
    } else {
        d = 1.0 - h * h;
    }
    x[i] = select(0.0, x[i] * u.scale * d, keep(i));
}
