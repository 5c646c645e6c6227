// Matrix products, tiled through workgroup memory: a 16x16 workgroup stages 16x16 tiles of A and
// B in shared memory between barriers, and each invocation computes one element of C. This is
// what a discrete GPU wants. Same uniform layout, bindings and entry points as matmul.wgsl.

// The uniform block, c, aux, `finish` and `bias_grad` come from matmul_common.wgsl.


const T: u32 = 16u;

@group(0) @binding(1) var<storage, read> a: array<f32>;          // A, strided
@group(0) @binding(2) var<storage, read> b: array<f32>;          // B, strided

var<workgroup> ta: array<array<f32, 16>, 16>;  // A tile [row][p]
var<workgroup> tb: array<array<f32, 16>, 16>;  // B tile [p][col]

fn mm_tiled(lid: vec3<u32>, wid: vec3<u32>) {
    let i = wid.y * T + lid.y;
    let j = wid.x * T + lid.x;
    var acc = 0.0;
    var rsum = 0.0;
    // Column 0 of the first column block also sums its A rows (the bias gradient, BIAS_GRAD).
    let sums = (u.flags & BIAS_GRAD) != 0u && wid.x == 0u && lid.x == 0u;
    let tiles = (u.k + T - 1u) / T;
    for (var t = 0u; t < tiles; t = t + 1u) {
        let pa = t * T + lid.x;
        var va = 0.0;
        if (i < u.m && pa < u.k) {
            va = a[u.a_off + i * u.a_rs + pa * u.a_cs];
        }
        ta[lid.y][lid.x] = va;
        let pb = t * T + lid.y;
        var vb = 0.0;
        if (j < u.n && pb < u.k) {
            vb = b[u.b_off + pb * u.b_rs + j * u.b_cs];
        }
        tb[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var p = 0u; p < T; p = p + 1u) {
            acc = fma(ta[lid.y][p], tb[p][lid.x], acc);
        }
        if (sums) {
            for (var p = 0u; p < T; p = p + 1u) {
                rsum = rsum + ta[lid.y][p];
            }
        }
        workgroupBarrier();
    }
    if (sums && i < u.m) {
        bias_grad(i, rsum);
    }
    if (i < u.m && j < u.n) {
        finish(i, j, acc);
    }
}

@compute @workgroup_size(16, 16)
fn matmul_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    mm_tiled(lid, wid);
}

@compute @workgroup_size(16, 16)
fn matmul_backward_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    mm_tiled(lid, wid);
}

@compute @workgroup_size(16, 16)
fn matmul_backward_weight(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    mm_tiled(lid, wid);
}
