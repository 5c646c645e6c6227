// The output layer's whole training step, in one dispatch of one workgroup:
//
//   logits = act·Wᵀ + b;  losses;  dlogits = ∂loss/∂logits · scale                (per row)
//   dact = (dlogits·W) ⊙ f'(act)             with DRELU / DSIGMOID / DTANH (a hidden layer below)
//   dact = dlogits·W                          with DIDENT (dropout_backward applies f' after)
//   grads.W (+)= dlogitsᵀ·act;  grads.b (+)= Σ_rows dlogits                       (ACCUMULATE)
//   step_losses[state[0]] (+)= Σ losses;  state[0] += 1                           (ADVANCE)
//   W −= lr·dW;  b −= lr·db   instead of writing grads                          (SGD_STEP)
//
// Why one kernel: on llvmpipe every dispatch costs about 100 µs of thread hand-offs whatever its
// size, and this layer's products are tiny (10 outputs). Run separately they take five dispatches
// (matmul_forward, softmax_xent_forward, loss_reduce, matmul_backward_weight with the bias
// gradient, matmul_backward_input); here they take one. One workgroup holds the whole batch, so
// the loss sum and the weight gradient need no cross-workgroup reduction: the host uses this
// kernel for batches of at most 256 rows whose hidden size and offsets are multiples of 4 and
// whose W and b fit a 64 KiB uniform array, and the separate kernels otherwise. The CPU twin,
// cpu::kernels::output_layer_step, runs those separate twins.
//
// Where the operands live, and why: on llvmpipe a storage or workgroup load is a loop over the
// SIMD lanes with a branch per lane (even when every lane reads one address), a uniform load at
// one address is one scalar load, and a uniform load at per-lane addresses a branch-free gather.
// So W and b come from `wu`, a copy of the layer's parameters the host makes before each step
// (every lane reads W[j, q] at the same q); act comes from `au` where the batch fits 64 KiB
// (form Input) and from storage otherwise (form Scalar), through act_at, which the host appends
// to this file per form. Measured at 784-128-10, batch 64: 0.73-0.80 ms with W and act from
// storage (subgroup shuffles sharing W), 0.38-0.47 ms with W uniform, 0.21-0.33 ms with both.

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
// Plain SGD (μ = 0, λ = 0) in the stores: W −= lr·dW and b −= lr·db instead of writing grads.
// The host sets it for a step of one chunk, where this is the last layer's whole gradient; W
// is read from the copy `wu` only, so writing params here races with nothing.
const SGD_STEP: u32 = 1024u;
const CLASSES: u32 = 10u;
const WG: u32 = 64u;
const MAX_ROWS: u32 = 256u;

struct StepHyper {
    lr: f32, bc1: f32, bc2: f32, t: u32,
}

@group(0) @binding(0) var<storage, read> act: array<vec4<f32>>;             // act [rows, h]
@group(0) @binding(1) var<storage, read_write> params: array<vec4<f32>>;    // SGD_STEP only
@group(0) @binding(2) var<storage, read_write> grads: array<vec4<f32>>;     // laid out as params
@group(0) @binding(3) var<storage, read_write> dact: array<vec4<f32>>;      // dact [rows, h]
@group(0) @binding(4) var<storage, read> labels: array<u32>;                // labels [rows]
@group(0) @binding(5) var<storage, read_write> step_losses: array<f32>;     // [steps]
@group(0) @binding(6) var<storage, read_write> state: array<u32>;           // [4]: step, ...
@group(0) @binding(7) var<uniform> wu: array<vec4<f32>, 4096>;  // W [10, h], b [10] (a copy)
@group(0) @binding(8) var<uniform> au: array<vec4<f32>, 4096>;  // act [rows, h] (form Input)
@group(0) @binding(9) var<uniform> hyper: StepHyper;             // this step's row (SGD_STEP)
@group(0) @binding(15) var<uniform> u: Head;

var<workgroup> dl: array<vec4<f32>, 768>;  // [rows, 12]: dlogits (10), the row's loss, 0; rows <= 256

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

// The ten rows of W at column block q (vec4 q of each row), as one value per class.
struct W10 {
    w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>, w4: vec4<f32>,
    w5: vec4<f32>, w6: vec4<f32>, w7: vec4<f32>, w8: vec4<f32>, w9: vec4<f32>,
}

// Every class is spelled out, here and below: a loop over classes would index an array
// dynamically, and llvmpipe keeps such an array in memory.
fn w_rows(q: u32) -> W10 {
    let h4 = u.h4;
    return W10(
        wu[q], wu[q + h4], wu[q + 2u * h4], wu[q + 3u * h4],
        wu[q + 4u * h4], wu[q + 5u * h4], wu[q + 6u * h4], wu[q + 7u * h4],
        wu[q + 8u * h4], wu[q + 9u * h4],
    );
}

// g += dlogits[r, j] · a for every class j.
fn outer(g: ptr<function, W10>, a: vec4<f32>, d0: vec4<f32>, d1: vec4<f32>, d2: vec4<f32>) {
    (*g).w0 = (*g).w0 + d0.x * a;
    (*g).w1 = (*g).w1 + d0.y * a;
    (*g).w2 = (*g).w2 + d0.z * a;
    (*g).w3 = (*g).w3 + d0.w * a;
    (*g).w4 = (*g).w4 + d1.x * a;
    (*g).w5 = (*g).w5 + d1.y * a;
    (*g).w6 = (*g).w6 + d1.z * a;
    (*g).w7 = (*g).w7 + d1.w * a;
    (*g).w8 = (*g).w8 + d2.x * a;
    (*g).w9 = (*g).w9 + d2.y * a;
}

// grads.W[j, 4q..4q+4] for every class j.
fn store_w10(q: u32, g: W10) {
    let at = u.w4 + q;
    let h4 = u.h4;
    store_grad(at, g.w0);
    store_grad(at + h4, g.w1);
    store_grad(at + 2u * h4, g.w2);
    store_grad(at + 3u * h4, g.w3);
    store_grad(at + 4u * h4, g.w4);
    store_grad(at + 5u * h4, g.w5);
    store_grad(at + 6u * h4, g.w6);
    store_grad(at + 7u * h4, g.w7);
    store_grad(at + 8u * h4, g.w8);
    store_grad(at + 9u * h4, g.w9);
}

// grads.b (+)= Σ_r dlogits (or, with SGD_STEP, b −= lr·Σ_r dlogits); step_losses[step] (+)=
// Σ_r losses; the step counter moves on. The bias's last two floats are the buffer's padding,
// kept.
fn sums(e0: vec4<f32>, e1: vec4<f32>, e2: vec4<f32>) {
    store_grad(u.b4, e0);
    store_grad(u.b4 + 1u, e1);
    if ((u.flags & SGD_STEP) != 0u) {
        let p = params[u.b4 + 2u];
        params[u.b4 + 2u] = vec4<f32>(p.xy - hyper.lr * e2.xy, p.zw);
    } else {
        let old = grads[u.b4 + 2u];
        var g = e2.xy;
        if ((u.flags & ACCUMULATE) != 0u) {
            g = g + old.xy;
        }
        grads[u.b4 + 2u] = vec4<f32>(g, old.zw);
    }
    let slot = u.slot + state[0];
    var total = e2.z;
    if ((u.flags & ACCUMULATE) != 0u) {
        total = total + step_losses[slot];
    }
    step_losses[slot] = total;
    if ((u.flags & ADVANCE) != 0u) {
        state[0] = state[0] + 1u;
    }
}

// grads[at] = v, or += with ACCUMULATE; with SGD_STEP the parameter's plain SGD step instead,
// params[at] = p − lr·v, with p from the uniform copy.
fn store_grad(at: u32, v: vec4<f32>) {
    if ((u.flags & SGD_STEP) != 0u) {
        params[at] = wu[at - u.w4] - hyper.lr * v;
        return;
    }
    var g = v;
    if ((u.flags & ACCUMULATE) != 0u) {
        g = g + grads[at];
    }
    grads[at] = g;
}

// 1 at class y's place among classes 0..3, 4..7 and 8..11 (8 and 9 real, the rest padding).
fn one_hot(y: u32, first: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(y) == vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u));
}

@compute @workgroup_size(64)
fn output_layer_step(
    @builtin(local_invocation_index) lid: u32,
) {
    let h4 = u.h4;
    let b0 = wu[10u * h4];
    let b1 = wu[10u * h4 + 1u];
    let b2 = wu[10u * h4 + 2u];
    // Invocations past the last row redo the last row and store nothing.
    for (var base = 0u; base < u.rows; base = base + WG) {
        let live = base + lid < u.rows;
        let r = min(base + lid, u.rows - 1u);
        // logits [classes 0..3, 4..7, 8..9]: ten dot products along the row.
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec2<f32>(0.0);
        for (var q = 0u; q < h4; q = q + 1u) {
            let a = act_at(r * h4 + q);
            let w = w_rows(q);
            z0 = z0 + vec4<f32>(dot(a, w.w0), dot(a, w.w1), dot(a, w.w2), dot(a, w.w3));
            z1 = z1 + vec4<f32>(dot(a, w.w4), dot(a, w.w5), dot(a, w.w6), dot(a, w.w7));
            z2 = z2 + vec2<f32>(dot(a, w.w8), dot(a, w.w9));
        }
        z0 = z0 + b0;
        z1 = z1 + b1;
        z2 = z2 + b2.xy;
        let y = labels[r];
        let t0 = one_hot(y, 0u);
        let t1 = one_hot(y, 4u);
        let t2 = one_hot(y, 8u).xy;
        var loss = 0.0;
        var d0: vec4<f32>;
        var d1: vec4<f32>;
        var d2: vec2<f32>;
        if ((u.flags & MSE) != 0u) {
            let e0 = z0 - t0;
            let e1 = z1 - t1;
            let e2 = z2 - t2;
            loss = (dot(e0, e0) + dot(e1, e1) + dot(e2, e2)) / f32(CLASSES);
            let k = 2.0 / f32(CLASSES) * u.scale;
            d0 = e0 * k;
            d1 = e1 * k;
            d2 = e2 * k;
        } else {
            let m4 = max(z0, z1);
            let mx = max(max(max(m4.x, m4.y), max(m4.z, m4.w)), max(z2.x, z2.y));
            let p0 = exp(z0 - mx);
            let p1 = exp(z1 - mx);
            let p2 = exp(z2 - mx);
            let s = dot(p0, vec4<f32>(1.0)) + dot(p1, vec4<f32>(1.0)) + p2.x + p2.y;
            let zy = dot(z0, t0) + dot(z1, t1) + dot(z2, t2);
            let inv = 1.0 / s;
            d0 = (p0 * inv - t0) * u.scale;
            d1 = (p1 * inv - t1) * u.scale;
            d2 = (p2 * inv - t2) * u.scale;
            loss = log(s) - (zy - mx);
        }
        if (live) {
            dl[r * 3u] = d0;
            dl[r * 3u + 1u] = d1;
            dl[r * 3u + 2u] = vec4<f32>(d2, loss, 0.0);
        }
        // dact = (dlogits·W) ⊙ f'(act), while this row's dlogits are at hand.
        if ((u.flags & (DRELU | DSIGMOID | DTANH | DIDENT)) != 0u) {
            for (var q = 0u; q < h4; q = q + 1u) {
                let w = w_rows(q);
                let g = d0.x * w.w0 + d0.y * w.w1 + d0.z * w.w2 + d0.w * w.w3 + d1.x * w.w4
                    + d1.y * w.w5 + d1.z * w.w6 + d1.w * w.w7 + d2.x * w.w8 + d2.y * w.w9;
                if (live) {
                    dact[r * h4 + q] = g * deriv(act_at(r * h4 + q));
                }
            }
        }
    }
    workgroupBarrier();
    // grads.W[j, 4q..4q+4] (+)= Σ_r dlogits[r, j] · act[r, 4q..4q+4]: four column blocks q per
    // invocation (q0 + k·S), all ten classes, so each row's three dlogits loads (a workgroup
    // load is a loop over the lanes on llvmpipe, even at one address) feed 160 multiply-adds.
    let s4 = (h4 + 3u) / 4u;
    for (var q0 = lid; q0 < s4; q0 = q0 + WG) {
        let q1 = min(q0 + s4, h4 - 1u);
        let q2 = min(q0 + 2u * s4, h4 - 1u);
        let q3 = min(q0 + 3u * s4, h4 - 1u);
        var g0 = W10();
        var g1 = W10();
        var g2 = W10();
        var g3 = W10();
        // Σ_r dlogits [classes 0..3, 4..7, 8..9] and, in e2.z, Σ_r losses (dl's padding).
        var e0 = vec4<f32>(0.0);
        var e1 = vec4<f32>(0.0);
        var e2 = vec4<f32>(0.0);
        for (var r = 0u; r < u.rows; r = r + 1u) {
            let d0 = dl[r * 3u];
            let d1 = dl[r * 3u + 1u];
            let d2 = dl[r * 3u + 2u];
            outer(&g0, act_at(r * h4 + q0), d0, d1, d2);
            outer(&g1, act_at(r * h4 + q1), d0, d1, d2);
            outer(&g2, act_at(r * h4 + q2), d0, d1, d2);
            outer(&g3, act_at(r * h4 + q3), d0, d1, d2);
            e0 = e0 + d0;
            e1 = e1 + d1;
            e2 = e2 + d2;
        }
        if (q0 == 0u) {
            sums(e0, e1, e2);
        }
        store_w10(q0, g0);
        if (q0 + s4 < h4) {
            store_w10(q1, g1);
        }
        if (q0 + 2u * s4 < h4) {
            store_w10(q2, g2);
        }
        if (q0 + 3u * s4 < h4) {
            store_w10(q3, g3);
        }
    }
}
