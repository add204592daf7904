/* kernels/f32-gemm: AVX-512 packing of a panel from contiguous lines (a row-major
 * A, or a B read as its transpose: attention's K^T, activations of a MatMul): the
 * driver's scalar loop stores one float per load at a stride of the panel width;
 * here 16 x 16 blocks are transposed in registers and stored 16 floats at a time. */
#include "kernels/f32-gemm/gemm.h"

#include <immintrin.h>

/* r[t] lane q -> r[q] lane t */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* lane L (128 bits) of r[4g + s] = rows 4g..4g+3 at column 4L + s; two rounds of
     * 128-bit lane shuffles gather lane L of r[s], r[4+s], r[8+s], r[12+s] into r[4L + s]. */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

void oq_f32_pack_lines__avx512(const float *src, size_t ls, size_t lines, size_t kb, size_t w, float *dst)
{
    for (size_t i0 = 0; i0 < w; i0 += 16) {
        size_t width = w - i0 < 16 ? w - i0 : 16, nl = lines > i0 ? lines - i0 : 0;
        nl = nl < width ? nl : width;
        const __mmask16 wm = (__mmask16)((1u << width) - 1);
        /* A store of 16 lanes where the panel is narrower spills into the first lanes
         * of the next k rows, which their own stores write later: unmasked (masked
         * stores are slow on some CPUs) unless it would pass the panel's end. */
        const bool spill_ok = width == 16 || i0 == 0;
        for (size_t p0 = 0; p0 < kb; p0 += 16) {
            size_t np = kb - p0 < 16 ? kb - p0 : 16;
            const __mmask16 pm = (__mmask16)((1u << np) - 1);
            const float *s0 = src + i0 * ls + p0;
            __m512 r[16];
            if (np == 16) {
#pragma GCC unroll 16
                for (size_t t = 0; t < 16; t++)
                    r[t] = t < nl ? _mm512_loadu_ps(s0 + t * ls) : _mm512_setzero_ps();
            } else {
#pragma GCC unroll 16
                for (size_t t = 0; t < 16; t++)
                    r[t] = t < nl ? _mm512_maskz_loadu_ps(pm, s0 + t * ls) : _mm512_setzero_ps();
            }
            transpose16(r);
            float *d = dst + p0 * w + i0;
#pragma GCC unroll 16
            for (size_t q = 0; q < 16; q++)
                if (q < np) {
                    if (spill_ok && (p0 + q) * w + i0 + 16 <= kb * w)
                        _mm512_storeu_ps(d + q * w, r[q]);
                    else
                        _mm512_mask_storeu_ps(d + q * w, wm, r[q]);
                }
        }
    }
}
