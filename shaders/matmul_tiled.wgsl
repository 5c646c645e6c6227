// Matrix products, tiled through workgroup memory: a 16x16 workgroup stages 16x16 tiles of A and
// B in shared memory between barriers, and each invocation computes one element of C. This is
// what a discrete GPU wants. Same uniform layout, bindings and entry points as matmul.wgsl.

// The uniform block, aux and `epilogue` come from matmul_common.wgsl.

@group(0) @binding(0) var<storage, read_write> c: array<f32>;    // C [m, n] at c_off

fn finish(i: u32, j: u32, acc: f32) {
    let at = u.c_off + i * u.n + j;
    var old = 0.0;
    if ((u.flags & ACCUMULATE) != 0u) {
        old = c[at];
    }
    c[at] = epilogue(acc, aux_at(i, j), old);
}

const T: u32 = 16u;

@group(0) @binding(1) var<storage, read> a: array<f32>;          // A, strided
@group(0) @binding(2) var<storage, read> b: array<f32>;          // B, strided

var<workgroup> ta: array<array<f32, 16>, 16>;  // A tile [row][p]
var<workgroup> tb: array<array<f32, 16>, 16>;  // B tile [p][col]

fn mm_tiled(lid: vec3<u32>, wid: vec3<u32>) {
    let i = wid.y * T + lid.y;
    let j = wid.x * T + lid.x;
    var acc = 0.0;
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
        workgroupBarrier();
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
