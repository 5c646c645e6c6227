// matmul_subgroup.wgsl's products for the input layer, generated with it by
// gen_matmul_subgroup.py. The batch arrives packed, four u8 pixels per u32, in a uniform buffer
// (batch_gather with PACKED writes it), and matmul_backward_weight also reads dout from one.
// Why: on llvmpipe a storage load whose address differs between lanes is a loop over the lanes
// with a branch per lane, while a uniform-buffer load is a branch-free gather; a uniform binding
// holds 64 KiB, so the host uses this file for batches of at most 83 rows (and dout of at most
// 64 KiB). Pixels are unpacked as unpack4x8unorm, byte / 255, like the CPU's batch_gather.
// The strides are those of the float batch [rows, 784] counted in u32 words (4 pixels each).

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;   // A (unused by the input forms)
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;   // W in matmul_forward
@group(0) @binding(8) var<uniform> xu: array<vec4<u32>, 4096>;  // x [rows, 196] u32, packed u8
@group(0) @binding(9) var<uniform> du: array<vec4<f32>, 4096>;  // dout [rows, out]

// Pixels 4w .. 4w + 4 of the packed batch.
fn px(w: u32) -> vec4<f32> {
    return unpack4x8unorm(xu[w >> 2u][w & 3u]);
}

// out[i, j] = sum_k inp[i, k] * W[j, k] + bias[j]. A workgroup covers 32 rows and 32 columns;
// lane l loads rows i0 + l, i0 + 8 + l, ... and owns columns j0 .. j0 + 4.
@compute @workgroup_size(8)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let i0 = wg.y * 32u;
    let j0 = wg.x * 32u + lane * 4u;
    let im = u.m - 1u;
    let jm = u.n - 1u;
    let ra0 = (min(i0 + 0u + lane, im) * u.a_rs + u.a_off) / 4u;
    let ra1 = (min(i0 + 8u + lane, im) * u.a_rs + u.a_off) / 4u;
    let ra2 = (min(i0 + 16u + lane, im) * u.a_rs + u.a_off) / 4u;
    let ra3 = (min(i0 + 24u + lane, im) * u.a_rs + u.a_off) / 4u;
    let rb0 = (min(j0 + 0u, jm) * u.b_cs + u.b_off) / 4u;
    let rb1 = (min(j0 + 1u, jm) * u.b_cs + u.b_off) / 4u;
    let rb2 = (min(j0 + 2u, jm) * u.b_cs + u.b_off) / 4u;
    let rb3 = (min(j0 + 3u, jm) * u.b_cs + u.b_off) / 4u;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0);
    var c9 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0);
    var c13 = vec4<f32>(0.0);
    var c14 = vec4<f32>(0.0);
    var c15 = vec4<f32>(0.0);
    var c16 = vec4<f32>(0.0);
    var c17 = vec4<f32>(0.0);
    var c18 = vec4<f32>(0.0);
    var c19 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c22 = vec4<f32>(0.0);
    var c23 = vec4<f32>(0.0);
    var c24 = vec4<f32>(0.0);
    var c25 = vec4<f32>(0.0);
    var c26 = vec4<f32>(0.0);
    var c27 = vec4<f32>(0.0);
    var c28 = vec4<f32>(0.0);
    var c29 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    for (var q = 0u; q < u.k / 4u; q = q + 1u) {
        let x0 = px(ra0 + q);
        let x1 = px(ra1 + q);
        let x2 = px(ra2 + q);
        let x3 = px(ra3 + q);
        let w0 = b[rb0 + q];
        let w1 = b[rb1 + q];
        let w2 = b[rb2 + q];
        let w3 = b[rb3 + q];
        let a0 = subgroupShuffle(x0, 0u);
        c0 = c0 + vec4<f32>(dot(a0, w0), dot(a0, w1), dot(a0, w2), dot(a0, w3));
        let a1 = subgroupShuffle(x0, 1u);
        c1 = c1 + vec4<f32>(dot(a1, w0), dot(a1, w1), dot(a1, w2), dot(a1, w3));
        let a2 = subgroupShuffle(x0, 2u);
        c2 = c2 + vec4<f32>(dot(a2, w0), dot(a2, w1), dot(a2, w2), dot(a2, w3));
        let a3 = subgroupShuffle(x0, 3u);
        c3 = c3 + vec4<f32>(dot(a3, w0), dot(a3, w1), dot(a3, w2), dot(a3, w3));
        let a4 = subgroupShuffle(x0, 4u);
        c4 = c4 + vec4<f32>(dot(a4, w0), dot(a4, w1), dot(a4, w2), dot(a4, w3));
        let a5 = subgroupShuffle(x0, 5u);
        c5 = c5 + vec4<f32>(dot(a5, w0), dot(a5, w1), dot(a5, w2), dot(a5, w3));
        let a6 = subgroupShuffle(x0, 6u);
        c6 = c6 + vec4<f32>(dot(a6, w0), dot(a6, w1), dot(a6, w2), dot(a6, w3));
        let a7 = subgroupShuffle(x0, 7u);
        c7 = c7 + vec4<f32>(dot(a7, w0), dot(a7, w1), dot(a7, w2), dot(a7, w3));
        let a8 = subgroupShuffle(x1, 0u);
        c8 = c8 + vec4<f32>(dot(a8, w0), dot(a8, w1), dot(a8, w2), dot(a8, w3));
        let a9 = subgroupShuffle(x1, 1u);
        c9 = c9 + vec4<f32>(dot(a9, w0), dot(a9, w1), dot(a9, w2), dot(a9, w3));
        let a10 = subgroupShuffle(x1, 2u);
        c10 = c10 + vec4<f32>(dot(a10, w0), dot(a10, w1), dot(a10, w2), dot(a10, w3));
        let a11 = subgroupShuffle(x1, 3u);
        c11 = c11 + vec4<f32>(dot(a11, w0), dot(a11, w1), dot(a11, w2), dot(a11, w3));
        let a12 = subgroupShuffle(x1, 4u);
        c12 = c12 + vec4<f32>(dot(a12, w0), dot(a12, w1), dot(a12, w2), dot(a12, w3));
        let a13 = subgroupShuffle(x1, 5u);
        c13 = c13 + vec4<f32>(dot(a13, w0), dot(a13, w1), dot(a13, w2), dot(a13, w3));
        let a14 = subgroupShuffle(x1, 6u);
        c14 = c14 + vec4<f32>(dot(a14, w0), dot(a14, w1), dot(a14, w2), dot(a14, w3));
        let a15 = subgroupShuffle(x1, 7u);
        c15 = c15 + vec4<f32>(dot(a15, w0), dot(a15, w1), dot(a15, w2), dot(a15, w3));
        let a16 = subgroupShuffle(x2, 0u);
        c16 = c16 + vec4<f32>(dot(a16, w0), dot(a16, w1), dot(a16, w2), dot(a16, w3));
        let a17 = subgroupShuffle(x2, 1u);
        c17 = c17 + vec4<f32>(dot(a17, w0), dot(a17, w1), dot(a17, w2), dot(a17, w3));
        let a18 = subgroupShuffle(x2, 2u);
        c18 = c18 + vec4<f32>(dot(a18, w0), dot(a18, w1), dot(a18, w2), dot(a18, w3));
        let a19 = subgroupShuffle(x2, 3u);
        c19 = c19 + vec4<f32>(dot(a19, w0), dot(a19, w1), dot(a19, w2), dot(a19, w3));
        let a20 = subgroupShuffle(x2, 4u);
        c20 = c20 + vec4<f32>(dot(a20, w0), dot(a20, w1), dot(a20, w2), dot(a20, w3));
        let a21 = subgroupShuffle(x2, 5u);
        c21 = c21 + vec4<f32>(dot(a21, w0), dot(a21, w1), dot(a21, w2), dot(a21, w3));
        let a22 = subgroupShuffle(x2, 6u);
        c22 = c22 + vec4<f32>(dot(a22, w0), dot(a22, w1), dot(a22, w2), dot(a22, w3));
        let a23 = subgroupShuffle(x2, 7u);
        c23 = c23 + vec4<f32>(dot(a23, w0), dot(a23, w1), dot(a23, w2), dot(a23, w3));
        let a24 = subgroupShuffle(x3, 0u);
        c24 = c24 + vec4<f32>(dot(a24, w0), dot(a24, w1), dot(a24, w2), dot(a24, w3));
        let a25 = subgroupShuffle(x3, 1u);
        c25 = c25 + vec4<f32>(dot(a25, w0), dot(a25, w1), dot(a25, w2), dot(a25, w3));
        let a26 = subgroupShuffle(x3, 2u);
        c26 = c26 + vec4<f32>(dot(a26, w0), dot(a26, w1), dot(a26, w2), dot(a26, w3));
        let a27 = subgroupShuffle(x3, 3u);
        c27 = c27 + vec4<f32>(dot(a27, w0), dot(a27, w1), dot(a27, w2), dot(a27, w3));
        let a28 = subgroupShuffle(x3, 4u);
        c28 = c28 + vec4<f32>(dot(a28, w0), dot(a28, w1), dot(a28, w2), dot(a28, w3));
        let a29 = subgroupShuffle(x3, 5u);
        c29 = c29 + vec4<f32>(dot(a29, w0), dot(a29, w1), dot(a29, w2), dot(a29, w3));
        let a30 = subgroupShuffle(x3, 6u);
        c30 = c30 + vec4<f32>(dot(a30, w0), dot(a30, w1), dot(a30, w2), dot(a30, w3));
        let a31 = subgroupShuffle(x3, 7u);
        c31 = c31 + vec4<f32>(dot(a31, w0), dot(a31, w1), dot(a31, w2), dot(a31, w3));
    }
    store4(i0 + 0u, j0, c0);
    store4(i0 + 1u, j0, c1);
    store4(i0 + 2u, j0, c2);
    store4(i0 + 3u, j0, c3);
    store4(i0 + 4u, j0, c4);
    store4(i0 + 5u, j0, c5);
    store4(i0 + 6u, j0, c6);
    store4(i0 + 7u, j0, c7);
    store4(i0 + 8u, j0, c8);
    store4(i0 + 9u, j0, c9);
    store4(i0 + 10u, j0, c10);
    store4(i0 + 11u, j0, c11);
    store4(i0 + 12u, j0, c12);
    store4(i0 + 13u, j0, c13);
    store4(i0 + 14u, j0, c14);
    store4(i0 + 15u, j0, c15);
    store4(i0 + 16u, j0, c16);
    store4(i0 + 17u, j0, c17);
    store4(i0 + 18u, j0, c18);
    store4(i0 + 19u, j0, c19);
    store4(i0 + 20u, j0, c20);
    store4(i0 + 21u, j0, c21);
    store4(i0 + 22u, j0, c22);
    store4(i0 + 23u, j0, c23);
    store4(i0 + 24u, j0, c24);
    store4(i0 + 25u, j0, c25);
    store4(i0 + 26u, j0, c26);
    store4(i0 + 27u, j0, c27);
    store4(i0 + 28u, j0, c28);
    store4(i0 + 29u, j0, c29);
    store4(i0 + 30u, j0, c30);
    store4(i0 + 31u, j0, c31);
}

// dW[n, k] (+)= sum_b dout[b, n] * inp[b, k]. A workgroup covers 32 rows and 32 columns; per sample,
// lane l loads dout's rows i0 + 4l .. i0 + 4l + 4 (shuffled to all) and its own 4 columns of inp,
// and sums its dout vec4 for the bias gradient.
@compute @workgroup_size(8)
fn matmul_backward_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let i0 = wg.y * 32u;
    let j0 = wg.x * 32u + lane * 4u;
    // Clamped inside C (m and n are multiples of 4); what they read past the edge is never stored.
    let ia = (u.a_off + min(i0 + lane * 4u, u.m - 4u)) / 4u;
    let jb = (u.b_off + min(j0, u.n - 4u)) / 4u;
    let sa = u.a_cs / 4u;
    let sb = u.b_rs / 4u;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0);
    var c9 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0);
    var c13 = vec4<f32>(0.0);
    var c14 = vec4<f32>(0.0);
    var c15 = vec4<f32>(0.0);
    var c16 = vec4<f32>(0.0);
    var c17 = vec4<f32>(0.0);
    var c18 = vec4<f32>(0.0);
    var c19 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c22 = vec4<f32>(0.0);
    var c23 = vec4<f32>(0.0);
    var c24 = vec4<f32>(0.0);
    var c25 = vec4<f32>(0.0);
    var c26 = vec4<f32>(0.0);
    var c27 = vec4<f32>(0.0);
    var c28 = vec4<f32>(0.0);
    var c29 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var s = vec4<f32>(0.0);
    var p = 0u;
    for (; p + 4u <= u.k; p = p + 4u) {
        let x_0 = du[ia + (p + 0u) * sa];
        let y_0 = px(jb + (p + 0u) * sb);
        let x_1 = du[ia + (p + 1u) * sa];
        let y_1 = px(jb + (p + 1u) * sb);
        let x_2 = du[ia + (p + 2u) * sa];
        let y_2 = px(jb + (p + 2u) * sb);
        let x_3 = du[ia + (p + 3u) * sa];
        let y_3 = px(jb + (p + 3u) * sb);
        s = s + x_0 + x_1 + x_2 + x_3;
        let x0_0 = subgroupShuffle(x_0, 0u);
        let x0_1 = subgroupShuffle(x_1, 0u);
        let x0_2 = subgroupShuffle(x_2, 0u);
        let x0_3 = subgroupShuffle(x_3, 0u);
        c0 = c0 + x0_0.x * y_0 + x0_1.x * y_1 + x0_2.x * y_2 + x0_3.x * y_3;
        c1 = c1 + x0_0.y * y_0 + x0_1.y * y_1 + x0_2.y * y_2 + x0_3.y * y_3;
        c2 = c2 + x0_0.z * y_0 + x0_1.z * y_1 + x0_2.z * y_2 + x0_3.z * y_3;
        c3 = c3 + x0_0.w * y_0 + x0_1.w * y_1 + x0_2.w * y_2 + x0_3.w * y_3;
        let x1_0 = subgroupShuffle(x_0, 1u);
        let x1_1 = subgroupShuffle(x_1, 1u);
        let x1_2 = subgroupShuffle(x_2, 1u);
        let x1_3 = subgroupShuffle(x_3, 1u);
        c4 = c4 + x1_0.x * y_0 + x1_1.x * y_1 + x1_2.x * y_2 + x1_3.x * y_3;
        c5 = c5 + x1_0.y * y_0 + x1_1.y * y_1 + x1_2.y * y_2 + x1_3.y * y_3;
        c6 = c6 + x1_0.z * y_0 + x1_1.z * y_1 + x1_2.z * y_2 + x1_3.z * y_3;
        c7 = c7 + x1_0.w * y_0 + x1_1.w * y_1 + x1_2.w * y_2 + x1_3.w * y_3;
        let x2_0 = subgroupShuffle(x_0, 2u);
        let x2_1 = subgroupShuffle(x_1, 2u);
        let x2_2 = subgroupShuffle(x_2, 2u);
        let x2_3 = subgroupShuffle(x_3, 2u);
        c8 = c8 + x2_0.x * y_0 + x2_1.x * y_1 + x2_2.x * y_2 + x2_3.x * y_3;
        c9 = c9 + x2_0.y * y_0 + x2_1.y * y_1 + x2_2.y * y_2 + x2_3.y * y_3;
        c10 = c10 + x2_0.z * y_0 + x2_1.z * y_1 + x2_2.z * y_2 + x2_3.z * y_3;
        c11 = c11 + x2_0.w * y_0 + x2_1.w * y_1 + x2_2.w * y_2 + x2_3.w * y_3;
        let x3_0 = subgroupShuffle(x_0, 3u);
        let x3_1 = subgroupShuffle(x_1, 3u);
        let x3_2 = subgroupShuffle(x_2, 3u);
        let x3_3 = subgroupShuffle(x_3, 3u);
        c12 = c12 + x3_0.x * y_0 + x3_1.x * y_1 + x3_2.x * y_2 + x3_3.x * y_3;
        c13 = c13 + x3_0.y * y_0 + x3_1.y * y_1 + x3_2.y * y_2 + x3_3.y * y_3;
        c14 = c14 + x3_0.z * y_0 + x3_1.z * y_1 + x3_2.z * y_2 + x3_3.z * y_3;
        c15 = c15 + x3_0.w * y_0 + x3_1.w * y_1 + x3_2.w * y_2 + x3_3.w * y_3;
        let x4_0 = subgroupShuffle(x_0, 4u);
        let x4_1 = subgroupShuffle(x_1, 4u);
        let x4_2 = subgroupShuffle(x_2, 4u);
        let x4_3 = subgroupShuffle(x_3, 4u);
        c16 = c16 + x4_0.x * y_0 + x4_1.x * y_1 + x4_2.x * y_2 + x4_3.x * y_3;
        c17 = c17 + x4_0.y * y_0 + x4_1.y * y_1 + x4_2.y * y_2 + x4_3.y * y_3;
        c18 = c18 + x4_0.z * y_0 + x4_1.z * y_1 + x4_2.z * y_2 + x4_3.z * y_3;
        c19 = c19 + x4_0.w * y_0 + x4_1.w * y_1 + x4_2.w * y_2 + x4_3.w * y_3;
        let x5_0 = subgroupShuffle(x_0, 5u);
        let x5_1 = subgroupShuffle(x_1, 5u);
        let x5_2 = subgroupShuffle(x_2, 5u);
        let x5_3 = subgroupShuffle(x_3, 5u);
        c20 = c20 + x5_0.x * y_0 + x5_1.x * y_1 + x5_2.x * y_2 + x5_3.x * y_3;
        c21 = c21 + x5_0.y * y_0 + x5_1.y * y_1 + x5_2.y * y_2 + x5_3.y * y_3;
        c22 = c22 + x5_0.z * y_0 + x5_1.z * y_1 + x5_2.z * y_2 + x5_3.z * y_3;
        c23 = c23 + x5_0.w * y_0 + x5_1.w * y_1 + x5_2.w * y_2 + x5_3.w * y_3;
        let x6_0 = subgroupShuffle(x_0, 6u);
        let x6_1 = subgroupShuffle(x_1, 6u);
        let x6_2 = subgroupShuffle(x_2, 6u);
        let x6_3 = subgroupShuffle(x_3, 6u);
        c24 = c24 + x6_0.x * y_0 + x6_1.x * y_1 + x6_2.x * y_2 + x6_3.x * y_3;
        c25 = c25 + x6_0.y * y_0 + x6_1.y * y_1 + x6_2.y * y_2 + x6_3.y * y_3;
        c26 = c26 + x6_0.z * y_0 + x6_1.z * y_1 + x6_2.z * y_2 + x6_3.z * y_3;
        c27 = c27 + x6_0.w * y_0 + x6_1.w * y_1 + x6_2.w * y_2 + x6_3.w * y_3;
        let x7_0 = subgroupShuffle(x_0, 7u);
        let x7_1 = subgroupShuffle(x_1, 7u);
        let x7_2 = subgroupShuffle(x_2, 7u);
        let x7_3 = subgroupShuffle(x_3, 7u);
        c28 = c28 + x7_0.x * y_0 + x7_1.x * y_1 + x7_2.x * y_2 + x7_3.x * y_3;
        c29 = c29 + x7_0.y * y_0 + x7_1.y * y_1 + x7_2.y * y_2 + x7_3.y * y_3;
        c30 = c30 + x7_0.z * y_0 + x7_1.z * y_1 + x7_2.z * y_2 + x7_3.z * y_3;
        c31 = c31 + x7_0.w * y_0 + x7_1.w * y_1 + x7_2.w * y_2 + x7_3.w * y_3;
    }
    for (; p < u.k; p = p + 1u) {
        let x_0 = du[ia + (p + 0u) * sa];
        let y_0 = px(jb + (p + 0u) * sb);
        s = s + x_0;
        let x0_0 = subgroupShuffle(x_0, 0u);
        c0 = c0 + x0_0.x * y_0;
        c1 = c1 + x0_0.y * y_0;
        c2 = c2 + x0_0.z * y_0;
        c3 = c3 + x0_0.w * y_0;
        let x1_0 = subgroupShuffle(x_0, 1u);
        c4 = c4 + x1_0.x * y_0;
        c5 = c5 + x1_0.y * y_0;
        c6 = c6 + x1_0.z * y_0;
        c7 = c7 + x1_0.w * y_0;
        let x2_0 = subgroupShuffle(x_0, 2u);
        c8 = c8 + x2_0.x * y_0;
        c9 = c9 + x2_0.y * y_0;
        c10 = c10 + x2_0.z * y_0;
        c11 = c11 + x2_0.w * y_0;
        let x3_0 = subgroupShuffle(x_0, 3u);
        c12 = c12 + x3_0.x * y_0;
        c13 = c13 + x3_0.y * y_0;
        c14 = c14 + x3_0.z * y_0;
        c15 = c15 + x3_0.w * y_0;
        let x4_0 = subgroupShuffle(x_0, 4u);
        c16 = c16 + x4_0.x * y_0;
        c17 = c17 + x4_0.y * y_0;
        c18 = c18 + x4_0.z * y_0;
        c19 = c19 + x4_0.w * y_0;
        let x5_0 = subgroupShuffle(x_0, 5u);
        c20 = c20 + x5_0.x * y_0;
        c21 = c21 + x5_0.y * y_0;
        c22 = c22 + x5_0.z * y_0;
        c23 = c23 + x5_0.w * y_0;
        let x6_0 = subgroupShuffle(x_0, 6u);
        c24 = c24 + x6_0.x * y_0;
        c25 = c25 + x6_0.y * y_0;
        c26 = c26 + x6_0.z * y_0;
        c27 = c27 + x6_0.w * y_0;
        let x7_0 = subgroupShuffle(x_0, 7u);
        c28 = c28 + x7_0.x * y_0;
        c29 = c29 + x7_0.y * y_0;
        c30 = c30 + x7_0.z * y_0;
        c31 = c31 + x7_0.w * y_0;
    }
    if ((u.flags & BIAS_GRAD) != 0u && wg.x == 0u) {
        bias_grad4(i0 + lane * 4u, s);
    }
    store4_grad(i0 + 0u, j0, c0);
    store4_grad(i0 + 1u, j0, c1);
    store4_grad(i0 + 2u, j0, c2);
    store4_grad(i0 + 3u, j0, c3);
    store4_grad(i0 + 4u, j0, c4);
    store4_grad(i0 + 5u, j0, c5);
    store4_grad(i0 + 6u, j0, c6);
    store4_grad(i0 + 7u, j0, c7);
    store4_grad(i0 + 8u, j0, c8);
    store4_grad(i0 + 9u, j0, c9);
    store4_grad(i0 + 10u, j0, c10);
    store4_grad(i0 + 11u, j0, c11);
    store4_grad(i0 + 12u, j0, c12);
    store4_grad(i0 + 13u, j0, c13);
    store4_grad(i0 + 14u, j0, c14);
    store4_grad(i0 + 15u, j0, c15);
    store4_grad(i0 + 16u, j0, c16);
    store4_grad(i0 + 17u, j0, c17);
    store4_grad(i0 + 18u, j0, c18);
    store4_grad(i0 + 19u, j0, c19);
    store4_grad(i0 + 20u, j0, c20);
    store4_grad(i0 + 21u, j0, c21);
    store4_grad(i0 + 22u, j0, c22);
    store4_grad(i0 + 23u, j0, c23);
    store4_grad(i0 + 24u, j0, c24);
    store4_grad(i0 + 25u, j0, c25);
    store4_grad(i0 + 26u, j0, c26);
    store4_grad(i0 + 27u, j0, c27);
    store4_grad(i0 + 28u, j0, c28);
    store4_grad(i0 + 29u, j0, c29);
    store4_grad(i0 + 30u, j0, c30);
    store4_grad(i0 + 31u, j0, c31);
}
