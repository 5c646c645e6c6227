// Matrix products, register-blocked: each invocation keeps a 4x4 block of C in registers and
// uses no workgroup memory and no barriers (barriers are what a CPU-emulated GPU such as
// lavapipe pays most for). One generic product serves all three entry points:
//
//   C[m, n] = epilogue(sum_p A(i, p) * B(p, j))
//   A(i, p) = a[a_off + i*a_rs + p*a_cs],  B(p, j) = b[b_off + p*b_rs + j*b_cs]
//   C is row-major at c[c_off + i*n + j].
//
// The host sets the strides: matmul_forward     out[B,N]  = inp[B,K] . W[N,K]^T + bias
//                            matmul_backward_input  dinp[B,K] = dout[B,N] . W[N,K]
//                            matmul_backward_weight dW[N,K] (+)= dout[B,N]^T . inp[B,K]

// The uniform block, c, aux, `finish` and `bias_grad` come from matmul_common.wgsl.


@group(0) @binding(1) var<storage, read> a: array<f32>;          // A, strided
@group(0) @binding(2) var<storage, read> b: array<f32>;          // B, strided

fn mm_block(gid: vec3<u32>) {
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= u.m || j0 >= u.n) {
        return;
    }
    // Clamp rows and columns past the edge onto the last one: the loads stay in range and the
    // store below skips them.
    let im = u.m - 1u;
    let jm = u.n - 1u;
    let ra = vec4<u32>(min(i0, im), min(i0 + 1u, im), min(i0 + 2u, im), min(i0 + 3u, im)) * u.a_rs + u.a_off;
    let cb = vec4<u32>(min(j0, jm), min(j0 + 1u, jm), min(j0 + 2u, jm), min(j0 + 3u, jm)) * u.b_cs + u.b_off;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var rsum = vec4<f32>(0.0);
    for (var p = 0u; p < u.k; p = p + 1u) {
        let pa = p * u.a_cs;
        let pb = p * u.b_rs;
        let av = vec4<f32>(a[ra.x + pa], a[ra.y + pa], a[ra.z + pa], a[ra.w + pa]);
        let bv = vec4<f32>(b[cb.x + pb], b[cb.y + pb], b[cb.z + pb], b[cb.w + pb]);
        acc0 = fma(vec4<f32>(av.x), bv, acc0);
        acc1 = fma(vec4<f32>(av.y), bv, acc1);
        acc2 = fma(vec4<f32>(av.z), bv, acc2);
        acc3 = fma(vec4<f32>(av.w), bv, acc3);
        rsum = rsum + av;
    }
    if ((u.flags & BIAS_GRAD) != 0u && j0 == 0u) {
        for (var r = 0u; r < 4u && i0 + r < u.m; r = r + 1u) {
            bias_grad(i0 + r, rsum[r]);
        }
    }
    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r = r + 1u) {
        let i = i0 + r;
        if (i >= u.m) {
            break;
        }
        let row = rows[r];
        for (var q = 0u; q < 4u; q = q + 1u) {
            let j = j0 + q;
            if (j >= u.n) {
                break;
            }
            finish(i, j, row[q]);
        }
    }
}

@compute @workgroup_size(8, 8)
fn matmul_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    mm_block(gid);
}

@compute @workgroup_size(8, 8)
fn matmul_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    mm_block(gid);
}

@compute @workgroup_size(8, 8)
fn matmul_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    mm_block(gid);
}
