/* kernels/q8: the im2col packer behind k x k QLinearConv/ConvInteger. Builds the
 * k rows of a column chunk one tap at a time as contiguous byte rows (row
 * segments copied from the input, padding filled with the zero point, or the
 * input plane itself when the tap reads it in order), then interleaves four rows
 * into the c4 panels the GEMM reads. Same bytes as oq_q8_im2col_pack_reference. */
#include "kernels/q8/q8.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Columns per chunk: a multiple of every nr (4, 8, 32) small enough that four
 * rows stay on the stack and in L1. */
enum { CHUNK = 256 };

static size_t roundup(size_t x, size_t m) { return (x + m - 1) / m * m; }

typedef struct tap {
    size_t ch, kz, ky, kx;
    size_t ow_lo, ow_hi; /* output columns whose input x is inside the image */
} tap;

/* Sets ow_lo/ow_hi of t from its kx. */
static void tap_bounds(const oq_q8_conv_geom *g, tap *t)
{
    /* ix = ow*s + kx*d - pad is in [0, in) for ow in [ow_lo, ow_hi) */
    size_t off = t->kx * g->dilation[2], s = g->stride[2];
    t->ow_lo = off >= g->pad[2] ? 0 : (g->pad[2] - off + s - 1) / s;
    size_t lim = g->in[2] + g->pad[2]; /* ix < in  <=>  ow*s + off < in + pad */
    t->ow_hi = lim > off ? (lim - off + s - 1) / s : 0;
    if (t->ow_hi > g->out[2])
        t->ow_hi = g->out[2];
    if (t->ow_lo > t->ow_hi)
        t->ow_lo = t->ow_hi;
}

/* The next tap in k order (kx fastest, then ky, kz, channel); bounds[kx]
 * holds the tap_bounds of each kx when the kernel is narrow enough to table. */
static inline void tap_next(const oq_q8_conv_geom *g, tap *t, const tap *bounds)
{
    if (++t->kx == g->kernel[2]) {
        t->kx = 0;
        if (++t->ky == g->kernel[1]) {
            t->ky = 0;
            if (++t->kz == g->kernel[0]) {
                t->kz = 0;
                t->ch++;
            }
        }
    }
    if (bounds) {
        t->ow_lo = bounds[t->kx].ow_lo;
        t->ow_hi = bounds[t->kx].ow_hi;
    } else
        tap_bounds(g, t);
}

/* Short runs (a 7- to 56-wide output row) dominate: overlapping fixed-size
 * moves that never touch a byte outside [0, len) beat calls and byte loops. */
static inline void copy_run(uint8_t *d, const uint8_t *s, size_t len)
{
    if (len >= 16) {
#if defined(__SSE2__)
        size_t i = 0;
        for (; i + 16 < len; i += 16)
            _mm_storeu_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
        _mm_storeu_si128((__m128i *)(d + len - 16), _mm_loadu_si128((const __m128i *)(s + len - 16)));
#else
        memcpy(d, s, len);
#endif
    } else if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + len - 8, &b, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + len - 4, &b, 4);
    } else
        for (size_t i = 0; i < len; i++)
            d[i] = s[i];
}

static inline void fill_run(uint8_t *d, uint8_t v, size_t len)
{
    if (len >= 16) {
#if defined(__SSE2__)
        const __m128i x = _mm_set1_epi8((char)v);
        size_t i = 0;
        for (; i + 16 < len; i += 16)
            _mm_storeu_si128((__m128i *)(d + i), x);
        _mm_storeu_si128((__m128i *)(d + len - 16), x);
#else
        memset(d, v, len);
#endif
    } else
        for (size_t i = 0; i < len; i++)
            d[i] = v;
}

/* Stride-s gather of n bytes s[0], s[st], ... */
static void gather_run(uint8_t *d, const uint8_t *s, size_t st, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    if (st == 2) {
        /* even bytes of 32: mask the odd ones and pack; "i + 16 < n" keeps the
         * 32-byte read inside the bytes the run covers */
        const __m128i m = _mm_set1_epi16(0x00FF);
        for (; i + 16 < n; i += 16) {
            __m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i)), m);
            __m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16)), m);
            _mm_storeu_si128((__m128i *)(d + i), _mm_packus_epi16(a, b));
        }
    }
#endif
    for (; i < n; i++)
        d[i] = s[i * st];
}

/* Position of an output column. */
typedef struct pos {
    size_t od, oh, ow;
} pos;

/* Row of tap t for the cw output columns starting at position at: returns a
 * pointer to cw bytes, either into the input (when the tap reads it in order,
 * no padding) or into buf. Padding is written as pad_raw (the zero point before
 * the xor the caller applies to the whole row). */
static const uint8_t *tap_row(const oq_q8_im2col_ctx *c, const tap *t, pos at, size_t cw, uint8_t pad_raw,
                              uint8_t *buf)
{
    const oq_q8_conv_geom *g = c->g;
    size_t plane = g->in[0] * g->in[1] * g->in[2];
    const uint8_t *xc = c->x + t->ch * plane;
    size_t od = at.od, oh = at.oh, ow = at.ow;
    size_t sx = g->stride[2], offx = t->kx * g->dilation[2] - g->pad[2]; /* wraps: used only with ow >= ow_lo */
    size_t done = 0;
    while (done < cw) {
        size_t seg = g->out[2] - ow;
        seg = seg < cw - done ? seg : cw - done;
        size_t iz = od * g->stride[0] + t->kz * g->dilation[0] - g->pad[0];
        size_t iy = oh * g->stride[1] + t->ky * g->dilation[1] - g->pad[1];
        uint8_t *d = buf + done;
        if (iz >= g->in[0] || iy >= g->in[1])
            fill_run(d, pad_raw, seg);
        else {
            const uint8_t *src = xc + (iz * g->in[1] + iy) * g->in[2];
            size_t a = ow, b = ow + seg;
            size_t lo = t->ow_lo > a ? (t->ow_lo < b ? t->ow_lo : b) : a;
            size_t hi = t->ow_hi < b ? (t->ow_hi > lo ? t->ow_hi : lo) : b;
            if (lo > a)
                fill_run(d, pad_raw, lo - a);
            if (hi > lo) {
                const uint8_t *s = src + lo * sx + offx;
                if (sx == 1) {
                    /* the whole chunk is one in-order run of the input: no copy */
                    if (seg == cw && lo == a && hi == b)
                        return s;
                    copy_run(d + (lo - a), s, hi - lo);
                } else
                    gather_run(d + (lo - a), s, sx, hi - lo);
            }
            if (b > hi)
                fill_run(d + (hi - a), pad_raw, b - hi);
        }
        done += seg;
        ow = 0;
        if (++oh == g->out[1]) {
            oh = 0;
            od++;
        }
    }
    return buf;
}

/* Interleaves rows r[0..3] (cw columns) into panels of nr columns starting at
 * column jc of dst (a panel boundary), xor-ing each byte with x; adds the column
 * sums to colsum (optional). */
static void interleave4(const uint8_t *const r[4], size_t cw, size_t nr, size_t k4, uint8_t x, uint8_t *dst,
                        int32_t *colsum)
{
    static int wide = -1; /* the AVX-512 loop: once the ISA level allows it */
    if (wide < 0)
        wide = oq_isa_level() >= OQ_ISA_AVX512;
    size_t start = 0;
    if (wide && nr == 32 && !colsum)
        start = oq_q8_interleave4_nr32__avx512(r, cw, x, dst, k4);
    for (size_t p0 = start; p0 < cw; p0 += nr) {
        uint8_t *panel = dst + (p0 / nr) * k4 * nr;
        size_t pw = cw - p0 < nr ? cw - p0 : nr, jj = 0;
#if defined(__SSE2__)
        const __m128i vx = _mm_set1_epi8((char)x), zero = _mm_setzero_si128();
        for (; jj + 16 <= pw; jj += 16) {
            size_t at = p0 + jj;
            __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r[0] + at)), vx);
            __m128i r1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r[1] + at)), vx);
            __m128i r2 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r[2] + at)), vx);
            __m128i r3 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r[3] + at)), vx);
            __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpackhi_epi8(r0, r1);
            __m128i c = _mm_unpacklo_epi8(r2, r3), d = _mm_unpackhi_epi8(r2, r3);
            __m128i *o = (__m128i *)(panel + jj * 4);
            _mm_storeu_si128(o, _mm_unpacklo_epi16(a, c));
            _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(a, c));
            _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(b, d));
            _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(b, d));
            if (colsum) {
                /* the four bytes of a column summed as u16 (at most 1020), then widened */
                __m128i lo = _mm_add_epi16(_mm_add_epi16(_mm_unpacklo_epi8(r0, zero), _mm_unpacklo_epi8(r1, zero)),
                                           _mm_add_epi16(_mm_unpacklo_epi8(r2, zero), _mm_unpacklo_epi8(r3, zero)));
                __m128i hi = _mm_add_epi16(_mm_add_epi16(_mm_unpackhi_epi8(r0, zero), _mm_unpackhi_epi8(r1, zero)),
                                           _mm_add_epi16(_mm_unpackhi_epi8(r2, zero), _mm_unpackhi_epi8(r3, zero)));
                __m128i *s = (__m128i *)(colsum + at);
                _mm_storeu_si128(s, _mm_add_epi32(_mm_loadu_si128(s), _mm_unpacklo_epi16(lo, zero)));
                _mm_storeu_si128(s + 1, _mm_add_epi32(_mm_loadu_si128(s + 1), _mm_unpackhi_epi16(lo, zero)));
                _mm_storeu_si128(s + 2, _mm_add_epi32(_mm_loadu_si128(s + 2), _mm_unpacklo_epi16(hi, zero)));
                _mm_storeu_si128(s + 3, _mm_add_epi32(_mm_loadu_si128(s + 3), _mm_unpackhi_epi16(hi, zero)));
            }
        }
#endif
        for (; jj < pw; jj++) {
            size_t at = p0 + jj;
            uint8_t b0 = r[0][at] ^ x, b1 = r[1][at] ^ x, b2 = r[2][at] ^ x, b3 = r[3][at] ^ x;
            uint8_t *o = panel + jj * 4;
            o[0] = b0;
            o[1] = b1;
            o[2] = b2;
            o[3] = b3;
            if (colsum)
                colsum[at] += (int32_t)b0 + b1 + b2 + b3;
        }
    }
}

void oq_q8_im2col_pack(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum)
{
    const oq_q8_im2col_ctx *c = ctx;
    const oq_q8_conv_geom *g = c->g;
    size_t k = g->channels * g->kernel[0] * g->kernel[1] * g->kernel[2], k4 = roundup(k, 4);
    /* four row buffers plus a row of xor-ed zeros for the k padding (which must
     * read as 0 after the xor and add nothing to the sums) */
    uint8_t buf[5][CHUNK];
    uint8_t pad_raw = c->pad ^ c->x_xor;
    memset(buf[4], c->x_xor, CHUNK);
    if (colsum)
        memset(colsum, 0, nb * sizeof *colsum);
    size_t chunk = CHUNK / nr * nr, plane = g->in[0] * g->in[1] * g->in[2], ohw = g->out[1] * g->out[2];
    bool same = g->kernel[0] * g->kernel[1] * g->kernel[2] == 1;
    for (int i = 0; i < 3; i++)
        same = same && g->stride[i] == 1 && g->pad[i] == 0 && g->in[i] == g->out[i];
    tap table[16];
    const tap *bounds = g->kernel[2] <= 16 ? table : NULL;
    for (size_t kx = 0; bounds && kx < g->kernel[2]; kx++) {
        table[kx].kx = kx;
        tap_bounds(g, &table[kx]);
    }
    for (size_t c0 = 0; c0 < nb; c0 += chunk) {
        size_t cw = nb - c0 < chunk ? nb - c0 : chunk, j = n0 + c0;
        pos at = {j / ohw, j % ohw / g->out[2], j % g->out[2]};
        uint8_t *cdst = dst + (c0 / nr) * k4 * nr;
        tap t = {0};
        tap_bounds(g, &t);
        for (size_t p = 0; p < k; p += 4) {
            const uint8_t *rows[4];
            for (size_t q = 0; q < 4; q++) {
                if (p + q >= k)
                    rows[q] = buf[4];
                else if (same) /* 1x1, stride 1, no padding: the channel plane is the row */
                    rows[q] = c->x + (p + q) * plane + j;
                else {
                    rows[q] = tap_row(c, &t, at, cw, pad_raw, buf[q]);
                    tap_next(g, &t, bounds);
                }
            }
            interleave4(rows, cw, nr, k4, c->x_xor, cdst + (p / 4) * nr * 4, colsum ? colsum + c0 : NULL);
        }
    }
    /* columns of the last panel past nb: zeros, so the kernel reads defined bytes */
    size_t tail = nb % nr;
    if (tail) {
        uint8_t *panel = dst + (nb / nr) * k4 * nr;
        for (size_t q = 0; q < k4 / 4; q++)
            memset(panel + q * nr * 4 + tail * 4, 0, (nr - tail) * 4);
    }
}

size_t oq_q8_im2col_padded_size(const oq_q8_conv_geom *g, size_t pad_bottom, size_t pad_right, size_t *wq,
                                size_t *phase_bytes)
{
    size_t hp = g->in[1] + g->pad[1] + pad_bottom, wp = g->in[2] + g->pad[2] + pad_right;
    size_t sy = g->stride[1], sx = g->stride[2], hq = (hp + sy - 1) / sy;
    *wq = (wp + sx - 1) / sx;
    /* the last tap of the last grid row reads up to (kernel-1)*dilation/stride past the phase */
    *phase_bytes = hq * *wq + (g->kernel[2] - 1) * g->dilation[2] / sx + 1;
    return g->channels * sy * sx * *phase_bytes;
}

void oq_q8_im2col_padded_fill(const oq_q8_conv_geom *g, size_t pad_bottom, size_t pad_right, const uint8_t *x,
                              uint8_t pad, uint8_t *dst)
{
    size_t wq, pb, ih = g->in[1], iw = g->in[2], top = g->pad[1], left = g->pad[2];
    size_t sy = g->stride[1], sx = g->stride[2];
    oq_q8_im2col_padded_size(g, pad_bottom, pad_right, &wq, &pb);
    size_t hq = (pb - (g->kernel[2] - 1) * g->dilation[2] / sx - 1) / wq;
    if (sy == 1 && sx == 1) {
        /* one phase: the padded plane, borders written around row copies */
        for (size_t c = 0; c < g->channels; c++) {
            uint8_t *d = dst + c * pb;
            const uint8_t *s = x + c * ih * iw;
            fill_run(d, pad, top * wq + left);
            for (size_t y = 0; y < ih; y++) {
                uint8_t *row = d + (top + y) * wq + left;
                copy_run(row, s + y * iw, iw);
                /* right border of this row and left border of the next, together */
                fill_run(row + iw, pad, y + 1 < ih ? pad_right + left : 0);
            }
            size_t used = (top + ih) * wq - pad_right;
            fill_run(d + used, pad, pb - used);
        }
        return;
    }
    for (size_t c = 0; c < g->channels; c++)
        for (size_t py = 0; py < sy; py++)
            for (size_t px = 0; px < sx; px++) {
                uint8_t *d = dst + ((c * sy + py) * sx + px) * pb;
                const uint8_t *s = x + c * ih * iw;
                /* grid columns q in [q_lo, q_hi) read x = q*sx + px - left inside the row */
                size_t q_lo = left > px ? (left - px + sx - 1) / sx : 0;
                size_t q_hi = iw + left > px ? (iw + left - px + sx - 1) / sx : 0;
                q_hi = q_hi < wq ? q_hi : wq;
                q_lo = q_lo < q_hi ? q_lo : q_hi;
                for (size_t r = 0; r < hq; r++) {
                    size_t iy = r * sy + py - top; /* wraps above the image */
                    uint8_t *row = d + r * wq;
                    if (iy >= ih) {
                        fill_run(row, pad, wq);
                        continue;
                    }
                    fill_run(row, pad, q_lo);
                    if (q_hi > q_lo)
                        gather_run(row + q_lo, s + iy * iw + q_lo * sx + px - left, sx, q_hi - q_lo);
                    fill_run(row + q_hi, pad, wq - q_hi);
                }
                fill_run(d + hq * wq, pad, pb - hq * wq);
            }
}

void oq_q8_im2col_padded_pack(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum)
{
    const oq_q8_im2col_padded_ctx *c = ctx;
    const oq_q8_conv_geom *g = c->g;
    size_t kh = g->kernel[1], kw = g->kernel[2], k = g->channels * kh * kw, k4 = roundup(k, 4);
    size_t sy = g->stride[1], sx = g->stride[2];
    uint8_t zero[CHUNK];
    memset(zero, c->x_xor, sizeof zero); /* reads as 0 after the xor */
    if (colsum)
        memset(colsum, 0, nb * sizeof *colsum);
    size_t chunk = CHUNK / nr * nr;
    for (size_t c0 = 0; c0 < nb; c0 += chunk) {
        size_t cw = nb - c0 < chunk ? nb - c0 : chunk;
        uint8_t *cdst = dst + (c0 / nr) * k4 * nr;
        size_t ch = 0, ky = 0, kx = 0;
        for (size_t p = 0; p < k; p += 4) {
            const uint8_t *rows[4];
            for (size_t q = 0; q < 4; q++) {
                if (p + q >= k) {
                    rows[q] = zero;
                    continue;
                }
                /* tap (ky, kx) reads padded (oy*sy + ay, ox*sx + ax): phase (ay % sy, ax % sx)
                 * at grid offset (ay / sy, ax / sx) */
                size_t ay = ky * g->dilation[1], ax = kx * g->dilation[2];
                const uint8_t *phase = c->xp + ((ch * sy + ay % sy) * sx + ax % sx) * c->plane_bytes;
                rows[q] = phase + ay / sy * c->wp + ax / sx + n0 + c0;
                if (++kx == kw) {
                    kx = 0;
                    if (++ky == kh) {
                        ky = 0;
                        ch++;
                    }
                }
            }
            interleave4(rows, cw, nr, k4, c->x_xor, cdst + (p / 4) * nr * 4, colsum ? colsum + c0 : NULL);
        }
    }
    size_t tail = nb % nr;
    if (tail) {
        uint8_t *panel = dst + (nb / nr) * k4 * nr;
        for (size_t q = 0; q < k4 / 4; q++)
            memset(panel + q * nr * 4 + tail * 4, 0, (nr - tail) * 4);
    }
}

#if defined(__SSE2__)
/* One 16 x 16 block: four rounds of interleaving (bytes, pairs, quads, halves). */
static void transpose16(const uint8_t *src, size_t ss, uint8_t *dst, size_t ds, __m128i x)
{
    __m128i a[16], b[16];
    for (int i = 0; i < 16; i++)
        a[i] = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + i * ss)), x);
    for (int i = 0; i < 8; i++) { /* b[2i + h]: rows 2i, 2i+1, columns 8h.. */
        b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int q = 0; q < 4; q++) /* a[4q + c]: rows 4q.., columns 4c.. */
        for (int c = 0; c < 4; c++) {
            __m128i u = b[2 * (2 * q) + c / 2], v = b[2 * (2 * q + 1) + c / 2];
            a[4 * q + c] = c % 2 ? _mm_unpackhi_epi16(u, v) : _mm_unpacklo_epi16(u, v);
        }
    for (int o = 0; o < 2; o++) /* b[8o + c]: rows 8o.., columns 2c.. */
        for (int c = 0; c < 8; c++) {
            __m128i u = a[4 * (2 * o) + c / 2], v = a[4 * (2 * o + 1) + c / 2];
            b[8 * o + c] = c % 2 ? _mm_unpackhi_epi32(u, v) : _mm_unpacklo_epi32(u, v);
        }
    for (int c = 0; c < 16; c++) {
        __m128i u = b[c / 2], v = b[8 + c / 2];
        _mm_storeu_si128((__m128i *)(dst + c * ds), c % 2 ? _mm_unpackhi_epi64(u, v) : _mm_unpacklo_epi64(u, v));
    }
}
#endif

void oq_q8_copy_runs(uint8_t *dst, const uint8_t *const *src, size_t n, size_t len, uint8_t x, uint8_t pad)
{
    if (oq_isa_level() >= OQ_ISA_AVX512) {
        oq_q8_copy_runs__avx512(dst, src, n, len, x, pad);
        return;
    }
    for (size_t r = 0; r < n; r++, dst += len)
        if (!src[r])
            memset(dst, pad, len);
        else if (!x)
            memcpy(dst, src[r], len);
        else
            for (size_t i = 0; i < len; i++)
                dst[i] = src[r][i] ^ x;
}

void oq_q8_transpose_u8(const uint8_t *src, size_t rows, size_t cols, size_t ss, uint8_t *dst, size_t ds, uint8_t x)
{
    size_t r16 = 0, c16 = 0;
#if defined(__SSE2__)
    r16 = rows / 16 * 16;
    c16 = cols / 16 * 16;
    const __m128i vx = _mm_set1_epi8((char)x);
    for (size_t i = 0; i < r16; i += 16)
        for (size_t j = 0; j < c16; j += 16)
            transpose16(src + i * ss + j, ss, dst + j * ds + i, ds, vx);
#endif
    /* the edges: columns past c16 of every row, rows past r16 of the first c16 columns */
    for (size_t i = 0; i < rows; i++)
        for (size_t j = i < r16 ? c16 : 0; j < cols; j++)
            dst[j * ds + i] = src[i * ss + j] ^ x;
}
