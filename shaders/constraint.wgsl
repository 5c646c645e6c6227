// Constraints applied after the optimizer's update. CPU twin: src/cpu/constraint.rs.
//   max_norm  row o of W [out, inp] *= c/‖row‖ where ‖row‖ > c   (Srivastava et al. 2014)
// One workgroup per row: its 64 lanes sum squares over strided columns, a tree in workgroup
// memory adds the 64 partial sums, then every lane scales its own columns. The weight sits in
// the flat parameter buffer at w_off; rows past 65535 fold into y (row = x + y·groups_x).

struct MaxNorm {
    w_off: u32, out: u32, inp: u32, c: f32,
}

@group(0) @binding(0) var<storage, read_write> params: array<f32>;  // params [num_params]; W at w_off, [out, inp]
@group(0) @binding(1) var<uniform> u: MaxNorm;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn max_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    let live = row < u.out;
    let base = u.w_off + row * u.inp;
    var s = 0.0;
    if (live) {
        for (var j = lane; j < u.inp; j += 64u) {
            let w = params[base + j];
            s += w * w;
        }
    }
    partial[lane] = s;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lane < half) {
            partial[lane] += partial[lane + half];
        }
        workgroupBarrier();
    }
    let norm = sqrt(partial[0]);
    if (!live || norm <= u.c) {
        return;
    }
    let f = u.c / norm;
    for (var j = lane; j < u.inp; j += 64u) {
        params[base + j] *= f;
    }
}
