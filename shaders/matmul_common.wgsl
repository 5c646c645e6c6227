// Shared by matmul.wgsl, matmul_vec4.wgsl and matmul_tiled.wgsl (prepended when the module is
// built): the uniform block, the output bindings, and the epilogue every product ends with.
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

@group(0) @binding(0) var<storage, read_write> c: array<f32>;   // C [m, n] at c_off
@group(0) @binding(3) var<storage, read> aux: array<f32>;       // bias [n] or act [m, n], at bias_off
@group(0) @binding(4) var<uniform> u: Mm;

fn finish(i: u32, j: u32, acc: f32) {
    var v = acc;
    let f = u.flags;
    if ((f & ADD_BIAS) != 0u) {
        v = v + aux[u.bias_off + j];
    }
    let at = u.c_off + i * u.n + j;
    if ((f & ACCUMULATE) != 0u) {
        v = v + c[at];
    }
    if ((f & RELU) != 0u) {
        v = max(v, 0.0);
    } else if ((f & SIGMOID) != 0u) {
        v = 1.0 / (1.0 + exp(-v));
    } else if ((f & TANH) != 0u) {
        v = tanh(v);
    }
    if ((f & (DRELU | DSIGMOID | DTANH)) != 0u) {
        let a = aux[u.bias_off + i * u.n + j];
        if ((f & DRELU) != 0u) {
            if (a <= 0.0) {
                v = 0.0;
            }
        } else if ((f & DSIGMOID) != 0u) {
            v = v * a * (1.0 - a);
        } else {
            v = v * (1.0 - a * a);
        }
    }
    c[at] = v;
}
