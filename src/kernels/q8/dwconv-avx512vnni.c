/* kernels/q8: AVX512-VNNI depthwise convolution, channels one after another
 * with the geometry set up once (oq_q8_dwconv_channels takes it first; it
 * declines kernels over 8 wide, x strides other than 1 and 2, x dilation and
 * weights that leave s8). The input stays u8 and the weights minus their zero
 * point s8, so four taps of a kernel row are one vpdpbusd. Output strips of 16
 * (quads cut from a 64-byte row load by vpermd + vpshufb), 32 (x stride 2) or
 * 64 (x stride 1) outputs (quads straight from row loads at dword offsets),
 * and small planes read as one long row; 3-row kernels keep each input row's
 * quads while the output rows that read it pass. Columns and rows outside the
 * image read as the zero point. Exact: the sum of x*w over every tap minus
 * zp*sum(w) is the reference's sum of (x - zp)*w over in-image taps, in
 * wrapping int32, and the output stage is the reference's rule. */
#include "kernels/q8/q8.h"

#include <immintrin.h>

/* The output stage's constants, kept in registers: loaded through p they would
 * be reloaded after every store (a byte store may alias p). */
typedef struct out_stage {
    __m512 scale, lo, hi;
    __m512i zp, lo16, zp16;
} out_stage;

static inline __attribute__((always_inline)) out_stage out_stage_of(const oq_q8_dw_params *p, float scale)
{
    return (out_stage){_mm512_set1_ps(scale),         _mm512_set1_ps(p->range.lo),
                       _mm512_set1_ps(p->range.hi),   _mm512_set1_epi32(p->range.zp),
                       _mm512_set1_epi16((short)(int32_t)p->range.lo), _mm512_set1_epi16((short)p->range.zp)};
}

/* The u8/s8 output stage of 16 accumulators in two halves, so that the half
 * after the packs works on 32 lanes at once: acc * scale clamped above in fp32
 * and rounded half to even (cvtps2dq, MXCSR default); then, packed to int16
 * (saturating), clamped below and offset by the zero point. The same as the
 * reference's clamp, round, add: lo and hi are integers and rounding is
 * monotonic, so clamping below after rounding changes nothing, and a value
 * below lo (even one cvtps2dq turns into INT_MIN) saturates to lo either way. */
static inline __attribute__((always_inline)) __m512i scaled(out_stage o, __m512i acc)
{
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), o.scale), o.hi));
}

static inline __attribute__((always_inline)) __m512i to16(out_stage o, __m512i a, __m512i b)
{
    return _mm512_add_epi16(_mm512_max_epi16(_mm512_packs_epi32(a, b), o.lo16), o.zp16);
}

/* in [qmin, qmax]: the byte packs cannot saturate */
static inline __attribute__((always_inline)) __m512i to8(oq_q8_out out, __m512i lo, __m512i hi)
{
    return out == OQ_Q8_OUT_U8 ? _mm512_packus_epi16(lo, hi) : _mm512_packs_epi16(lo, hi);
}

static inline __attribute__((always_inline)) void store16(out_stage o, oq_q8_out out, __m512i v, void *y, __mmask16 m)
{
    if (out == OQ_Q8_OUT_I32) {
        _mm512_mask_storeu_epi32(y, m, v);
        return;
    }
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), o.scale);
    if (out == OQ_Q8_OUT_F32) {
        _mm512_mask_storeu_ps(y, m, f);
        return;
    }
    f = _mm512_min_ps(_mm512_max_ps(f, o.lo), o.hi);
    /* cvtps2dq rounds half to even (MXCSR default), as nearbyintf in the reference */
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), o.zp);
    _mm_mask_storeu_epi8(y, m, _mm512_cvtepi32_epi8(q));
}

enum { MAX_ROWS = 64 }; /* kernel rows this path takes */

/* What the kernels share: the geometry, the s8 weight quads of each kernel row
 * and the shuffles that cut quads out of a row's 64-byte window. */
typedef struct plane_ctx {
    const oq_q8_dw_params *p;
    const uint8_t *x;
    size_t ih, iw, oh, ow, kh, sy, dy, py, px, sx, nq;
    ptrdiff_t span; /* window bytes a strip reads: 15 * sx + kw */
    bool fill_zero; /* the byte outside the image, as loaded, is 0 */
    __m512i perm, sh0, sh1, flip, fill, pad;
    int32_t init; /* bias - zp * (sum of every weight) */
    float scale;
    int32_t wq[2][MAX_ROWS]; /* quad q of kernel row ky: wq[q][ky] */
} plane_ctx;

/* The constants of the strip loops, copied out of the context into locals the
 * compiler keeps in registers. */
typedef struct strip_regs {
    const uint8_t *x;
    size_t ih, iw;
    /* x is s8; the strip has columns outside the row whose fill is not 0
     * (a zero fill is what a zero-masked load gives anyway) */
    bool flip_on, edge;
    __m512i perm, flip, fill, pad;
} strip_regs;

static inline __attribute__((always_inline)) strip_regs strip_regs_of(const plane_ctx *k, bool edge)
{
    return (strip_regs){k->x, k->ih, k->iw, k->p->x_signed, edge && !k->fill_zero, k->perm, k->flip, k->fill, k->pad};
}

/* The 16 windows of input row iy (the zero point outside the image) that the
 * taps 4q..4q+3 of a strip's 16 outputs read, before the quad shuffle. */
static inline __attribute__((always_inline)) __m512i row_window(strip_regs r, size_t iy, ptrdiff_t c, __mmask64 lm)
{
    if (iy >= r.ih)
        return r.pad;
    /* masked lanes are not read: the window may start before the row */
    const void *at = (const void *)((uintptr_t)(r.x + iy * r.iw) + (uintptr_t)c);
    /* a zero-masked load is a plain load; merging the zero point in costs a
     * vector uop, paid only by the strips at the row's ends */
    __m512i v = r.edge ? _mm512_mask_loadu_epi8(r.fill, lm, at) : _mm512_maskz_loadu_epi8(lm, at);
    if (r.flip_on)
        v = _mm512_xor_si512(v, r.flip);
    return _mm512_permutexvar_epi32(r.perm, v);
}

/* Output strip [ox0, ox0 + 16) of every row, any kernel height and y stride. */
static inline __attribute__((always_inline)) void strip_any(const plane_ctx *k, size_t ox0, ptrdiff_t c, __mmask64 lm,
                                                            bool edge, __mmask16 om, oq_q8_out out, void *y, size_t esize)
{
    const strip_regs r = strip_regs_of(k, edge);
    const out_stage o = out_stage_of(k->p, k->scale);
    const __m512i sh0 = k->sh0, sh1 = k->sh1, init = _mm512_set1_epi32(k->init);
    size_t oh = k->oh, ow = k->ow, kh = k->kh, sy = k->sy, dy = k->dy, py = k->py, nq = k->nq;
    for (size_t oy = 0; oy < oh; oy++) {
        __m512i acc = init;
        for (size_t ky = 0; ky < kh; ky++) {
            __m512i v = row_window(r, oy * sy + ky * dy - py, c, lm);
            acc = _mm512_dpbusd_epi32(acc, _mm512_shuffle_epi8(v, sh0), _mm512_set1_epi32(k->wq[0][ky]));
            if (nq > 1)
                acc = _mm512_dpbusd_epi32(acc, _mm512_shuffle_epi8(v, sh1), _mm512_set1_epi32(k->wq[1][ky]));
        }
        store16(o, out, acc, (uint8_t *)y + (oy * ow + ox0) * esize, om);
    }
}

/* The same for 3 kernel rows (dilation 1), at most 4 columns, y stride 1 or 2:
 * an input row's quads are cut once and kept while the output rows that read
 * it pass. */
static inline __attribute__((always_inline)) void strip_3rows(const plane_ctx *k, size_t ox0, ptrdiff_t c, __mmask64 lm,
                                                              bool edge, __mmask16 om, oq_q8_out out, size_t sy,
                                                              void *y, size_t esize)
{
    const strip_regs r = strip_regs_of(k, edge);
    const out_stage o = out_stage_of(k->p, k->scale);
    const __m512i sh = k->sh0;
    const __m512i w0 = _mm512_set1_epi32(k->wq[0][0]), w1 = _mm512_set1_epi32(k->wq[0][1]),
                  w2 = _mm512_set1_epi32(k->wq[0][2]), init = _mm512_set1_epi32(k->init);
    size_t oh = k->oh, ystep = k->ow * esize;
    size_t iy = 0 - k->py; /* first input row of the current output row */
    __m512i q0 = _mm512_shuffle_epi8(row_window(r, iy, c, lm), sh);
    __m512i q1 = _mm512_shuffle_epi8(row_window(r, iy + 1, c, lm), sh);
    uint8_t *yo = (uint8_t *)y + ox0 * esize;
    for (size_t oy = 0; oy < oh; oy++, iy += sy, yo += ystep) {
        __m512i q2 = _mm512_shuffle_epi8(row_window(r, iy + 2, c, lm), sh);
        __m512i acc = _mm512_dpbusd_epi32(init, q0, w0);
        acc = _mm512_dpbusd_epi32(acc, q1, w1);
        acc = _mm512_dpbusd_epi32(acc, q2, w2);
        store16(o, out, acc, yo, om);
        if (sy == 1) {
            q0 = q1;
            q1 = q2;
        } else {
            q0 = q2;
            q1 = _mm512_shuffle_epi8(row_window(r, iy + 3, c, lm), sh);
        }
    }
}

/* Bytes [lo, hi) of a 64-byte window starting at input column c that lie
 * inside the row. */
static inline __attribute__((always_inline)) __mmask64 row_mask(ptrdiff_t c, ptrdiff_t iw)
{
    ptrdiff_t lo = c < 0 ? -c : 0, hi = iw - c;
    hi = hi < 64 ? hi : 64;
    if (hi <= lo)
        return 0;
    return (hi == 64 ? ~(__mmask64)0 : ((__mmask64)1 << hi) - 1) & ~(((__mmask64)1 << lo) - 1);
}

/* Input row iy's 64 bytes from column c as they are: the quad of an output
 * whose first tap is byte 4i is dword i, no shuffle needed. */
static inline __attribute__((always_inline)) __m512i row_bytes(strip_regs r, size_t iy, ptrdiff_t c, __mmask64 lm)
{
    if (iy >= r.ih)
        return r.pad;
    const void *at = (const void *)((uintptr_t)(r.x + iy * r.iw) + (uintptr_t)c);
    __m512i v = lm == ~(__mmask64)0 ? _mm512_loadu_si512(at)
                : r.edge                ? _mm512_mask_loadu_epi8(r.fill, lm, at)
                                        : _mm512_maskz_loadu_epi8(lm, at);
    return r.flip_on ? _mm512_xor_si512(v, r.flip) : v;
}

/* 32 outputs [ox0, ox0 + 32) of every row at x stride 2, 3 kernel rows of at
 * most 4 taps, u8/s8 out: the even outputs' quads are the dwords of the row
 * from column 2*ox0 - pad, the odd ones' those from 2 columns on, so two loads
 * give 32 outputs' quads without a shuffle; the two halves are interleaved
 * when packed to bytes. */
static inline __attribute__((always_inline)) void strip_3rows_x2(const plane_ctx *k, size_t ox0, oq_q8_out out,
                                                                 size_t sy, void *y)
{
    const strip_regs r = strip_regs_of(k, true);
    const out_stage o = out_stage_of(k->p, k->scale);
    const __m512i w0 = _mm512_set1_epi32(k->wq[0][0]), w1 = _mm512_set1_epi32(k->wq[0][1]),
                  w2 = _mm512_set1_epi32(k->wq[0][2]), init = _mm512_set1_epi32(k->init);
    /* packed lane l holds outputs 8l + (0 2 4 6 1 3 5 7), twice */
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15));
    const __m512i lanes = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    ptrdiff_t c = (ptrdiff_t)(2 * ox0) - (ptrdiff_t)k->px;
    __mmask64 me = row_mask(c, (ptrdiff_t)r.iw), mo = row_mask(c + 2, (ptrdiff_t)r.iw);
    size_t n = k->ow - ox0 < 32 ? k->ow - ox0 : 32;
    __mmask32 om = n == 32 ? ~(__mmask32)0 : ((__mmask32)1 << n) - 1;
    size_t oh = k->oh, ystep = k->ow;
    size_t iy = 0 - k->py;
    __m512i e0 = row_bytes(r, iy, c, me), o0 = row_bytes(r, iy, c + 2, mo);
    __m512i e1 = row_bytes(r, iy + 1, c, me), o1 = row_bytes(r, iy + 1, c + 2, mo);
    uint8_t *yo = (uint8_t *)y + ox0;
    for (size_t oy = 0; oy < oh; oy++, iy += sy, yo += ystep) {
        __m512i e2 = row_bytes(r, iy + 2, c, me), o2 = row_bytes(r, iy + 2, c + 2, mo);
        __m512i ae = _mm512_dpbusd_epi32(init, e0, w0), ao = _mm512_dpbusd_epi32(init, o0, w0);
        ae = _mm512_dpbusd_epi32(ae, e1, w1);
        ao = _mm512_dpbusd_epi32(ao, o1, w1);
        ae = _mm512_dpbusd_epi32(ae, e2, w2);
        ao = _mm512_dpbusd_epi32(ao, o2, w2);
        __m512i w16 = to16(o, scaled(o, ae), scaled(o, ao));
        __m512i b = to8(out, w16, w16);
        b = _mm512_permutexvar_epi64(lanes, _mm512_shuffle_epi8(b, order));
        _mm256_mask_storeu_epi8(yo, om, _mm512_castsi512_si256(b));
        if (sy == 1) {
            e0 = e1, o0 = o1;
            e1 = e2, o1 = o2;
        } else {
            e0 = e2, o0 = o2;
            e1 = row_bytes(r, iy + 3, c, me), o1 = row_bytes(r, iy + 3, c + 2, mo);
        }
    }
}

/* 64 outputs [ox0, ox0 + 64) of every row at x stride 1, 3 kernel rows of at
 * most 4 taps, u8/s8 out: the quads of outputs 4i + f are the dwords of the
 * row loaded from column ox0 - pad + f, so four loads give 64 outputs' quads
 * without a shuffle; packing to bytes puts each 16 outputs in one lane, in
 * an order one in-lane shuffle fixes. */
static inline __attribute__((always_inline)) void strip_3rows_x1(const plane_ctx *k, size_t ox0, oq_q8_out out,
                                                                 size_t sy, void *y)
{
    const strip_regs r = strip_regs_of(k, true);
    const out_stage o = out_stage_of(k->p, k->scale);
    const __m512i w0 = _mm512_set1_epi32(k->wq[0][0]), w1 = _mm512_set1_epi32(k->wq[0][1]),
                  w2 = _mm512_set1_epi32(k->wq[0][2]), init = _mm512_set1_epi32(k->init);
    /* packed lane l holds outputs 16l + (0 4 8 12 1 5 9 13 2 6 10 14 3 7 11 15) */
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    ptrdiff_t c = (ptrdiff_t)ox0 - (ptrdiff_t)k->px;
    __mmask64 m[4];
    _Pragma("GCC unroll 4") for (int f = 0; f < 4; f++)
        m[f] = row_mask(c + f, (ptrdiff_t)r.iw);
    size_t n = k->ow - ox0 < 64 ? k->ow - ox0 : 64;
    __mmask64 om = n == 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
    size_t oh = k->oh, ystep = k->ow;
    size_t iy = 0 - k->py;
    __m512i a[4], b[4];
    _Pragma("GCC unroll 4") for (int f = 0; f < 4; f++) {
        a[f] = row_bytes(r, iy, c + f, m[f]);
        b[f] = row_bytes(r, iy + 1, c + f, m[f]);
    }
    uint8_t *yo = (uint8_t *)y + ox0;
    for (size_t oy = 0; oy < oh; oy++, iy += sy, yo += ystep) {
        __m512i q[4];
        _Pragma("GCC unroll 4") for (int f = 0; f < 4; f++) {
            __m512i d = row_bytes(r, iy + 2, c + f, m[f]);
            __m512i acc = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, a[f], w0), b[f], w1), d, w2);
            q[f] = scaled(o, acc);
            if (sy == 1) {
                a[f] = b[f];
                b[f] = d;
            } else {
                a[f] = d;
                b[f] = row_bytes(r, iy + 3, c + f, m[f]);
            }
        }
        __m512i bytes = to8(out, to16(o, q[0], q[1]), to16(o, q[2], q[3]));
        _mm512_mask_storeu_epi8(yo, om, _mm512_shuffle_epi8(bytes, order));
    }
}

/* Every strip of the plane, the output type a constant. */
static inline __attribute__((always_inline)) void plane_strips(const plane_ctx *k, oq_q8_out out, void *y)
{
    size_t esize = out == OQ_Q8_OUT_U8 || out == OQ_Q8_OUT_S8 ? 1 : 4;
    bool three = k->kh == 3 && k->dy == 1 && k->nq == 1 && (k->sy == 1 || k->sy == 2);
    bool x2 = three && k->sx == 2 && (out == OQ_Q8_OUT_U8 || out == OQ_Q8_OUT_S8);
    bool x1 = three && k->sx == 1 && (out == OQ_Q8_OUT_U8 || out == OQ_Q8_OUT_S8);
    for (size_t ox0 = 0; ox0 < k->ow; ox0 += 16) {
        if (x1 && k->ow - ox0 > 32) { /* narrower, 16-wide strips waste fewer lanes */
            if (k->sy == 1)
                strip_3rows_x1(k, ox0, out, 1, y);
            else
                strip_3rows_x1(k, ox0, out, 2, y);
            ox0 += 48;
            continue;
        }
        if (x2 && k->ow - ox0 > 16) {
            if (k->sy == 1)
                strip_3rows_x2(k, ox0, out, 1, y);
            else
                strip_3rows_x2(k, ox0, out, 2, y);
            ox0 += 16;
            continue;
        }
        size_t n = k->ow - ox0 < 16 ? k->ow - ox0 : 16;
        __mmask16 om = (__mmask16)((1u << n) - 1);
        /* input column of window byte 0, and the bytes inside the row */
        ptrdiff_t c = (ptrdiff_t)(ox0 * k->sx) - (ptrdiff_t)k->px;
        ptrdiff_t lo = c < 0 ? -c : 0, hi = (ptrdiff_t)k->iw - c;
        hi = hi < k->span ? hi : k->span;
        bool edge = lo > 0 || hi < k->span;
        __mmask64 lm = hi <= lo ? 0 : (hi == 64 ? ~(__mmask64)0 : ((__mmask64)1 << hi) - 1) & ~(((__mmask64)1 << lo) - 1);
        if (three && k->sy == 1)
            strip_3rows(k, ox0, c, lm, edge, om, out, 1, y, esize);
        else if (three)
            strip_3rows(k, ox0, c, lm, edge, om, out, 2, y, esize);
        else
            strip_any(k, ox0, c, lm, edge, om, out, y, esize);
    }
}

/* Kernel row quads of one channel's weights (w_zp subtracted) and their sum
 * into k; false when a weight does not fit s8. */
static inline __attribute__((always_inline)) bool prep_weights(plane_ctx *k, const void *w, int32_t w_zp, size_t kw,
                                                               uint32_t *wsum_out)
{
    const oq_q8_dw_params *p = k->p;
    size_t kh = k->kh;
    uint32_t wsum = 0;
    if (kh <= 4 && kw <= 4 && w_zp >= -32768 && w_zp <= 32767) {
        /* up to 16 taps in one vector: minus the zero point in int16, checked,
         * narrowed to s8 and spread into one quad per kernel row */
        static const uint8_t spread[4][16] = {
            {0, 128, 128, 128, 1, 128, 128, 128, 2, 128, 128, 128, 3, 128, 128, 128},
            {0, 1, 128, 128, 2, 3, 128, 128, 4, 5, 128, 128, 6, 7, 128, 128},
            {0, 1, 2, 128, 3, 4, 5, 128, 6, 7, 8, 128, 9, 10, 11, 128},
            {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
        __mmask16 m = (__mmask16)((1u << (kh * kw)) - 1);
        __m128i raw = _mm_maskz_loadu_epi8(m, w);
        __m256i w16 = p->w_signed ? _mm256_cvtepi8_epi16(raw) : _mm256_cvtepu8_epi16(raw);
        w16 = _mm256_maskz_sub_epi16(m, w16, _mm256_set1_epi16((short)w_zp));
        if (_mm256_cmpgt_epi16_mask(w16, _mm256_set1_epi16(127)) | _mm256_cmplt_epi16_mask(w16, _mm256_set1_epi16(-128)))
            return false;
        __m128i b = _mm256_cvtepi16_epi8(w16);
        /* sum of the s8 values: psadbw of value + 128, less 128 per byte */
        __m128i sad = _mm_sad_epu8(_mm_xor_si128(b, _mm_set1_epi8((char)0x80)), _mm_setzero_si128());
        wsum = (uint32_t)(_mm_cvtsi128_si32(sad) + _mm_extract_epi32(sad, 2)) - 128u * 16;
        _mm_storeu_si128((__m128i *)k->wq[0], _mm_shuffle_epi8(b, _mm_loadu_si128((const __m128i *)spread[kw - 1])));
    } else {
        const int8_t *ws = w;
        const uint8_t *wu = w;
        for (size_t ky = 0; ky < kh; ky++) {
            uint64_t q = 0; /* in a register: byte stores then a wide load would stall */
            for (size_t kx = 0; kx < kw; kx++) {
                size_t t = ky * kw + kx;
                int32_t v = (p->w_signed ? (int32_t)ws[t] : (int32_t)wu[t]) - w_zp;
                if (v < -128 || v > 127)
                    return false;
                q |= (uint64_t)(uint8_t)v << 8 * kx;
                wsum += (uint32_t)v;
            }
            k->wq[0][ky] = (int32_t)(uint32_t)q;
            k->wq[1][ky] = (int32_t)(uint32_t)(q >> 32);
        }
    }
    *wsum_out = wsum;
    return true;
}

/* Small planes at stride 1 with "same" padding (out = in, as MobileNet's 7x7
 * and 14x14): the plane read as one long row. Output j's tap (ky, kx) is input
 * j + (ky - py)*iw + kx - px; a tap in another row's end or outside the plane
 * is masked out of the load, and with a fill of 0 as loaded it reads as the
 * zero point. 64 outputs at a time, from kh x 4 loads one column apart as in
 * strip_3rows_x1: no 16-wide strip per 7-wide row, no per-row setup. Only up
 * to 64 outputs (7x7, 8x8): the byte-masked loads cost a vector uop each, so
 * a 14x14 plane gains nothing over its 14 row strips, which keep each row's
 * quads. */
enum { FLAT_GROUPS = 1, FLAT_ROWS = 7 };
typedef struct flat_plan {
    size_t groups, n;
    ptrdiff_t off[FLAT_ROWS];                 /* (ky - py)*iw - px */
    __mmask64 m[FLAT_GROUPS][FLAT_ROWS][4]; /* per group, kernel row, column offset */
} flat_plan;

static bool flat_plan_make(const plane_ctx *k, size_t kw, flat_plan *f)
{
    size_t n = k->oh * k->ow, iw = k->iw, px = k->px;
    if (k->sx != 1 || k->sy != 1 || k->dy != 1 || k->nq != 1 || k->kh > FLAT_ROWS || k->ow != iw || k->oh != k->ih ||
        !k->fill_zero || n > 64 * FLAT_GROUPS)
        return false;
    f->groups = (n + 63) / 64;
    f->n = n;
    for (size_t ky = 0; ky < k->kh; ky++)
        f->off[ky] = ((ptrdiff_t)ky - (ptrdiff_t)k->py) * (ptrdiff_t)iw - (ptrdiff_t)px;
    for (size_t g = 0; g < f->groups; g++)
        for (size_t fo = 0; fo < 4; fo++) {
            /* taps inside the output's row: byte 4i + b of the load is tap b of output 64g + 4i + fo */
            __mmask64 col = 0;
            for (size_t i = 0; i < 16; i++) {
                size_t ox = (64 * g + 4 * i + fo) % iw;
                for (size_t b = 0; b < kw; b++)
                    if (ox + b >= px && ox + b - px < iw)
                        col |= (__mmask64)1 << (4 * i + b);
            }
            for (size_t ky = 0; ky < k->kh; ky++)
                f->m[g][ky][fo] = col & row_mask((ptrdiff_t)(64 * g + fo) + f->off[ky], (ptrdiff_t)n);
        }
    return true;
}

static inline __attribute__((always_inline)) void flat_plane(const plane_ctx *k, const flat_plan *f, oq_q8_out out,
                                                             size_t kh, bool flip_on, void *y)
{
    const out_stage o = out_stage_of(k->p, k->scale);
    const __m512i init = _mm512_set1_epi32(k->init), flip = k->flip;
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    for (size_t g = 0; g < f->groups; g++) {
        __m512i acc[4] = {init, init, init, init};
        for (size_t ky = 0; ky < kh; ky++) {
            const __m512i wv = _mm512_set1_epi32(k->wq[0][ky]);
            /* masked lanes are not read: the load may start before the plane */
            uintptr_t at = (uintptr_t)k->x + (uintptr_t)(ptrdiff_t)(64 * g) + (uintptr_t)f->off[ky];
            _Pragma("GCC unroll 4") for (size_t fo = 0; fo < 4; fo++) {
                __m512i v = _mm512_maskz_loadu_epi8(f->m[g][ky][fo], (const void *)(at + fo));
                if (flip_on)
                    v = _mm512_xor_si512(v, flip);
                acc[fo] = _mm512_dpbusd_epi32(acc[fo], v, wv);
            }
        }
        __m512i q[4];
        _Pragma("GCC unroll 4") for (size_t fo = 0; fo < 4; fo++) {
            q[fo] = scaled(o, acc[fo]);
        }
        __m512i bytes = to8(out, to16(o, q[0], q[1]), to16(o, q[2], q[3]));
        size_t left = f->n - 64 * g;
        __mmask64 om = left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
        _mm512_mask_storeu_epi8((uint8_t *)y + 64 * g, om, _mm512_shuffle_epi8(bytes, order));
    }
}

/* flat_plane with the kernel height and the input sign constants */
static inline __attribute__((always_inline)) void flat_any(const plane_ctx *k, const flat_plan *f, oq_q8_out out, void *y)
{
    bool flip_on = k->p->x_signed;
    if (k->kh == 3 && !flip_on)
        flat_plane(k, f, out, 3, false, y);
    else if (k->kh == 3)
        flat_plane(k, f, out, 3, true, y);
    else
        flat_plane(k, f, out, k->kh, flip_on, y);
}

/* The channels one after another, the output type a constant. */
static inline __attribute__((always_inline)) size_t planes_loop(plane_ctx *k, const oq_q8_dw_channels *ch, const void *x,
                                                                const void *w, void *y, size_t kw, int32_t zpu,
                                                                oq_q8_out out)
{
    const oq_q8_dw_params *p = k->p;
    size_t in_plane = k->ih * k->iw, out_bytes = k->oh * k->ow * (out == OQ_Q8_OUT_U8 || out == OQ_Q8_OUT_S8 ? 1 : 4);
    size_t ksize = k->kh * kw;
    flat_plan fp;
    bool flat = (out == OQ_Q8_OUT_U8 || out == OQ_Q8_OUT_S8) && flat_plan_make(k, kw, &fp);
    for (size_t i = 0; i < ch->count; i++) {
        uint32_t wsum;
        if (!prep_weights(k, (const uint8_t *)w + i * ksize, ch->w_zp ? ch->w_zp[i] : p->w_zp, kw, &wsum))
            return i;
        /* rows outside the image read as the zero point too, so every output
         * subtracts the same zp * (sum of all weights) */
        k->init = (int32_t)((uint32_t)(ch->bias ? ch->bias[i] : p->bias) - (uint32_t)zpu * wsum);
        k->scale = ch->scale ? ch->scale[i] : p->scale;
        k->x = (const uint8_t *)x + i * in_plane;
        if (flat)
            flat_any(k, &fp, out, (uint8_t *)y + i * out_bytes);
        else
            plane_strips(k, out, (uint8_t *)y + i * out_bytes);
    }
    return ch->count;
}

OQ_Q8_DW_PLANES_FUNCTION(oq_q8_dw_planes__avx512vnni)
{
    const oq_q8_conv_geom *g = p->g;
    size_t kh = g->kernel[1], kw = g->kernel[2], sx = g->stride[2];
    int32_t zpu = p->x_zp + (p->x_signed ? 128 : 0);
    if (kw > 8 || kh > MAX_ROWS || (sx != 1 && sx != 2) || g->dilation[2] != 1 || zpu < 0 || zpu > 255 ||
        !g->out[1] || !g->out[2])
        return 0;
    /* field by field: an initializer would clear all of wq */
    plane_ctx k;
    k.p = p;
    k.ih = g->in[1], k.iw = g->in[2], k.oh = g->out[1], k.ow = g->out[2], k.kh = kh;
    k.sy = g->stride[1], k.dy = g->dilation[1], k.py = g->pad[1], k.px = g->pad[2], k.sx = sx, k.nq = (kw + 3) / 4;
    k.span = (ptrdiff_t)(15 * sx + kw);
    /* lane j/4 gets the 16 input bytes from its first output's first tap, then
     * byte (j%4 * sx + 4q + b) of them is tap 4q + b of output j */
    k.perm = sx == 1 ? _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6)
                     : _mm512_setr_epi32(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9);
    k.sh0 = _mm512_broadcast_i32x4(sx == 1 ? _mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6)
                                           : _mm_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9));
    k.sh1 = _mm512_add_epi8(k.sh0, _mm512_set1_epi8(4));
    uint8_t flip = p->x_signed ? 0x80 : 0;
    k.flip = _mm512_set1_epi8((char)flip);
    k.fill = _mm512_set1_epi8((char)(zpu ^ flip));
    k.fill_zero = (zpu ^ flip) == 0;
    k.pad = _mm512_set1_epi8((char)zpu);
    switch (p->out) {
    case OQ_Q8_OUT_U8: return planes_loop(&k, ch, x, w, y, kw, zpu, OQ_Q8_OUT_U8);
    case OQ_Q8_OUT_S8: return planes_loop(&k, ch, x, w, y, kw, zpu, OQ_Q8_OUT_S8);
    case OQ_Q8_OUT_F32: return planes_loop(&k, ch, x, w, y, kw, zpu, OQ_Q8_OUT_F32);
    default: return planes_loop(&k, ch, x, w, y, kw, zpu, OQ_Q8_OUT_I32);
    }
}
