/* kernels/f32-vbinary: AVX-512 build of vbinary.inc (flags from the file name). */
#define OQ_VBINARY_ISA avx512
#include "kernels/f32-vbinary/vbinary.inc"
