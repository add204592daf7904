/* kernels/q8: dispatch table, packing, the GEMM driver (blocks over N so a block
 * of packed B stays in L2, threads over blocks x row chunks, folds zero points
 * and bias into per-row/per-column terms of the output stage), the im2col packer
 * and the reference depthwise kernel. */
#include "kernels/q8/tile.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const oq_q8_gemm_variant variants[] = {
#define OQ_Q8_GEMM_VARIANT(fn, isa, flavour, mr, nr)                                                             \
    {#fn,                                                                                                        \
     isa,                                                                                                        \
     flavour,                                                                                                    \
     mr,                                                                                                         \
     nr,                                                                                                         \
     fn,                                                                                                         \
     (isa) == OQ_ISA_AMX ? 64 : 4,                                                                               \
     (isa) == OQ_ISA_AMX ? 15 * (nr) * 4 + 64 : 0,                                                               \
     (isa) == OQ_ISA_AMX ? oq_q8_amx_begin : NULL,                                                               \
     (isa) == OQ_ISA_AMX ? oq_q8_amx_end : NULL},
#include "kernels/q8/q8-gemm.inc"
#undef OQ_Q8_GEMM_VARIANT
};

const oq_q8_gemm_variant *oq_q8_gemm_variants(size_t *count)
{
    *count = sizeof variants / sizeof variants[0];
    return variants;
}

const oq_q8_gemm_variant *oq_q8_gemm_for_isa(oq_q8_flavour flavour, oq_isa isa)
{
    const oq_q8_gemm_variant *best = NULL;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (variants[i].flavour == flavour && variants[i].isa <= isa && (!best || variants[i].isa >= best->isa))
            best = &variants[i];
    return best;
}

const oq_q8_gemm_variant *oq_q8_gemm_default(oq_q8_flavour flavour)
{
    static const oq_q8_gemm_variant *chosen[2];
    static int ready[2];
    if (!__atomic_load_n(&ready[flavour], __ATOMIC_ACQUIRE)) {
        chosen[flavour] = oq_q8_gemm_for_isa(flavour, oq_isa_level());
        __atomic_store_n(&ready[flavour], 1, __ATOMIC_RELEASE);
    }
    return chosen[flavour];
}

static size_t roundup(size_t x, size_t m) { return (x + m - 1) / m * m; }

size_t oq_q8_packed_a_size(const oq_q8_gemm_variant *v, size_t m, size_t k) { return roundup(m, v->mr) * roundup(k, v->ka); }
size_t oq_q8_packed_b_size(const oq_q8_gemm_variant *v, size_t k, size_t n)
{
    return roundup(n, v->nr) * roundup(k, 4) + v->b_slack;
}

/* A rows into the AMX layout (blocks of ka k values, mr rows each); returns nothing
 * but fills sums with the row sums as the flavour reads the bytes. */
static void pack_rows_blocked(size_t lines, size_t k, size_t w, size_t ka, const uint8_t *src, size_t ls, size_t ps,
                              uint8_t x, bool is_signed, uint8_t *dst, int32_t *sums)
{
    size_t kp = roundup(k, ka);
    for (size_t l0 = 0; l0 < lines; l0 += w) {
        size_t lw = lines - l0 < w ? lines - l0 : w;
        uint8_t *panel = dst + l0 * kp;
        if (lw < w || k < kp)
            memset(panel, 0, w * kp);
        for (size_t l = 0; l < lw; l++) {
            const uint8_t *s = src + (l0 + l) * ls;
            int32_t sum = 0;
            size_t q0 = 0;
#if defined(__SSE2__)
            if (ps == 1 && ka % 16 == 0) {
                /* whole blocks 16 bytes at a time, sums by psadbw (signed: on b ^ 0x80, minus 128 each) */
                const __m128i vx = _mm_set1_epi8((char)x), flip = _mm_set1_epi8(is_signed ? (char)0x80 : 0);
                const __m128i zero = _mm_setzero_si128();
                __m128i acc = zero;
                for (; q0 + ka <= k; q0 += ka) {
                    uint8_t *d = panel + q0 * w + l * ka;
                    for (size_t p = 0; p < ka; p += 16) {
                        __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + q0 + p)), vx);
                        _mm_storeu_si128((__m128i *)(d + p), v);
                        acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_xor_si128(v, flip), zero));
                    }
                }
                sum = _mm_cvtsi128_si32(acc) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(acc, acc));
                sum -= is_signed ? (int32_t)(128 * q0) : 0;
            }
#endif
            for (size_t q = q0; q < k; q += ka) {
                size_t n = k - q < ka ? k - q : ka;
                uint8_t *d = panel + q * w + l * ka;
                for (size_t p = 0; p < n; p++) {
                    uint8_t b = s[(q + p) * ps] ^ x;
                    d[p] = b;
                    sum += is_signed ? (int32_t)(int8_t)b : (int32_t)b;
                }
            }
            if (sums)
                sums[l0 + l] = sum;
        }
    }
}

/* Line l of a panel from element p on (see pack_panels); returns the sum. */
static int32_t pack_line(const uint8_t *s, size_t p, size_t k, size_t ps, uint8_t x, bool is_signed, uint8_t *panel,
                         size_t w, size_t l)
{
    int32_t sum = 0;
    if (ps == 1) {
        /* contiguous lines: move 4 bytes at a time and sum them as SWAR
         * lanes (signed sums read b ^ 0x80 as unsigned, minus 128 each) */
        uint32_t xw = x * 0x01010101u, flip = is_signed ? 0x80808080u : 0;
        for (; p + 4 <= k; p += 4) {
            uint32_t word;
            memcpy(&word, s + p, 4);
            word ^= xw;
            memcpy(panel + (p / 4) * w * 4 + l * 4, &word, 4);
            uint32_t u = word ^ flip, t = (u & 0x00FF00FFu) + ((u >> 8) & 0x00FF00FFu);
            sum += (int32_t)((t & 0xFFFFu) + (t >> 16)) - (is_signed ? 512 : 0);
        }
    }
    for (; p < k; p++) {
        uint8_t b = s[p * ps] ^ x;
        panel[(p / 4) * w * 4 + l * 4 + p % 4] = b;
        sum += is_signed ? (int32_t)(int8_t)b : (int32_t)b;
    }
    return sum;
}

/* Panels of w lines (rows of A or columns of B) starting at line l0: line i,
 * element p at src[i*ls + p*ps] ^ x; sums read the bytes as signed or not. */
static void pack_panels(size_t lines, size_t k, size_t w, const uint8_t *src, size_t ls, size_t ps, uint8_t x,
                        bool is_signed, uint8_t *dst, int32_t *sums)
{
    size_t k4 = roundup(k, 4);
    for (size_t l0 = 0; l0 < lines; l0 += w) {
        size_t lw = lines - l0 < w ? lines - l0 : w;
        uint8_t *panel = dst + l0 * k4;
        if (lw < w || k < k4) /* zero padding: missing lines, k past its end */
            memset(panel, 0, w * k4);
        size_t l = 0;
#if defined(__SSE2__)
        if (ps == 1 && w % 4 == 0) {
            /* four lines at a time: 16 bytes of each, a 4x4 transpose of 4-byte
             * groups, row sums by psadbw (signed: on b ^ 0x80, minus 128 each) */
            const __m128i vx = _mm_set1_epi8((char)x), flip = _mm_set1_epi8(is_signed ? (char)0x80 : 0);
            const __m128i zero = _mm_setzero_si128();
            for (; l + 4 <= lw; l += 4) {
                const uint8_t *s0 = src + (l0 + l) * ls, *s1 = s0 + ls, *s2 = s1 + ls, *s3 = s2 + ls;
                __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
                size_t p = 0;
                for (; p + 16 <= k; p += 16) {
                    __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s0 + p)), vx);
                    __m128i r1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s1 + p)), vx);
                    __m128i r2 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s2 + p)), vx);
                    __m128i r3 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s3 + p)), vx);
                    a0 = _mm_add_epi64(a0, _mm_sad_epu8(_mm_xor_si128(r0, flip), zero));
                    a1 = _mm_add_epi64(a1, _mm_sad_epu8(_mm_xor_si128(r1, flip), zero));
                    a2 = _mm_add_epi64(a2, _mm_sad_epu8(_mm_xor_si128(r2, flip), zero));
                    a3 = _mm_add_epi64(a3, _mm_sad_epu8(_mm_xor_si128(r3, flip), zero));
                    __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
                    __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
                    uint8_t *d = panel + (p / 4) * w * 4 + l * 4;
                    _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi64(t0, t1));
                    _mm_storeu_si128((__m128i *)(d + w * 4), _mm_unpackhi_epi64(t0, t1));
                    _mm_storeu_si128((__m128i *)(d + 2 * w * 4), _mm_unpacklo_epi64(t2, t3));
                    _mm_storeu_si128((__m128i *)(d + 3 * w * 4), _mm_unpackhi_epi64(t2, t3));
                }
                __m128i acc[4] = {a0, a1, a2, a3};
                const uint8_t *sl[4] = {s0, s1, s2, s3};
                for (size_t q = 0; q < 4; q++) {
                    int32_t sum = _mm_cvtsi128_si32(acc[q]) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(acc[q], acc[q]));
                    sum -= is_signed ? (int32_t)(128 * p) : 0;
                    sum += pack_line(sl[q], p, k, 1, x, is_signed, panel, w, l + q);
                    if (sums)
                        sums[l0 + l + q] = sum;
                }
            }
        }
#endif
        for (; l < lw; l++) {
            int32_t sum = pack_line(src + (l0 + l) * ls, 0, k, ps, x, is_signed, panel, w, l);
            if (sums)
                sums[l0 + l] = sum;
        }
    }
}

static void pack_a_panels(const oq_q8_gemm_variant *v, size_t m, size_t k, const uint8_t *a, size_t rs, size_t cs,
                          uint8_t x, uint8_t *dst, int32_t *rowsum)
{
    if (v->ka == 4)
        pack_panels(m, k, v->mr, a, rs, cs, x, v->flavour == OQ_Q8_S8U8, dst, rowsum);
    else
        pack_rows_blocked(m, k, v->mr, v->ka, a, rs, cs, x, v->flavour == OQ_Q8_S8U8, dst, rowsum);
}

void oq_q8_pack_a(const oq_q8_gemm_variant *v, size_t m, size_t k, const uint8_t *a, size_t rs, size_t cs, uint8_t x,
                  uint8_t *dst, int32_t *rowsum)
{
    pack_a_panels(v, m, k, a, rs, cs, x, dst, rowsum);
}

void oq_q8_pack_b(const oq_q8_gemm_variant *v, size_t k, size_t n, const uint8_t *b, size_t rs, size_t cs, uint8_t x,
                  uint8_t *dst, int32_t *colsum)
{
    pack_panels(n, k, v->nr, b, cs, rs, x, v->flavour == OQ_Q8_U8S8, dst, colsum);
}

oq_q8_gemm_args oq_q8_gemm_args_init(size_t m, size_t n, size_t k)
{
    oq_q8_gemm_args g;
    memset(&g, 0, sizeof g);
    g.m = m;
    g.n = n;
    g.k = k;
    g.out = OQ_Q8_OUT_I32;
    g.range = oq_requant_range_make(0, 0, 255);
    return g;
}

/* ---- the driver ---- */
#define L2_BLOCK_BYTES (192u * 1024u)
#define L1_BLOCK_BYTES (16u * 1024u)

static size_t block_n(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g)
{
    size_t k4 = roundup(g->k, 4) ? roundup(g->k, 4) : 4;
    size_t nc = L2_BLOCK_BYTES / k4 / v->nr * v->nr;
    if (nc < v->nr)
        nc = v->nr;
    size_t all = roundup(g->n, v->nr);
    return nc < all ? nc : all;
}

static size_t align64(size_t x) { return roundup(x, 64); }

/* Raw A rows with unit column stride are read in place by the c4 kernels (a
 * vpdpbusd broadcast takes 4 bytes of a row wherever it is): packing them would
 * cost a pass over A as long as the product itself when k or n is small
 * (bench_q8_gemm resnet50-l1-1x1a, k 64 n 64: a quarter of the run). The xor
 * conversion of the other signedness still needs the packer. */
static bool direct_a(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g)
{
    return !g->a_packed && v->ka == 4 && g->a_cs == 1 && g->a_xor == 0 && g->a_rs >= g->k;
}

static size_t shared_bytes(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g)
{
    size_t mp = roundup(g->m, v->mr);
    return (g->a_packed || direct_a(v, g) ? 0 : align64(oq_q8_packed_a_size(v, g->m, g->k))) + 4 * align64(mp * 4);
}

static size_t thread_bytes(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g)
{
    size_t nc = block_n(v, g);
    return (g->b_packed ? 0 : align64(nc * roundup(g->k, 4) + v->b_slack)) + 4 * align64(nc * 4);
}

size_t oq_q8_gemm_workspace_size(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g, size_t n_threads)
{
    return 64 + shared_bytes(v, g) + (n_threads ? n_threads : 1) * thread_bytes(v, g);
}

/* A zero-point vector whose entries are all equal is a scalar (fewer terms). */
static const int32_t *zp_vector(const int32_t *zp, size_t n, int32_t *scalar)
{
    if (!zp)
        return NULL;
    for (size_t i = 1; i < n; i++)
        if (zp[i] != zp[0])
            return zp;
    if (n)
        *scalar = zp[0];
    return NULL;
}

typedef struct run_ctx {
    const oq_q8_gemm_variant *v;
    const oq_q8_gemm_args *g;
    const int32_t *za, *zb; /* vectors or NULL */
    int32_t za0, zb0;
    const uint8_t *a_packed;
    const int32_t *rowsum;
    int32_t *rowsum_ws, *row_off, *r1, *r2;
    uint8_t *thread_ws;
    size_t thread_stride, nc, n_blocks, m_chunk, m_chunks;
    bool direct;  /* A read in place (direct_a) */
    bool row_off_used; /* some row_off is not zero (per-row bias, B's scalar zero point) */
} run_ctx;

/* Sums of raw rows i0..ie of A as the flavour reads them (signed: b ^ 0x80 summed unsigned, minus 128 each). */
static void raw_row_sums(const uint8_t *a, size_t rs, size_t k, bool is_signed, size_t rows, int32_t *sums)
{
    for (size_t i = 0; i < rows; i++) {
        const uint8_t *s = a + i * rs;
        uint32_t sum = 0;
        size_t p = 0;
#if defined(__SSE2__)
        const __m128i flip = _mm_set1_epi8(is_signed ? (char)0x80 : 0), zero = _mm_setzero_si128();
        __m128i acc = zero;
        for (; p + 16 <= k; p += 16)
            acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + p)), flip), zero));
        sum = (uint32_t)(_mm_cvtsi128_si32(acc) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(acc, acc)));
        sum -= is_signed ? (uint32_t)(128 * p) : 0;
#endif
        for (; p < k; p++)
            sum += is_signed ? (uint32_t)(int32_t)(int8_t)s[p] : (uint32_t)s[p];
        sums[i] = (int32_t)sum;
    }
}

static void prep_rows(void *p, size_t panel, size_t thread)
{
    (void)thread;
    const run_ctx *r = p;
    const oq_q8_gemm_args *g = r->g;
    size_t mr = r->v->mr, i0 = panel * mr, ie = i0 + mr < g->m ? i0 + mr : g->m;
    if (r->direct) {
        /* row sums only meet B's zero point: symmetric weights (zp 0) skip them */
        if (r->zb || r->zb0)
            raw_row_sums(g->a + i0 * g->a_rs, g->a_rs, g->k, r->v->flavour == OQ_Q8_S8U8, ie - i0, r->rowsum_ws + i0);
        else
            memset(r->rowsum_ws + i0, 0, (ie - i0) * sizeof(int32_t));
    } else if (!g->a_packed)
        pack_a_panels(r->v, ie - i0, g->k, g->a + i0 * g->a_rs, g->a_rs, g->a_cs, g->a_xor,
                      (uint8_t *)r->a_packed + i0 * roundup(g->k, r->v->ka), r->rowsum_ws + i0);
    uint32_t k = (uint32_t)g->k;
    for (size_t i = i0; i < ie; i++) {
        uint32_t za = (uint32_t)(r->za ? r->za[i] : r->za0), rs = (uint32_t)r->rowsum[i];
        uint32_t off = g->bias && g->bias_mode == OQ_Q8_PER_ROW ? (uint32_t)g->bias[i] : 0;
        if (!r->zb)
            off += k * za * (uint32_t)r->zb0 - (uint32_t)r->zb0 * rs;
        r->row_off[i] = (int32_t)off;
        if (r->za && !r->zb)
            r->r1[i] = (int32_t)(0u - za);
        else if (!r->za && r->zb)
            r->r1[i] = (int32_t)(0u - rs);
        else if (r->za && r->zb) {
            r->r1[i] = (int32_t)(k * za - rs);
            r->r2[i] = (int32_t)(0u - za);
        }
    }
}

static void run_task(void *p, size_t task, size_t thread)
{
    const run_ctx *r = p;
    const oq_q8_gemm_args *g = r->g;
    const oq_q8_gemm_variant *v = r->v;
    size_t blk = task / r->m_chunks, chunk = task % r->m_chunks;
    size_t n0 = blk * r->nc, nb = g->n - n0 < r->nc ? g->n - n0 : r->nc;
    size_t m0 = chunk * r->m_chunk, me = m0 + r->m_chunk < g->m ? m0 + r->m_chunk : g->m;
    if (m0 >= me)
        return;
    size_t k4 = roundup(g->k, 4), kg = k4 / 4, ka = roundup(g->k, v->ka);
    uint8_t *ws = r->thread_ws + thread * r->thread_stride;
    const uint8_t *bp;
    const int32_t *cs;
    if (g->b_packed) {
        bp = g->b_packed + n0 * k4;
        cs = g->b_colsum + n0;
    } else {
        uint8_t *dst = ws;
        /* column sums only meet A's zero point: symmetric weights (zp 0) skip them */
        int32_t *sums = r->za || r->za0 ? (int32_t *)(ws + align64(r->nc * k4 + v->b_slack)) : NULL;
        if (g->pack_b)
            g->pack_b(g->pack_ctx, n0, nb, v->nr, dst, sums);
        else
            pack_panels(nb, g->k, v->nr, g->b + n0 * g->b_cs, g->b_cs, g->b_rs, g->b_xor, v->flavour == OQ_Q8_U8S8,
                        dst, sums);
        bp = dst;
        cs = sums;
        ws += align64(r->nc * k4 + v->b_slack);
    }
    int32_t *col_off = (int32_t *)(ws + align64(r->nc * 4)), *c1 = col_off + align64(r->nc * 4) / 4;
    uint32_t k = (uint32_t)g->k;
    for (size_t j = 0; j < nb; j++) {
        uint32_t zb = (uint32_t)(r->zb ? r->zb[n0 + j] : r->zb0), s = cs ? (uint32_t)cs[j] : 0;
        uint32_t off = g->bias && g->bias_mode == OQ_Q8_PER_COL ? (uint32_t)g->bias[n0 + j] : 0;
        if (!r->za)
            off -= (uint32_t)r->za0 * s;
        if (!r->za && r->zb)
            off += k * (uint32_t)r->za0 * zb;
        col_off[j] = (int32_t)off;
        if (r->zb)
            c1[j] = (int32_t)zb;
        else if (r->za)
            c1[j] = (int32_t)s;
    }
    const bool pair1 = r->za || r->zb, pair2 = r->za && r->zb;
    size_t esize = g->out == OQ_Q8_OUT_I32 || g->out == OQ_Q8_OUT_F32 ? 4 : 1;
    /* A few panels of B (n1 columns, nr x k each) stay in L1 while the rows of an
     * L2-sized block of A stream past them: per MAC, B would cost mr times more
     * bandwidth than A. When k is short, n1 spans several panels and each row
     * tile of A meets all of them in turn, so C is written in rows n1 wide rather
     * than in strips nr wide, column strip after column strip (bench_q8_gemm
     * resnet50-l1-1x1b, 3136 x 256 x 64, int32 C of 3 MB: ...). */
    size_t mc = L2_BLOCK_BYTES / (k4 ? k4 : 4) / v->mr * v->mr;
    mc = mc < v->mr ? v->mr : mc;
    size_t n1 = L1_BLOCK_BYTES / (k4 ? k4 : 4) / v->nr * v->nr;
    n1 = n1 < v->nr ? v->nr : n1;
    if (v->begin)
        v->begin();
    for (size_t ib = m0; ib < me; ib += mc) {
      size_t ibe = ib + mc < me ? ib + mc : me;
      for (size_t j1 = 0; j1 < nb; j1 += n1) {
       size_t j1e = j1 + n1 < nb ? j1 + n1 : nb;
       for (size_t i0 = ib; i0 < ibe; i0 += v->mr) {
        size_t mr = ibe - i0 < v->mr ? ibe - i0 : v->mr;
        for (size_t j0 = j1; j0 < j1e; j0 += v->nr) {
            size_t nr = j1e - j0 < v->nr ? j1e - j0 : v->nr;
            const uint8_t *ap = r->direct ? g->a + i0 * g->a_rs : r->a_packed + i0 * ka;
            oq_q8_gemm_tile t = {
                .row_off = r->row_off_used ? r->row_off + i0 : NULL,
                .col_off = col_off + j0,
                .r1 = pair1 ? r->r1 + i0 : NULL,
                .c1 = pair1 ? c1 + j0 : NULL,
                .r2 = pair2 ? r->r2 + i0 : NULL,
                .c2 = pair2 ? cs + j0 : NULL,
                .out = g->out,
                .scale = g->scale ? g->scale + (g->scale_mode == OQ_Q8_PER_ROW ? i0 : g->scale_mode == OQ_Q8_PER_COL ? n0 + j0 : 0) : NULL,
                .scale_mode = g->scale_mode,
                .bias = g->bias_f ? g->bias_f + n0 + j0 : NULL,
                .range = g->range,
                .a_stride = r->direct ? g->a_rs : 0,
                .a_tail = r->direct ? (unsigned)(g->k % 4) : 0,
            };
            v->ukernel(mr, nr, kg, ap, bp + j0 * k4, (uint8_t *)g->c + (i0 * g->ldc + n0 + j0) * esize, g->ldc, &t);
        }
       }
      }
    }
    if (v->end)
        v->end();
}

void oq_q8_gemm_run(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g, void *ws, oq_threadpool *tp)
{
    if (!g->m || !g->n)
        return;
    /* A few rows (a GEMV) would leave most of an AMX tile empty, and a short k most
     * of its 64-deep block (k 24: 2.7x the MACs): the VNNI kernel of the same flavour
     * reads the same packed B (c4 panels of 32 columns) and needs no more workspace,
     * so it takes over when A is packed here (bench_q8_gemm mbv2-1x1-expand, k 24:
     * 144 GOPS on AMX, 231 on VNNI). */
    if (v->isa == OQ_ISA_AMX && !g->a_packed && (g->m <= 8 || g->k <= 32)) {
        const oq_q8_gemm_variant *f = oq_q8_gemm_for_isa(v->flavour, OQ_ISA_AVX512VNNI);
        if (f && f->nr == v->nr)
            v = f;
    }
    run_ctx r = {.v = v, .g = g, .direct = direct_a(v, g)};
    r.za0 = g->a_zp;
    r.zb0 = g->b_zp;
    r.za = zp_vector(g->a_zp_rows, g->m, &r.za0);
    r.zb = zp_vector(g->b_zp_cols, g->n, &r.zb0);
    r.row_off_used = (g->bias && g->bias_mode == OQ_Q8_PER_ROW) || (!r.zb && r.zb0);
    uint8_t *w = (uint8_t *)roundup((size_t)ws, 64);
    size_t mp = roundup(g->m, v->mr);
    if (g->a_packed) {
        r.a_packed = g->a_packed;
        r.rowsum = g->a_rowsum;
    } else if (r.direct) {
        r.a_packed = NULL;
    } else {
        r.a_packed = w;
        w += align64(oq_q8_packed_a_size(v, g->m, g->k));
    }
    r.rowsum_ws = (int32_t *)w;
    if (!g->a_packed)
        r.rowsum = r.rowsum_ws;
    r.row_off = (int32_t *)(w + align64(mp * 4));
    r.r1 = (int32_t *)(w + 2 * align64(mp * 4));
    r.r2 = (int32_t *)(w + 3 * align64(mp * 4));
    w += 4 * align64(mp * 4);
    r.thread_ws = w;
    r.thread_stride = thread_bytes(v, g);
    /* with A packed ahead (convolution weights) or read in place without row
     * sums, the rows need only their offsets: a few operations a row, less than
     * waking the pool for them (one fork/join per node saved) */
    if (g->a_packed || (r.direct && !r.zb && !r.zb0))
        for (size_t t = 0; t < mp / v->mr; t++)
            prep_rows(&r, t, 0);
    else
        oq_parallel_for(tp, mp / v->mr, prep_rows, &r);

    size_t threads = (size_t)oq_threadpool_size(tp);
    r.nc = block_n(v, g);
    size_t n_panels = (g->n + v->nr - 1) / v->nr;
    if (threads > 1 && !g->b_packed) {
        /* B is packed by the task that uses it: split N rather than M, or every
         * M chunk would pack (im2col) the same block again */
        size_t per = (n_panels + 4 * threads - 1) / (4 * threads);
        if (per * v->nr < r.nc)
            r.nc = per * v->nr;
    }
    r.n_blocks = (g->n + r.nc - 1) / r.nc;
    size_t panels = mp / v->mr;
    r.m_chunks = 1;
    if (threads > 1 && r.n_blocks < (g->b_packed ? 4 : 1) * threads) {
        r.m_chunks = (4 * threads + r.n_blocks - 1) / r.n_blocks;
        if (r.m_chunks > panels)
            r.m_chunks = panels;
    }
    /* A few equal tasks that do not divide among the threads leave one idle at the
     * end (BERT's QKV, 9 blocks of 256 columns on 2 threads: 5 + 4). With packed B
     * an M cut costs only a re-read of the block, so cut M evenly until they do. */
    if (threads > 1 && g->b_packed && (r.n_blocks * r.m_chunks) % threads != 0 &&
        r.n_blocks * r.m_chunks < 16 * threads) {
        for (size_t mc = r.m_chunks + 1; mc <= panels && mc <= 8 * threads; mc++)
            if ((r.n_blocks * mc) % threads == 0 && panels % mc == 0) {
                r.m_chunks = mc;
                break;
            }
    }
    r.m_chunk = (panels + r.m_chunks - 1) / r.m_chunks * v->mr;
    r.m_chunks = (g->m + r.m_chunk - 1) / r.m_chunk;
    oq_parallel_for(tp, r.n_blocks * r.m_chunks, run_task, &r);
}

/* ---- convolution ---- */
void oq_q8_im2col_pack_reference(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum)
{
    const oq_q8_im2col_ctx *c = ctx;
    const oq_q8_conv_geom *g = c->g;
    size_t ksz = g->kernel[0] * g->kernel[1] * g->kernel[2], k = g->channels * ksz, k4 = roundup(k, 4);
    size_t plane = g->in[0] * g->in[1] * g->in[2], ohw = g->out[1] * g->out[2];
    memset(dst, 0, roundup(nb, nr) * k4);
    memset(colsum, 0, nb * sizeof *colsum);
    for (size_t p = 0; p < k; p++) {
        size_t ch = p / ksz, t = p % ksz;
        size_t kx = t % g->kernel[2], ky = t / g->kernel[2] % g->kernel[1], kz = t / (g->kernel[2] * g->kernel[1]);
        const uint8_t *xc = c->x + ch * plane;
        uint8_t *row = dst + (p / 4) * nr * 4 + p % 4;
        size_t j = n0, od = j / ohw, oh = j % ohw / g->out[2], ow = j % g->out[2];
        for (size_t jj = 0; jj < nb; jj++) {
            /* unsigned wrap makes "before the image" a huge index, so one compare per axis */
            size_t iz = od * g->stride[0] + kz * g->dilation[0] - g->pad[0];
            size_t iy = oh * g->stride[1] + ky * g->dilation[1] - g->pad[1];
            size_t ix = ow * g->stride[2] + kx * g->dilation[2] - g->pad[2];
            uint8_t b = c->pad;
            if (iz < g->in[0] && iy < g->in[1] && ix < g->in[2])
                b = xc[(iz * g->in[1] + iy) * g->in[2] + ix] ^ c->x_xor;
            row[(jj / nr) * k4 * nr + (jj % nr) * 4] = b;
            colsum[jj] += b;
            if (++ow == g->out[2]) {
                ow = 0;
                if (++oh == g->out[1]) {
                    oh = 0;
                    od++;
                }
            }
        }
    }
}

void oq_q8_dwconv_reference(const oq_q8_dw_params *p, const void *x, const void *w, void *y)
{
    const oq_q8_conv_geom *g = p->g;
    size_t ih = g->in[1], iw = g->in[2], oh = g->out[1], ow = g->out[2], kh = g->kernel[1], kw = g->kernel[2];
    int32_t wk[64 * 64];
    size_t taps = kh * kw <= 64 * 64 ? kh * kw : 0;
    for (size_t t = 0; t < taps; t++)
        wk[t] = (p->w_signed ? (int32_t)((const int8_t *)w)[t] : (int32_t)((const uint8_t *)w)[t]) - p->w_zp;
    for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++) {
            uint32_t acc = (uint32_t)p->bias;
            for (size_t ky = 0; ky < kh; ky++) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1];
                if (iy >= ih)
                    continue;
                for (size_t kx = 0; kx < kw; kx++) {
                    size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2];
                    if (ix >= iw)
                        continue;
                    size_t at = iy * iw + ix, t = ky * kw + kx;
                    int32_t xv = (p->x_signed ? (int32_t)((const int8_t *)x)[at] : (int32_t)((const uint8_t *)x)[at]) -
                                 p->x_zp;
                    int32_t wv = taps ? wk[t]
                                      : (p->w_signed ? (int32_t)((const int8_t *)w)[t] : (int32_t)((const uint8_t *)w)[t]) -
                                            p->w_zp;
                    acc += (uint32_t)(xv * wv);
                }
            }
            size_t at = oy * ow + ox;
            int32_t v = (int32_t)acc;
            switch (p->out) {
            case OQ_Q8_OUT_U8: ((uint8_t *)y)[at] = (uint8_t)oq_requantize(v, p->scale, p->range); break;
            case OQ_Q8_OUT_S8: ((int8_t *)y)[at] = (int8_t)oq_requantize(v, p->scale, p->range); break;
            case OQ_Q8_OUT_F32: ((float *)y)[at] = (float)v * p->scale; break;
            default: ((int32_t *)y)[at] = v; break;
            }
        }
}
