// The bias gradient: a column sum over the batch, one invocation per column, in row order.
// (The bias add itself is fused into matmul_forward's epilogue.)

struct Bias {
    rows: u32, n: u32, off: u32, flags: u32,
}

const ACCUMULATE: u32 = 2u;

@group(0) @binding(0) var<storage, read_write> dbias: array<f32>;  // dbias [n] at off
@group(0) @binding(1) var<storage, read> dout: array<f32>;         // dout [rows, n]
@group(0) @binding(2) var<uniform> u: Bias;

@compute @workgroup_size(64)
fn bias_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= u.n) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < u.rows; r = r + 1u) {
        s = s + dout[r * u.n + j];
    }
    if ((u.flags & ACCUMULATE) != 0u) {
        s = s + dbias[u.off + j];
    }
    dbias[u.off + j] = s;
}
