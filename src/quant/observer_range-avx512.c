/* quant/observer: AVX-512 min/max of a float array for calibration (flags from the file name).
 * NaNs are skipped; an array of NaNs only gives mn > mx. */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

void quant_range_f32__avx512(const float *x, size_t n, float *mn, float *mx);

void quant_range_f32__avx512(const float *x, size_t n, float *mn, float *mx)
{
    __m512 lo0 = _mm512_set1_ps(INFINITY), hi0 = _mm512_set1_ps(-INFINITY);
    __m512 lo1 = lo0, hi1 = hi0;
    size_t i = 0;
    /* min(x, acc) returns acc when x is NaN */
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        lo0 = _mm512_min_ps(a, lo0);
        hi0 = _mm512_max_ps(a, hi0);
        lo1 = _mm512_min_ps(b, lo1);
        hi1 = _mm512_max_ps(b, hi1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_mask_loadu_ps(_mm512_set1_ps(NAN), m, x + i);
        lo0 = _mm512_min_ps(a, lo0);
        hi0 = _mm512_max_ps(a, hi0);
    }
    *mn = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
    *mx = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
}

/* Histogram bins of |x| * k, clamped to last (NaN and inf too: min(v, last) returns last
 * when v is NaN), as the scalar rule `a < last ? (int)a : last` gives them; bin 0 left out
 * and counted: the nonzero bins are packed to the front of idx (their count returned) and
 * *zeros grows by the rest. Activations after a Relu are mostly in bin 0, where the
 * increments of the scatter loop would wait on each other. The register form of
 * vpcompressd (its store to memory is slow on some cores). */
size_t quant_hist_index_nz_f32__avx512(const float *x, size_t n, float k, int last, int *idx, size_t *zeros);

size_t quant_hist_index_nz_f32__avx512(const float *x, size_t n, float k, int last, int *idx, size_t *zeros)
{
    const __m512 vk = _mm512_set1_ps(k), vl = _mm512_set1_ps((float)last);
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    size_t i = 0, out = 0, z = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_mul_ps(_mm512_and_ps(_mm512_maskz_loadu_ps(m, x + i), sign), vk);
        __m512i b = _mm512_cvttps_epi32(_mm512_min_ps(a, vl));
        __mmask16 nz = _mm512_mask_cmpneq_epi32_mask(m, b, _mm512_setzero_si512());
        unsigned c = (unsigned)__builtin_popcount((unsigned)nz);
        /* idx has room for n + 16: a full vector is stored, its tail overwritten next time */
        _mm512_storeu_si512(idx + out, _mm512_maskz_compress_epi32(nz, b));
        out += c;
        z += (size_t)__builtin_popcount((unsigned)m) - c;
    }
    *zeros += z;
    return out;
}
