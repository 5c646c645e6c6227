// Builds a batch from a split of f32 features (a user's own data, already preprocessed) resident
// on the GPU, through the shuffled index list; the step number comes from `state` as in
// gather.wgsl. A split bigger than one storage binding lies in up to three parts of `part_rows`
// rows each.
//   x[r, :] = features[order[start + r], :];  y[r] = labels[order[start + r]]
//   start = (FROM_STATE ? state[0] * batch : 0) + base

struct Gather {
    rows: u32, batch: u32, base: u32, flags: u32,
    width: u32, part_rows: u32, _p0: u32, _p1: u32,
}

const FROM_STATE: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;  // x [rows, width]
@group(0) @binding(1) var<storage, read_write> y: array<u32>;  // y [rows]
@group(0) @binding(2) var<storage, read> part0: array<f32>;    // features [part_rows, width]
@group(0) @binding(3) var<storage, read> labels: array<u32>;   // labels [n]
@group(0) @binding(4) var<storage, read> order: array<u32>;    // order [n]
@group(0) @binding(5) var<storage, read> state: array<u32>;    // state [4]: step, ...
@group(0) @binding(6) var<uniform> u: Gather;
@group(0) @binding(7) var<storage, read> part1: array<f32>;    // the next part_rows rows
@group(0) @binding(8) var<storage, read> part2: array<f32>;    // the last rows

fn feature(s: u32, j: u32) -> f32 {
    let p = s / u.part_rows;
    let i = (s - p * u.part_rows) * u.width + j;
    switch p {
        case 0u: { return part0[i]; }
        case 1u: { return part1[i]; }
        default: { return part2[i]; }
    }
}

// One value per invocation.
@compute @workgroup_size(256)
fn batch_gather_features(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let r = t / u.width;
    let j = t % u.width;
    if (r >= u.rows) {
        return;
    }
    var start = u.base;
    if ((u.flags & FROM_STATE) != 0u) {
        start = start + state[0] * u.batch;
    }
    let s = order[start + r];
    x[t] = feature(s, j);
    if (j == 0u) {
        y[r] = labels[s];
    }
}
