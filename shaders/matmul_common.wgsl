// Shared by every matmul file (prepended when the module is built): the uniform block, the
// bindings c and aux, and the epilogue every product ends with. The vec4 forms store through
// `c4`, a vec4 view of binding 0; WGSL allows the alias since no entry point uses both.
//
// Epilogue flags, applied in this order to each output element C[i, j]:
//   ADD_BIAS    + bias[bias_off + j]                 (matmul_forward: the layer's bias)
//   ACCUMULATE  + the old C[i, j]                    (a batch in several chunks)
//   RELU / SIGMOID / TANH   the activation           (matmul_forward of a hidden layer)
//   DRELU / DSIGMOID / DTANH  times f'(act), act = aux[bias_off + i*n + j], the activation's
//               output                               (matmul_backward_input)
// Fusing these saves a dispatch per layer and direction; the CPU twins stay separate functions
// (relu_forward, relu_backward, ...) and the parity tests compare the fused result to them.

struct Mm {
    m: u32, n: u32, k: u32, flags: u32,
    a_off: u32, a_rs: u32, a_cs: u32, b_off: u32,
    b_rs: u32, b_cs: u32, c_off: u32, bias_off: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}

const ADD_BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const RELU: u32 = 4u;
const SIGMOID: u32 = 8u;
const TANH: u32 = 16u;
const DRELU: u32 = 32u;
const DSIGMOID: u32 = 64u;
const DTANH: u32 = 128u;
const DERIVATIVE: u32 = 224u;  // DRELU | DSIGMOID | DTANH
// matmul_backward_weight also writes the bias gradient, C[bias_off + i] (+)= sum_p A(i, p)
// (A = dout^T, so that is bias_backward's column sum), from the invocations of column block 0.
const BIAS_GRAD: u32 = 256u;
// Plain SGD in matmul_backward_weight's store (the vec4 forms' store4_grad and bias_grad4): C
// is the parameters, and each element takes C −= lr·(its gradient) instead of being the gradient,
// lr from `hyper`. The host sets it for the input layer's product when the optimizer is plain
// SGD (μ = 0, λ = 0) and the batch is one chunk, and then leaves that layer out of sgd_update:
// on llvmpipe every access of an element-wise kernel is a loop over the lanes, and this saves
// the update's three accesses per weight for the one added here (the weight's old value).
const SGD_STEP: u32 = 512u;

@group(0) @binding(0) var<storage, read_write> c: array<f32>;    // C [m, n] at c_off
@group(0) @binding(3) var<storage, read> aux: array<f32>;       // bias [n] or act [m, n], at bias_off
@group(0) @binding(4) var<uniform> u: Mm;

struct StepHyper {
    lr: f32, bc1: f32, bc2: f32, t: u32,
}
@group(0) @binding(10) var<uniform> hyper: StepHyper;  // this step's row (SGD_STEP only)

// The aux value the epilogue needs at C[i, j]: the bias, or the activation's output.
fn aux_at(i: u32, j: u32) -> f32 {
    if ((u.flags & ADD_BIAS) != 0u) {
        return aux[u.bias_off + j];
    }
    if ((u.flags & DERIVATIVE) != 0u) {
        return aux[u.bias_off + i * u.n + j];
    }
    return 0.0;
}

// acc: the product; x: aux_at(i, j); old: C[i, j] before (read only with ACCUMULATE).
fn epilogue(acc: f32, x: f32, old: f32) -> f32 {
    let f = u.flags;
    var v = acc;
    if ((f & ADD_BIAS) != 0u) {
        v = v + x;
    }
    if ((f & ACCUMULATE) != 0u) {
        v = v + old;
    }
    if ((f & RELU) != 0u) {
        v = max(v, 0.0);
    } else if ((f & SIGMOID) != 0u) {
        v = 1.0 / (1.0 + exp(-v));
    } else if ((f & TANH) != 0u) {
        v = tanh(v);
    }
    if ((f & DRELU) != 0u) {
        if (x <= 0.0) {
            v = 0.0;
        }
    } else if ((f & DSIGMOID) != 0u) {
        v = v * x * (1.0 - x);
    } else if ((f & DTANH) != 0u) {
        v = v * (1.0 - x * x);
    }
    return v;
}

fn finish(i: u32, j: u32, acc: f32) {
    let at = u.c_off + i * u.n + j;
    var old = 0.0;
    if ((u.flags & ACCUMULATE) != 0u) {
        old = c[at];
    }
    c[at] = epilogue(acc, aux_at(i, j), old);
}

// The bias gradient of row i (BIAS_GRAD), overwriting or accumulating like C itself.
fn bias_grad(i: u32, sum: f32) {
    let at = u.bias_off + i;
    var v = sum;
    if ((u.flags & ACCUMULATE) != 0u) {
        v = v + c[at];
    }
    c[at] = v;
}

// The vec4 forms (matmul_vec4.wgsl, matmul_subgroup.wgsl) store C through this view of binding 0.
@group(0) @binding(0) var<storage, read_write> c4: array<vec4<f32>>;  // C [m, n/4] at c_off/4
@group(0) @binding(3) var<storage, read> aux4: array<vec4<f32>>;     // aux, bias_off a multiple of 4

// C[i, j0..j0+4] = epilogue(v), skipped past the edge of C.
fn store4(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= u.m || j0 >= u.n) {
        return;
    }
    let at = (u.c_off + i * u.n + j0) / 4u;
    var old = vec4<f32>(0.0);
    if ((u.flags & ACCUMULATE) != 0u) {
        old = c4[at];
    }
    // aux_at for four columns, as one vec4 load (the host aligns bias_off for the vec4 forms).
    var x = vec4<f32>(0.0);
    if ((u.flags & ADD_BIAS) != 0u) {
        x = aux4[(u.bias_off + j0) / 4u];
    } else if ((u.flags & DERIVATIVE) != 0u) {
        x = aux4[(u.bias_off + i * u.n + j0) / 4u];
    }
    c4[at] = vec4<f32>(
        epilogue(v.x, x.x, old.x),
        epilogue(v.y, x.y, old.y),
        epilogue(v.z, x.z, old.z),
        epilogue(v.w, x.w, old.w),
    );
}

// store4 for matmul_backward_weight, whose only epilogue flag is ACCUMULATE. On llvmpipe both
// sides of every `if` run (under a mask), so store4's activation code would cost exp and tanh
// per element even where no flag asks for them; this product writes 100k elements a step.
fn store4_grad(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= u.m || j0 >= u.n) {
        return;
    }
    let at = (u.c_off + i * u.n + j0) / 4u;
    var g = v;
    if ((u.flags & ACCUMULATE) != 0u) {
        g = g + c4[at];
    }
    if ((u.flags & SGD_STEP) != 0u) {
        g = c4[at] - hyper.lr * v;
    }
    c4[at] = g;
}

// The bias gradient of rows i..i+3 (BIAS_GRAD), overwriting or accumulating like C.
fn bias_grad4(i: u32, sum: vec4<f32>) {
    if (i >= u.m) {
        return;
    }
    let at = (u.bias_off + i) / 4u;
    var v = sum;
    if ((u.flags & ACCUMULATE) != 0u) {
        v = v + c4[at];
    }
    if ((u.flags & SGD_STEP) != 0u) {
        v = c4[at] - hyper.lr * sum;
    }
    c4[at] = v;
}
