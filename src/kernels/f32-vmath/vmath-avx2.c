/* kernels/f32-vmath: AVX2+FMA build of vmath.inc (flags from the file name).
 * -std=c11 turns off multiply-add contraction; this file wants the FMAs. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#define OQ_VMATH_ISA avx2
#include "kernels/f32-vmath/vmath.inc"
