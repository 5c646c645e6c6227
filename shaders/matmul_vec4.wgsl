// Matrix products with vec4 loads, for operands whose rows are 16-byte aligned (every stride and
// offset a multiple of 4 floats, checked by the host, which falls back to matmul.wgsl otherwise).
// Each invocation keeps an 8x8 block of C in 16 vec4 registers and uses no barriers. On llvmpipe
// a divergent load is a loop over the SIMD lanes, so the fewer and wider the loads per FMA, the
// better: an 8x8 block does 64 multiply-adds per 4 vec4 loads (outer-product form) or 256 per
// 16 (dot-product form). The blocks are unrolled by hand because WGSL has no unroll and a
// dynamically indexed array would live in memory, not registers.
// Same uniform layout, bindings and entry points as matmul.wgsl.

struct Mm {
    m: u32, n: u32, k: u32, flags: u32,
    a_off: u32, a_rs: u32, a_cs: u32, b_off: u32,
    b_rs: u32, b_cs: u32, c_off: u32, bias_off: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}

const ADD_BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

@group(0) @binding(0) var<storage, read_write> c: array<f32>;   // C [m, n] at c_off
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;   // A, rows 16-byte aligned
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;   // B, rows 16-byte aligned
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // bias [n] at bias_off
@group(0) @binding(4) var<uniform> u: Mm;

fn store4(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= u.m) {
        return;
    }
    for (var q = 0u; q < 4u; q = q + 1u) {
        let j = j0 + q;
        if (j >= u.n) {
            return;
        }
        var x = v[q];
        if ((u.flags & ADD_BIAS) != 0u) {
            x = x + bias[u.bias_off + j];
        }
        let at = u.c_off + i * u.n + j;
        if ((u.flags & ACCUMULATE) != 0u) {
            x = x + c[at];
        }
        c[at] = x;
    }
}

// out[i, j] = sum_k inp[i, k] * W[j, k] + bias[j]: both operands run along k, so the block is
// 64 dot products of vec4s.
@compute @workgroup_size(8, 8)
fn matmul_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 8u;
    let j0 = gid.x * 8u;
    if (i0 >= u.m || j0 >= u.n) {
        return;
    }
    let im = u.m - 1u;
    let jm = u.n - 1u;
    let ra0 = (min(i0 + 0u, im) * u.a_rs + u.a_off) / 4u;
    let ra1 = (min(i0 + 1u, im) * u.a_rs + u.a_off) / 4u;
    let ra2 = (min(i0 + 2u, im) * u.a_rs + u.a_off) / 4u;
    let ra3 = (min(i0 + 3u, im) * u.a_rs + u.a_off) / 4u;
    let ra4 = (min(i0 + 4u, im) * u.a_rs + u.a_off) / 4u;
    let ra5 = (min(i0 + 5u, im) * u.a_rs + u.a_off) / 4u;
    let ra6 = (min(i0 + 6u, im) * u.a_rs + u.a_off) / 4u;
    let ra7 = (min(i0 + 7u, im) * u.a_rs + u.a_off) / 4u;
    let rb0 = (min(j0 + 0u, jm) * u.b_cs + u.b_off) / 4u;
    let rb1 = (min(j0 + 1u, jm) * u.b_cs + u.b_off) / 4u;
    let rb2 = (min(j0 + 2u, jm) * u.b_cs + u.b_off) / 4u;
    let rb3 = (min(j0 + 3u, jm) * u.b_cs + u.b_off) / 4u;
    let rb4 = (min(j0 + 4u, jm) * u.b_cs + u.b_off) / 4u;
    let rb5 = (min(j0 + 5u, jm) * u.b_cs + u.b_off) / 4u;
    let rb6 = (min(j0 + 6u, jm) * u.b_cs + u.b_off) / 4u;
    let rb7 = (min(j0 + 7u, jm) * u.b_cs + u.b_off) / 4u;
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var q = 0u; q < u.k / 4u; q = q + 1u) {
        let w0 = b[rb0 + q];
        let w1 = b[rb1 + q];
        let w2 = b[rb2 + q];
        let w3 = b[rb3 + q];
        let w4 = b[rb4 + q];
        let w5 = b[rb5 + q];
        let w6 = b[rb6 + q];
        let w7 = b[rb7 + q];
        let a0 = a[ra0 + q];
        c00 = c00 + vec4<f32>(dot(a0, w0), dot(a0, w1), dot(a0, w2), dot(a0, w3));
        c01 = c01 + vec4<f32>(dot(a0, w4), dot(a0, w5), dot(a0, w6), dot(a0, w7));
        let a1 = a[ra1 + q];
        c10 = c10 + vec4<f32>(dot(a1, w0), dot(a1, w1), dot(a1, w2), dot(a1, w3));
        c11 = c11 + vec4<f32>(dot(a1, w4), dot(a1, w5), dot(a1, w6), dot(a1, w7));
        let a2 = a[ra2 + q];
        c20 = c20 + vec4<f32>(dot(a2, w0), dot(a2, w1), dot(a2, w2), dot(a2, w3));
        c21 = c21 + vec4<f32>(dot(a2, w4), dot(a2, w5), dot(a2, w6), dot(a2, w7));
        let a3 = a[ra3 + q];
        c30 = c30 + vec4<f32>(dot(a3, w0), dot(a3, w1), dot(a3, w2), dot(a3, w3));
        c31 = c31 + vec4<f32>(dot(a3, w4), dot(a3, w5), dot(a3, w6), dot(a3, w7));
        let a4 = a[ra4 + q];
        c40 = c40 + vec4<f32>(dot(a4, w0), dot(a4, w1), dot(a4, w2), dot(a4, w3));
        c41 = c41 + vec4<f32>(dot(a4, w4), dot(a4, w5), dot(a4, w6), dot(a4, w7));
        let a5 = a[ra5 + q];
        c50 = c50 + vec4<f32>(dot(a5, w0), dot(a5, w1), dot(a5, w2), dot(a5, w3));
        c51 = c51 + vec4<f32>(dot(a5, w4), dot(a5, w5), dot(a5, w6), dot(a5, w7));
        let a6 = a[ra6 + q];
        c60 = c60 + vec4<f32>(dot(a6, w0), dot(a6, w1), dot(a6, w2), dot(a6, w3));
        c61 = c61 + vec4<f32>(dot(a6, w4), dot(a6, w5), dot(a6, w6), dot(a6, w7));
        let a7 = a[ra7 + q];
        c70 = c70 + vec4<f32>(dot(a7, w0), dot(a7, w1), dot(a7, w2), dot(a7, w3));
        c71 = c71 + vec4<f32>(dot(a7, w4), dot(a7, w5), dot(a7, w6), dot(a7, w7));
    }
    store4(i0 + 0u, j0 + 0u, c00);
    store4(i0 + 0u, j0 + 4u, c01);
    store4(i0 + 1u, j0 + 0u, c10);
    store4(i0 + 1u, j0 + 4u, c11);
    store4(i0 + 2u, j0 + 0u, c20);
    store4(i0 + 2u, j0 + 4u, c21);
    store4(i0 + 3u, j0 + 0u, c30);
    store4(i0 + 3u, j0 + 4u, c31);
    store4(i0 + 4u, j0 + 0u, c40);
    store4(i0 + 4u, j0 + 4u, c41);
    store4(i0 + 5u, j0 + 0u, c50);
    store4(i0 + 5u, j0 + 4u, c51);
    store4(i0 + 6u, j0 + 0u, c60);
    store4(i0 + 6u, j0 + 4u, c61);
    store4(i0 + 7u, j0 + 0u, c70);
    store4(i0 + 7u, j0 + 4u, c71);
}

// dinp[i, k] = sum_n dout[i, n] * W[n, k]: A runs along the reduction, B along C's columns, so
// each step of 4 along n takes 8 A vec4s and 8 B vec4s.
@compute @workgroup_size(8, 8)
fn matmul_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 8u;
    let j0 = gid.x * 8u;
    if (i0 >= u.m || j0 >= u.n) {
        return;
    }
    let im = u.m - 1u;
    let ra0 = (min(i0 + 0u, im) * u.a_rs + u.a_off) / 4u;
    let ra1 = (min(i0 + 1u, im) * u.a_rs + u.a_off) / 4u;
    let ra2 = (min(i0 + 2u, im) * u.a_rs + u.a_off) / 4u;
    let ra3 = (min(i0 + 3u, im) * u.a_rs + u.a_off) / 4u;
    let ra4 = (min(i0 + 4u, im) * u.a_rs + u.a_off) / 4u;
    let ra5 = (min(i0 + 5u, im) * u.a_rs + u.a_off) / 4u;
    let ra6 = (min(i0 + 6u, im) * u.a_rs + u.a_off) / 4u;
    let ra7 = (min(i0 + 7u, im) * u.a_rs + u.a_off) / 4u;
    // The second column vec4 is clamped inside the row; what it reads past n is never stored.
    let cb0 = (u.b_off + j0) / 4u;
    let cb1 = (u.b_off + min(j0 + 4u, u.n - 4u)) / 4u;
    let rs = u.b_rs / 4u;
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var q = 0u; q < u.k / 4u; q = q + 1u) {
        let p = 4u * q * rs;
        let w00 = b[cb0 + p + 0u * rs];
        let w01 = b[cb1 + p + 0u * rs];
        let w10 = b[cb0 + p + 1u * rs];
        let w11 = b[cb1 + p + 1u * rs];
        let w20 = b[cb0 + p + 2u * rs];
        let w21 = b[cb1 + p + 2u * rs];
        let w30 = b[cb0 + p + 3u * rs];
        let w31 = b[cb1 + p + 3u * rs];
        let a0 = a[ra0 + q];
        c00 = c00 + a0.x * w00 + a0.y * w10 + a0.z * w20 + a0.w * w30;
        c01 = c01 + a0.x * w01 + a0.y * w11 + a0.z * w21 + a0.w * w31;
        let a1 = a[ra1 + q];
        c10 = c10 + a1.x * w00 + a1.y * w10 + a1.z * w20 + a1.w * w30;
        c11 = c11 + a1.x * w01 + a1.y * w11 + a1.z * w21 + a1.w * w31;
        let a2 = a[ra2 + q];
        c20 = c20 + a2.x * w00 + a2.y * w10 + a2.z * w20 + a2.w * w30;
        c21 = c21 + a2.x * w01 + a2.y * w11 + a2.z * w21 + a2.w * w31;
        let a3 = a[ra3 + q];
        c30 = c30 + a3.x * w00 + a3.y * w10 + a3.z * w20 + a3.w * w30;
        c31 = c31 + a3.x * w01 + a3.y * w11 + a3.z * w21 + a3.w * w31;
        let a4 = a[ra4 + q];
        c40 = c40 + a4.x * w00 + a4.y * w10 + a4.z * w20 + a4.w * w30;
        c41 = c41 + a4.x * w01 + a4.y * w11 + a4.z * w21 + a4.w * w31;
        let a5 = a[ra5 + q];
        c50 = c50 + a5.x * w00 + a5.y * w10 + a5.z * w20 + a5.w * w30;
        c51 = c51 + a5.x * w01 + a5.y * w11 + a5.z * w21 + a5.w * w31;
        let a6 = a[ra6 + q];
        c60 = c60 + a6.x * w00 + a6.y * w10 + a6.z * w20 + a6.w * w30;
        c61 = c61 + a6.x * w01 + a6.y * w11 + a6.z * w21 + a6.w * w31;
        let a7 = a[ra7 + q];
        c70 = c70 + a7.x * w00 + a7.y * w10 + a7.z * w20 + a7.w * w30;
        c71 = c71 + a7.x * w01 + a7.y * w11 + a7.z * w21 + a7.w * w31;
    }
    store4(i0 + 0u, j0 + 0u, c00);
    store4(i0 + 0u, j0 + 4u, c01);
    store4(i0 + 1u, j0 + 0u, c10);
    store4(i0 + 1u, j0 + 4u, c11);
    store4(i0 + 2u, j0 + 0u, c20);
    store4(i0 + 2u, j0 + 4u, c21);
    store4(i0 + 3u, j0 + 0u, c30);
    store4(i0 + 3u, j0 + 4u, c31);
    store4(i0 + 4u, j0 + 0u, c40);
    store4(i0 + 4u, j0 + 4u, c41);
    store4(i0 + 5u, j0 + 0u, c50);
    store4(i0 + 5u, j0 + 4u, c51);
    store4(i0 + 6u, j0 + 0u, c60);
    store4(i0 + 6u, j0 + 4u, c61);
    store4(i0 + 7u, j0 + 0u, c70);
    store4(i0 + 7u, j0 + 4u, c71);
}

// dW[n, k] (+)= sum_b dout[b, n] * inp[b, k]: both operands run along C (rows, columns), so each
// sample adds the outer product of two 8-vectors (two vec4 each).
@compute @workgroup_size(8, 8)
fn matmul_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 8u;
    let j0 = gid.x * 8u;
    if (i0 >= u.m || j0 >= u.n) {
        return;
    }
    // Second vec4s clamped inside the row; what they read past the edge is never stored.
    let ca0 = (u.a_off + i0) / 4u;
    let ca1 = (u.a_off + min(i0 + 4u, u.m - 4u)) / 4u;
    let cb0 = (u.b_off + j0) / 4u;
    let cb1 = (u.b_off + min(j0 + 4u, u.n - 4u)) / 4u;
    let sa = u.a_cs / 4u;
    let sb = u.b_rs / 4u;
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var p = 0u; p < u.k; p = p + 1u) {
        let x0 = a[ca0 + p * sa];
        let x1 = a[ca1 + p * sa];
        let y0 = b[cb0 + p * sb];
        let y1 = b[cb1 + p * sb];
        c00 = fma(vec4<f32>(x0.x), y0, c00);
        c01 = fma(vec4<f32>(x0.x), y1, c01);
        c10 = fma(vec4<f32>(x0.y), y0, c10);
        c11 = fma(vec4<f32>(x0.y), y1, c11);
        c20 = fma(vec4<f32>(x0.z), y0, c20);
        c21 = fma(vec4<f32>(x0.z), y1, c21);
        c30 = fma(vec4<f32>(x0.w), y0, c30);
        c31 = fma(vec4<f32>(x0.w), y1, c31);
        c40 = fma(vec4<f32>(x1.x), y0, c40);
        c41 = fma(vec4<f32>(x1.x), y1, c41);
        c50 = fma(vec4<f32>(x1.y), y0, c50);
        c51 = fma(vec4<f32>(x1.y), y1, c51);
        c60 = fma(vec4<f32>(x1.z), y0, c60);
        c61 = fma(vec4<f32>(x1.z), y1, c61);
        c70 = fma(vec4<f32>(x1.w), y0, c70);
        c71 = fma(vec4<f32>(x1.w), y1, c71);
    }
    store4(i0 + 0u, j0 + 0u, c00);
    store4(i0 + 0u, j0 + 4u, c01);
    store4(i0 + 1u, j0 + 0u, c10);
    store4(i0 + 1u, j0 + 4u, c11);
    store4(i0 + 2u, j0 + 0u, c20);
    store4(i0 + 2u, j0 + 4u, c21);
    store4(i0 + 3u, j0 + 0u, c30);
    store4(i0 + 3u, j0 + 4u, c31);
    store4(i0 + 4u, j0 + 0u, c40);
    store4(i0 + 4u, j0 + 4u, c41);
    store4(i0 + 5u, j0 + 0u, c50);
    store4(i0 + 5u, j0 + 4u, c51);
    store4(i0 + 6u, j0 + 0u, c60);
    store4(i0 + 6u, j0 + 4u, c61);
    store4(i0 + 7u, j0 + 0u, c70);
    store4(i0 + 7u, j0 + 4u, c71);
}
