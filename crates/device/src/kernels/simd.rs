//! The widest vector instructions this CPU has, chosen at run time for the CPU twins' loops.
//!
//! Kiln is built for the baseline x86-64 target (SSE2), so a loop compiled as usual runs 4 lanes
//! wide. `wide_fn!` defines a function that runs an `#[inline(always)]` loop compiled inside a
//! function for AVX-512 (16 lanes) or AVX2 (8 lanes) when the CPU has them, else as usual. The
//! results are bit-identical on every path: only the lane count changes, never the arithmetic
//! (Rust does not contract `a * b + c` into a fused multiply-add, and LLVM does not reorder float
//! reductions), so machines with and without AVX-512 train the same weights.
//!
//! The loop must be `#[inline(always)]` (and so must what it calls per element: closures passed
//! in take `#[inline(always)]` too): a call that is not inlined runs the baseline code.
//!
//! `KILN_SIMD=avx2|base` (or [`set_level`]) caps the level below what the CPU has, to measure
//! or test what a machine without AVX-512 runs; it also makes the CPU matmul take the library an
//! AVX2 machine would (`super::sgemm`).

use std::sync::atomic::{AtomicU8, Ordering};

/// A vector instruction set the CPU kernels can be compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The baseline target (SSE2 on x86-64; whatever the target has elsewhere).
    Base = 1,
    /// AVX2 (8 lanes of f32).
    Avx2 = 2,
    /// AVX-512F (16 lanes of f32).
    Avx512 = 3,
}

/// The level in use, 0 until first asked.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The vector level the CPU kernels run at: the widest this CPU has, capped by `KILN_SIMD` or
/// [`set_level`].
#[inline]
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        3 => Level::Avx512,
        2 => Level::Avx2,
        1 => Level::Base,
        _ => {
            let cap = match std::env::var("KILN_SIMD").as_deref() {
                Ok("base") | Ok("sse2") => Level::Base,
                Ok("avx2") => Level::Avx2,
                _ => Level::Avx512,
            };
            set_level(cap)
        }
    }
}

/// Caps the level at `cap` (never above what the CPU has) and returns the level now in use.
pub fn set_level(cap: Level) -> Level {
    let level = detected().min(cap);
    LEVEL.store(level as u8, Ordering::Relaxed);
    level
}

/// The widest level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Base
}

/// `wide_fn!(fn NAME<F>(ARGS) where [BOUND] = INNER)` (or `wide_fn!(fn NAME(ARGS) = INNER)`):
/// `NAME` calls `INNER` (which must be `#[inline(always)]`) compiled for the [`level`] in use.
macro_rules! wide_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $inner:path) => {
        $crate::kernels::simd::wide_fn!(@def [$(#[$meta])*] [$vis] $name [] [$($arg: $ty),*] $inner);
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$f:ident>($($arg:ident: $ty:ty),* $(,)?) where [$($bound:tt)+] = $inner:path) => {
        $crate::kernels::simd::wide_fn!(@def [$(#[$meta])*] [$vis] $name [<$f: $($bound)+>] [$($arg: $ty),*] $inner);
    };
    (@def [$($meta:tt)*] [$vis:vis] $name:ident [$($gen:tt)*] [$($arg:ident: $ty:ty),*] $inner:path) => {
        $($meta)*
        $vis fn $name $($gen)* ($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512 $($gen)* ($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2 $($gen)* ($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                match $crate::kernels::simd::level() {
                    // SAFETY: `level` never exceeds what the CPU has (`detected`).
                    $crate::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::Level::Base => {}
                }
            }
            $inner($($arg),*)
        }
    };
}
pub(crate) use wide_fn;

wide_fn! {
    /// Runs `f` compiled for the [`level`] in use. `f` must be an `#[inline(always)]` closure.
    pub(crate) fn run_wide<F>(f: F) where [FnOnce()] = call
}

#[inline(always)]
fn call<F: FnOnce()>(f: F) {
    f()
}
