// The output layer's whole training step, in one dispatch of one workgroup:
//
//   logits = act·Wᵀ + b;  losses;  dlogits = ∂loss/∂logits · scale                (per row)
//   dact = (dlogits·W) ⊙ f'(act)             with DRELU / DSIGMOID / DTANH (a hidden layer below)
//   dact = dlogits·W                          with DIDENT (dropout_backward applies f' after)
//   grads.W (+)= dlogitsᵀ·act;  grads.b (+)= Σ_rows dlogits                       (ACCUMULATE)
//   step_losses[state[0]] (+)= Σ losses;  state[0] += 1                           (ADVANCE)
//
// Why one kernel: on llvmpipe every dispatch costs about 100 µs of thread hand-offs whatever its
// size, and this layer's products are tiny (10 outputs). Run separately they take five dispatches
// (matmul_forward, softmax_xent_forward, loss_reduce, matmul_backward_weight with the bias
// gradient, matmul_backward_input); here they take one. One workgroup holds the whole batch, so the loss
// sum and the weight gradient need no cross-workgroup reduction: the host uses this kernel for
// batches of at most 256 rows whose hidden size and offsets are multiples of 4, and the separate
// kernels otherwise. The CPU twin, cpu::kernels::output_layer_step, runs those separate twins.

struct Head {
    rows: u32, h4: u32, w4: u32, b4: u32,   // h4 = h/4; W at w4, bias at b4 (vec4 units)
    flags: u32, scale: f32, slot: u32, _p0: u32,
}

const MSE: u32 = 1u;          // else softmax cross-entropy
const ACCUMULATE: u32 = 2u;   // grads += instead of =; step_losses[..] += instead of =
const ADVANCE: u32 = 8u;      // the step counter moves on
const DRELU: u32 = 32u;
const DSIGMOID: u32 = 64u;
const DTANH: u32 = 128u;
const DIDENT: u32 = 512u;
const CLASSES: u32 = 10u;
const WG: u32 = 64u;
const MAX_ROWS: u32 = 256u;

@group(0) @binding(0) var<storage, read> act: array<vec4<f32>>;             // act [rows, h]
@group(0) @binding(1) var<storage, read> params: array<vec4<f32>>;          // W [10, h], b [10]
@group(0) @binding(2) var<storage, read_write> grads: array<vec4<f32>>;     // laid out as params
@group(0) @binding(3) var<storage, read_write> dact: array<vec4<f32>>;      // dact [rows, h]
@group(0) @binding(4) var<storage, read> labels: array<u32>;                // labels [rows]
@group(0) @binding(5) var<storage, read_write> step_losses: array<f32>;     // [steps]
@group(0) @binding(6) var<storage, read_write> state: array<u32>;           // [4]: step, ...
@group(0) @binding(15) var<uniform> u: Head;

var<workgroup> dl: array<vec4<f32>, 768>;  // dlogits [rows, 12] (10 and 2 zeros), rows <= 256
var<workgroup> part: array<f32, 64>;        // each invocation's loss sum

// f'(a) from the activation's output a, as matmul_common.wgsl's epilogue computes it.
fn deriv(a: vec4<f32>) -> vec4<f32> {
    if ((u.flags & DRELU) != 0u) {
        return select(vec4<f32>(0.0), vec4<f32>(1.0), a > vec4<f32>(0.0));
    }
    if ((u.flags & DSIGMOID) != 0u) {
        return a * (1.0 - a);
    }
    if ((u.flags & DTANH) != 0u) {
        return 1.0 - a * a;
    }
    return vec4<f32>(1.0);
}

// Row q/4-th vec4 of W[j]. Every lane needs all ten rows of W at the same q; lanes 0..7 load rows
// 0..7 and lanes 0..1 rows 8..9, and shuffles hand them to every lane (on llvmpipe a load is a
// loop over the lanes, a shuffle with a constant lane one instruction). Needs subgroups of at
// least 8; the host checks.
fn w_rows(lane: u32, q: u32) -> array<vec4<f32>, 10> {
    let lo = params[u.w4 + min(lane, 9u) * u.h4 + q];
    let hi = params[u.w4 + (8u + lane % 2u) * u.h4 + q];
    return array<vec4<f32>, 10>(
        subgroupShuffle(lo, 0u), subgroupShuffle(lo, 1u), subgroupShuffle(lo, 2u),
        subgroupShuffle(lo, 3u), subgroupShuffle(lo, 4u), subgroupShuffle(lo, 5u),
        subgroupShuffle(lo, 6u), subgroupShuffle(lo, 7u), subgroupShuffle(hi, 0u),
        subgroupShuffle(hi, 1u),
    );
}

@compute @workgroup_size(64)
fn output_layer_step(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let h4 = u.h4;
    let bias = array<vec4<f32>, 3>(params[u.b4], params[u.b4 + 1u], params[u.b4 + 2u]);
    var lsum = 0.0;
    // Whole subgroups run every iteration (shuffles need them): lanes past the last row redo
    // the last row and store nothing.
    for (var base = 0u; base < u.rows; base = base + WG) {
        let live = base + lid < u.rows;
        let r = min(base + lid, u.rows - 1u);
        // logits: ten dot products along the row.
        var z = array<f32, 10>();
        for (var q = 0u; q < h4; q = q + 1u) {
            let a = act[r * h4 + q];
            let w = w_rows(lane, q);
            for (var j = 0u; j < CLASSES; j = j + 1u) {
                z[j] = z[j] + dot(a, w[j]);
            }
        }
        let y = labels[r];
        var loss = 0.0;
        var d = array<f32, 12>();
        if ((u.flags & MSE) != 0u) {
            for (var j = 0u; j < CLASSES; j = j + 1u) {
                let e = z[j] + bias[j / 4u][j % 4u] - select(0.0, 1.0, y == j);
                loss = loss + e * e;
                d[j] = 2.0 * e / f32(CLASSES) * u.scale;
            }
            loss = loss / f32(CLASSES);
        } else {
            var mx = -3.4e38;
            for (var j = 0u; j < CLASSES; j = j + 1u) {
                z[j] = z[j] + bias[j / 4u][j % 4u];
                mx = max(mx, z[j]);
            }
            var s = 0.0;
            var zy = 0.0;
            for (var j = 0u; j < CLASSES; j = j + 1u) {
                s = s + exp(z[j] - mx);
                zy = select(zy, z[j], y == j);
            }
            let inv = 1.0 / s;
            for (var j = 0u; j < CLASSES; j = j + 1u) {
                let p = exp(z[j] - mx) * inv;
                d[j] = (p - select(0.0, 1.0, y == j)) * u.scale;
            }
            loss = log(s) - (zy - mx);
        }
        if (live) {
            lsum = lsum + loss;
            dl[r * 3u] = vec4<f32>(d[0], d[1], d[2], d[3]);
            dl[r * 3u + 1u] = vec4<f32>(d[4], d[5], d[6], d[7]);
            dl[r * 3u + 2u] = vec4<f32>(d[8], d[9], 0.0, 0.0);
        }
        // dact = (dlogits·W) ⊙ f'(act), while this row's dlogits are at hand.
        if ((u.flags & (DRELU | DSIGMOID | DTANH | DIDENT)) != 0u) {
            for (var q = 0u; q < h4; q = q + 1u) {
                let w = w_rows(lane, q);
                var g = vec4<f32>(0.0);
                for (var j = 0u; j < CLASSES; j = j + 1u) {
                    g = g + d[j] * w[j];
                }
                if (live) {
                    dact[r * h4 + q] = g * deriv(act[r * h4 + q]);
                }
            }
        }
    }
    part[lid] = lsum;
    workgroupBarrier();
    // grads.W[j, 4q..4q+4] (+)= Σ_r dlogits[r, j] · act[r, 4q..4q+4]: one q per invocation, all
    // ten j, so each row costs four loads for forty multiply-adds.
    for (var q = lid; q < h4; q = q + WG) {
        var g = array<vec4<f32>, 10>();
        for (var r = 0u; r < u.rows; r = r + 1u) {
            let a = act[r * h4 + q];
            let d0 = dl[r * 3u];
            let d1 = dl[r * 3u + 1u];
            let d2 = dl[r * 3u + 2u];
            g[0] = g[0] + d0.x * a;
            g[1] = g[1] + d0.y * a;
            g[2] = g[2] + d0.z * a;
            g[3] = g[3] + d0.w * a;
            g[4] = g[4] + d1.x * a;
            g[5] = g[5] + d1.y * a;
            g[6] = g[6] + d1.z * a;
            g[7] = g[7] + d1.w * a;
            g[8] = g[8] + d2.x * a;
            g[9] = g[9] + d2.y * a;
        }
        for (var j = 0u; j < CLASSES; j = j + 1u) {
            let at = u.w4 + j * h4 + q;
            var v = g[j];
            if ((u.flags & ACCUMULATE) != 0u) {
                v = v + grads[at];
            }
            grads[at] = v;
        }
    }
    // grads.b: three vec4s, of which the last two floats are the buffer's padding (kept).
    if (lid < 3u) {
        var g = vec4<f32>(0.0);
        for (var r = 0u; r < u.rows; r = r + 1u) {
            g = g + dl[r * 3u + lid];
        }
        let at = u.b4 + lid;
        let old = grads[at];
        if ((u.flags & ACCUMULATE) != 0u) {
            g = g + old;
        }
        if (lid == 2u) {
            g = vec4<f32>(g.xy, old.zw);
        }
        grads[at] = g;
    }
    // The loss sum in a fixed order, then the step counter.
    if (lid == 0u) {
        var total = 0.0;
        for (var i = 0u; i < WG; i = i + 1u) {
            total = total + part[i];
        }
        let slot = u.slot + state[0];
        if ((u.flags & ACCUMULATE) != 0u) {
            total = total + step_losses[slot];
        }
        step_losses[slot] = total;
        if ((u.flags & ADVANCE) != 0u) {
            state[0] = state[0] + 1u;
        }
    }
}
