/* kernels/f32-vmath: AVX-512 build of vmath.inc (16 lanes; flags from the file name). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#define OQ_VMATH_ISA avx512
#include "kernels/f32-vmath/vmath.inc"
