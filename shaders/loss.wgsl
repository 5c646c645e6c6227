// Losses (forward: per-sample loss; backward: gradient w.r.t. the logits), their reduction, and
// the accuracy count for evaluation. WGSL has no float atomics: each output element has one
// writer, and loss_reduce is a single workgroup summing in a fixed order.

struct Loss {
    rows: u32, classes: u32, flags: u32, slot: u32,
    scale: f32, _p0: u32, _p1: u32, _p2: u32,
}

const ACCUMULATE: u32 = 2u;
const SLOT_FROM_STATE: u32 = 4u;
const ADVANCE: u32 = 8u;
// The forward kernels also write the gradient w.r.t. the logits (scaled by u.scale), saving the
// backward dispatch; softmax_xent_backward / mse_backward remain for --unfused.
const WITH_GRAD: u32 = 16u;

@group(0) @binding(0) var<storage, read_write> losses: array<f32>;         // losses [rows]
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;          // probs [rows, C]
@group(0) @binding(2) var<storage, read> logits: array<f32>;               // logits [rows, C]
@group(0) @binding(3) var<storage, read> labels: array<u32>;               // labels [rows]
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;        // dlogits [rows, C]
@group(0) @binding(5) var<storage, read> probs_in: array<f32>;             // probs [rows, C]
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;           // sums [slots]
@group(0) @binding(7) var<storage, read_write> state: array<u32>;          // state [4]: step, ...
@group(0) @binding(8) var<storage, read> losses_in: array<f32>;            // losses [rows]
@group(0) @binding(9) var<storage, read_write> correct: array<atomic<u32>>; // correct [slots]
@group(0) @binding(15) var<uniform> u: Loss;

// The one-hot target of row r at class j.
fn onehot(r: u32, j: u32) -> f32 {
    return select(0.0, 1.0, labels[r] == j);
}

@compute @workgroup_size(64)
fn softmax_xent_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= u.rows) {
        return;
    }
    let o = r * u.classes;
    var mx = logits[o];
    for (var j = 1u; j < u.classes; j = j + 1u) {
        mx = max(mx, logits[o + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < u.classes; j = j + 1u) {
        let e = exp(logits[o + j] - mx);
        probs[o + j] = e;
        s = s + e;
    }
    let inv = 1.0 / s;
    let grad = (u.flags & WITH_GRAD) != 0u;
    for (var j = 0u; j < u.classes; j = j + 1u) {
        let p = probs[o + j] * inv;
        probs[o + j] = p;
        if (grad) {
            dlogits[o + j] = (p - onehot(r, j)) * u.scale;
        }
    }
    losses[r] = log(s) - (logits[o + labels[r]] - mx);
}

@compute @workgroup_size(256)
fn softmax_xent_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= u.rows * u.classes) {
        return;
    }
    let r = i / u.classes;
    dlogits[i] = (probs_in[i] - onehot(r, i % u.classes)) * u.scale;
}

@compute @workgroup_size(64)
fn mse_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= u.rows) {
        return;
    }
    let o = r * u.classes;
    var s = 0.0;
    for (var j = 0u; j < u.classes; j = j + 1u) {
        let d = logits[o + j] - onehot(r, j);
        s = s + d * d;
        if ((u.flags & WITH_GRAD) != 0u) {
            dlogits[o + j] = 2.0 * d / f32(u.classes) * u.scale;
        }
    }
    losses[r] = s / f32(u.classes);
}

@compute @workgroup_size(256)
fn mse_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= u.rows * u.classes) {
        return;
    }
    let r = i / u.classes;
    dlogits[i] = 2.0 * (logits[i] - onehot(r, i % u.classes)) / f32(u.classes) * u.scale;
}

var<workgroup> partial: array<f32, 256>;

// sums[slot] (+)= sum(losses_in[0..rows]); slot = u.slot (+ state[0] when SLOT_FROM_STATE).
// With ADVANCE, the step counter moves on: this is the last kernel of a step that reads it.
@compute @workgroup_size(256)
fn loss_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var r = lid.x; r < u.rows; r = r + 256u) {
        s = s + losses_in[r];
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w / 2u) {
        if (lid.x < w) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        var slot = u.slot;
        if ((u.flags & SLOT_FROM_STATE) != 0u) {
            slot = slot + state[0];
        }
        var total = partial[0];
        if ((u.flags & ACCUMULATE) != 0u) {
            total = total + sums[slot];
        }
        sums[slot] = total;
        if ((u.flags & ADVANCE) != 0u) {
            state[0] = state[0] + 1u;
        }
    }
}

// correct[slot] += #{r : argmax(logits[r]) == labels[r]}; the first maximum wins on ties.
@compute @workgroup_size(64)
fn argmax_correct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= u.rows) {
        return;
    }
    let o = r * u.classes;
    var best = 0u;
    for (var j = 1u; j < u.classes; j = j + 1u) {
        if (logits[o + j] > logits[o + best]) {
            best = j;
        }
    }
    if (best == labels[r]) {
        atomicAdd(&correct[u.slot], 1u);
    }
}
