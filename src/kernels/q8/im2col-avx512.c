/* kernels/q8: AVX-512 interleave of four im2col rows into c4 panels of 32
 * columns (the VNNI and AMX kernels' B layout), 64 columns per step: bytes
 * interleaved within 128-bit lanes as the SSE2 loop does, then a 4x4 transpose
 * of the lanes puts each run of 16 columns (64 bytes) in one register. */
#include "kernels/q8/q8.h"

#include <immintrin.h>

size_t oq_q8_interleave4_nr32__avx512(const uint8_t *const r[4], size_t cw, uint8_t x, uint8_t *dst, size_t k4)
{
    const __m512i vx = _mm512_set1_epi8((char)x);
    size_t j = 0;
    for (; j + 64 <= cw; j += 64) {
        __m512i r0 = _mm512_xor_si512(_mm512_loadu_si512(r[0] + j), vx);
        __m512i r1 = _mm512_xor_si512(_mm512_loadu_si512(r[1] + j), vx);
        __m512i r2 = _mm512_xor_si512(_mm512_loadu_si512(r[2] + j), vx);
        __m512i r3 = _mm512_xor_si512(_mm512_loadu_si512(r[3] + j), vx);
        __m512i a = _mm512_unpacklo_epi8(r0, r1), b = _mm512_unpackhi_epi8(r0, r1);
        __m512i c = _mm512_unpacklo_epi8(r2, r3), d = _mm512_unpackhi_epi8(r2, r3);
        /* lane L of o0..o3: columns 16L+0..3, 4..7, 8..11, 12..15 */
        __m512i o0 = _mm512_unpacklo_epi16(a, c), o1 = _mm512_unpackhi_epi16(a, c);
        __m512i o2 = _mm512_unpacklo_epi16(b, d), o3 = _mm512_unpackhi_epi16(b, d);
        __m512i t0 = _mm512_shuffle_i64x2(o0, o1, 0x44), t1 = _mm512_shuffle_i64x2(o0, o1, 0xEE);
        __m512i t2 = _mm512_shuffle_i64x2(o2, o3, 0x44), t3 = _mm512_shuffle_i64x2(o2, o3, 0xEE);
        /* t0 = o0.L0 o0.L1 o1.L0 o1.L1, t2 = o2.L0 o2.L1 o3.L0 o3.L1: lanes 0,2 of (t0, t2) are columns 0..15 */
        __m512i c0 = _mm512_shuffle_i64x2(t0, t2, 0x88), c1 = _mm512_shuffle_i64x2(t0, t2, 0xDD);
        __m512i c2 = _mm512_shuffle_i64x2(t1, t3, 0x88), c3 = _mm512_shuffle_i64x2(t1, t3, 0xDD);
        uint8_t *p0 = dst + (j / 32) * k4 * 32, *p1 = p0 + k4 * 32;
        _mm512_storeu_si512(p0, c0);      /* columns j+0..15 */
        _mm512_storeu_si512(p0 + 64, c1); /* j+16..31 */
        _mm512_storeu_si512(p1, c2);      /* j+32..47 */
        _mm512_storeu_si512(p1 + 64, c3); /* j+48..63 */
    }
    return j;
}

/* n runs of len bytes, src[r] xor x (or pad bytes where src[r] is NULL), one
 * after the other from dst: the rows of a channels-last im2col, 64 bytes a step. */
void oq_q8_copy_runs__avx512(uint8_t *dst, const uint8_t *const *src, size_t n, size_t len, uint8_t x, uint8_t pad)
{
    const __m512i vx = _mm512_set1_epi8((char)x), vp = _mm512_set1_epi8((char)pad);
    for (size_t r = 0; r < n; r++, dst += len) {
        const uint8_t *s = src[r];
        size_t i = 0;
        for (; i + 64 <= len; i += 64)
            _mm512_storeu_si512(dst + i, s ? _mm512_xor_si512(_mm512_loadu_si512(s + i), vx) : vp);
        if (i < len) {
            __mmask64 m = (__mmask64)((1ull << (len - i)) - 1); /* len - i < 64 */
            _mm512_mask_storeu_epi8(dst + i, m, s ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, s + i), vx) : vp);
        }
    }
}
