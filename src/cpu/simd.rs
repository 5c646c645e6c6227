//! Kernels compiled twice: for the baseline x86-64 the crate is built for, and for AVX2 with
//! FMA, picked at run time (as `gemm` does for its own kernels). Written as plain loops over
//! fixed-size blocks, which LLVM turns into 8-wide FMAs in the AVX2 build.

/// Runs a body compiled with AVX2 and FMA when the CPU has them (LLVM then keeps a block in
/// eight 8-wide registers and fuses the multiply-adds), else compiled for the baseline.
macro_rules! dispatch {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features the function was compiled for are present.
            return unsafe { $body::avx2($($arg),*) };
        }
        $body::<false>($($arg),*)
    }};
}
pub(crate) use dispatch;

/// Defines a kernel body generic over FMA, and beside it (in a module of the same name) its
/// build for AVX2 and FMA, which [`dispatch`] picks at run time.
macro_rules! simd_body {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[inline(always)]
        fn $name<const FMA: bool>($($a: $t),*) $body

        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            pub(super) fn avx2($($a: $t),*) {
                super::$name::<true>($($a),*)
            }
        }
    };
}
pub(crate) use simd_body;

/// a·b + c, fused where the CPU has FMA (without it `mul_add` is a slow library call).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}
