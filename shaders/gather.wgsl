// Builds a batch from the data set resident on the GPU as packed u8 pixels (4 per u32), through
// the shuffled index list. The step number comes from `state`, advanced on the GPU by
// output_layer_step or loss_reduce, so a run of steps needs no host writes between them.
//   x[r, :] = images[order[start + r], :] / 255;  y[r] = labels[order[start + r]]
//   start = (FROM_STATE ? state[0] * batch : 0) + base

struct Gather {
    rows: u32, batch: u32, base: u32, flags: u32,
}

const FROM_STATE: u32 = 1u;
// Write the batch still packed (4 pixels per u32) to xb instead of as floats to x: the input
// layer's subgroup products (matmul_input.wgsl) read it from a uniform buffer.
const PACKED: u32 = 2u;
const QUADS: u32 = 49u;  // 784 pixels / 16 per vec4<u32>

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;  // x [rows, 196] (784 floats)
@group(0) @binding(1) var<storage, read_write> y: array<u32>;  // y [rows]
@group(0) @binding(2) var<storage, read> images: array<vec4<u32>>;  // images [n, 49] packed u8
@group(0) @binding(3) var<storage, read> labels: array<u32>;   // labels [n]
@group(0) @binding(4) var<storage, read> order: array<u32>;    // order [n]
@group(0) @binding(5) var<storage, read> state: array<u32>;    // state [4]: step, ...
@group(0) @binding(6) var<uniform> u: Gather;
@group(0) @binding(7) var<storage, read_write> xb: array<vec4<u32>>;  // xb [rows, 49] packed u8

// Sixteen pixels per invocation: on llvmpipe each load or store costs a loop over the SIMD lanes
// whatever its width, so one vec4<u32> load (and one order lookup) per four vec4 stores.
@compute @workgroup_size(256)
fn batch_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let r = t / QUADS;
    let q = t % QUADS;
    if (r >= u.rows) {
        return;
    }
    var start = u.base;
    if ((u.flags & FROM_STATE) != 0u) {
        start = start + state[0] * u.batch;
    }
    let s = order[start + r];
    let w = images[s * QUADS + q];
    if ((u.flags & PACKED) != 0u) {
        xb[r * QUADS + q] = w;
    } else {
        let o = r * 196u + q * 4u;
        x[o] = unpack(w.x);
        x[o + 1u] = unpack(w.y);
        x[o + 2u] = unpack(w.z);
        x[o + 3u] = unpack(w.w);
    }
    if (q == 0u) {
        y[r] = labels[s];
    }
}

// Four pixels, low byte first, as floats in [0, 1].
fn unpack(w: u32) -> vec4<f32> {
    let px = vec4<u32>(w & 255u, (w >> 8u) & 255u, (w >> 16u) & 255u, w >> 24u);
    return vec4<f32>(px) / 255.0;
}
