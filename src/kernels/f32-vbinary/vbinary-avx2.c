/* kernels/f32-vbinary: AVX2 build of vbinary.inc (flags from the file name). */
#define OQ_VBINARY_ISA avx2
#include "kernels/f32-vbinary/vbinary.inc"
