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
 * when v is NaN), as the scalar rule `a < last ? (int)a : last` gives them. */
void quant_hist_index_f32__avx512(const float *x, size_t n, float k, int last, int *idx);

void quant_hist_index_f32__avx512(const float *x, size_t n, float k, int last, int *idx)
{
    const __m512 vk = _mm512_set1_ps(k), vl = _mm512_set1_ps((float)last);
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_mul_ps(_mm512_and_ps(_mm512_maskz_loadu_ps(m, x + i), sign), vk);
        /* a < last keeps a (then truncates); otherwise, NaN included, last */
        __m512 c = _mm512_min_ps(a, vl);
        _mm512_mask_storeu_epi32(idx + i, m, _mm512_cvttps_epi32(c));
    }
}
