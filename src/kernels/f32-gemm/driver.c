/* kernels/f32-gemm: the blocked GEMM driver shared by every microkernel —
 * variant table and dispatch, operand packing, tiling over (batch, M, N) for
 * the thread pool, K blocking with the epilogue split between first and last block. */
#include "kernels/f32-gemm/gemm.h"

#include <pthread.h>
#include <string.h>

static const oq_f32_gemm_variant variants[] = {
#define OQ_F32_GEMM_VARIANT(name, isa, mr, nr, kc) {#name, isa, mr, nr, kc, name},
#include "kernels/f32-gemm/f32-gemm.inc"
#undef OQ_F32_GEMM_VARIANT
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

const oq_f32_gemm_variant *oq_f32_gemm_variants(size_t *count)
{
    *count = N_VARIANTS;
    return variants;
}

static const oq_f32_gemm_variant *best;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;
static void pick_best(void)
{
    oq_isa level = oq_isa_level();
    best = &variants[0];
    for (size_t i = 0; i < N_VARIANTS; i++)
        if (variants[i].isa <= level && variants[i].isa >= best->isa)
            best = &variants[i];
}

const oq_f32_gemm_variant *oq_f32_gemm_default(void)
{
    pthread_once(&best_once, pick_best);
    return best;
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static size_t div_up(size_t x, size_t m) { return (x + m - 1) / m; }

size_t oq_f32_gemm_packed_a_size(const oq_f32_gemm_variant *v, size_t m, size_t k)
{
    return round_up(m, v->mr) * k;
}

size_t oq_f32_gemm_packed_b_size(const oq_f32_gemm_variant *v, size_t k, size_t n)
{
    return round_up(n, v->nr) * k;
}

/* Contiguous lines are transposed 16 x 16 in registers where the CPU (and ONNXQ_ISA) allow. */
static bool lines_avx512;
static pthread_once_t lines_once = PTHREAD_ONCE_INIT;
static void pick_lines(void) { lines_avx512 = oq_isa_level() >= OQ_ISA_AVX512; }
static bool fast_lines(void)
{
    pthread_once(&lines_once, pick_lines);
    return lines_avx512;
}

/* Panels of rows [r0, r0+rows) of a strided matrix (element (r, p) at x[r*rs + p*cs]),
 * K range [k0, k0+kb), panel width w: for each panel, kb rows of w floats. */
static void pack_panels(const float *x, size_t rs, size_t cs, size_t r0, size_t rows, size_t k0, size_t kb,
                        size_t w, float *dst)
{
    for (size_t q = 0; q < rows; q += w) {
        size_t wq = rows - q < w ? rows - q : w;
        const float *src = x + (r0 + q) * rs + k0 * cs;
        if (rs == 1) { /* the panel's w values are contiguous for each p */
            for (size_t p = 0; p < kb; p++) {
                memcpy(dst + p * w, src + p * cs, wq * sizeof(float));
                for (size_t i = wq; i < w; i++)
                    dst[p * w + i] = 0.0f;
            }
        } else if (cs == 1 && fast_lines()) {
            oq_f32_pack_lines__avx512(src, rs, wq, kb, w, dst);
        } else {
            if (wq < w)
                memset(dst, 0, kb * w * sizeof(float));
            for (size_t i = 0; i < wq; i++) {
                const float *s = src + i * rs;
                float *d = dst + i;
                if (cs == 1)
                    for (size_t p = 0; p < kb; p++)
                        d[p * w] = s[p];
                else
                    for (size_t p = 0; p < kb; p++)
                        d[p * w] = s[p * cs];
            }
        }
        dst += kb * w;
    }
}

void oq_f32_gemm_pack_a(const oq_f32_gemm_variant *v, size_t m, size_t k, const float *a, size_t rs, size_t cs,
                        float *dst)
{
    size_t mp = round_up(m, v->mr);
    for (size_t k0 = 0; k0 < k; k0 += v->kc) {
        size_t kb = k - k0 < v->kc ? k - k0 : v->kc;
        pack_panels(a, rs, cs, 0, m, k0, kb, v->mr, dst + k0 * mp);
    }
}

void oq_f32_gemm_pack_b(const oq_f32_gemm_variant *v, size_t k, size_t n, const float *b, size_t rs, size_t cs,
                        float *dst)
{
    size_t np = round_up(n, v->nr);
    /* B^T is an n x k matrix with element (j, p) at b[j*cs + p*rs]. */
    for (size_t k0 = 0; k0 < k; k0 += v->kc) {
        size_t kb = k - k0 < v->kc ? k - k0 : v->kc;
        pack_panels(b, cs, rs, 0, n, k0, kb, v->nr, dst + k0 * np);
    }
}

oq_f32_gemm_args oq_f32_gemm_args_init(size_t m, size_t n, size_t k)
{
    oq_f32_gemm_args g;
    memset(&g, 0, sizeof g);
    g.batch = 1;
    g.m = m;
    g.n = n;
    g.k = k;
    g.ldc = n;
    g.alpha = 1.0f;
    g.min = -__builtin_inff();
    g.max = __builtin_inff();
    return g;
}

/* How the (batch, M, N) space is cut into tasks. An operand that several tiles
 * would each re-pack (B when M is cut, A when N is cut) is packed once into a
 * shared buffer by a first parallel pass instead. */
typedef struct plan {
    size_t mb, nb, tm, tn; /* largest tile sizes (multiples of mr, nr) and tiles per dimension */
    size_t kc, nkb;        /* K block and number of K blocks */
    bool share_a, share_b;
    size_t shared_a, shared_b; /* floats of each shared buffer (all batches) */
    size_t ws_floats;          /* per thread */
} plan;

enum { SHARED_LIMIT = 4u << 20 }; /* floats (16 MiB) per shared operand */
enum { SHARE_BELOW = 96 };      /* rows (columns) of a tile below which its operand is shared */

static plan make_plan(const oq_f32_gemm_variant *v, const oq_f32_gemm_args *g, size_t n_threads)
{
    plan p;
    size_t mr = v->mr, nr = v->nr;
    size_t m = g->m ? g->m : 1, n = g->n ? g->n : 1;
    size_t mc = mr * (256 / mr > 0 ? 256 / mr : 1), nc = nr * (512 / nr > 0 ? 512 / nr : 1);
    p.tm = div_up(m, mc);
    p.tn = div_up(n, nc);
    /* The cache blocking above, cut further until every thread has a tile and the
     * tiles divide evenly among the threads; cut N first (cutting M makes each tile
     * re-pack its slice of B). Tiles are equal (span), so one per thread is balanced,
     * and more only add traffic: each extra N cut re-reads A, each extra M cut re-packs
     * B. With 2 threads, 2 tiles instead of 8 took ResNet18's 3x3 convs on 14x14 and
     * 7x7 from 0.93 to 0.79 and from 1.26 to 0.97 ms. */
    size_t tasks = g->batch;
    while (tasks * p.tm * p.tn < n_threads || (tasks * p.tm * p.tn) % n_threads != 0) {
        bool can_n = (p.tn + 1) * nr <= round_up(n, nr), can_m = (p.tm + 1) * mr <= round_up(m, mr);
        size_t nb = round_up(div_up(n, p.tn), nr), mb = round_up(div_up(m, p.tm), mr);
        if (can_n && (nb >= 2 * nr || !can_m) && (nb >= mb / 2 || !can_m))
            p.tn++;
        else if (can_m)
            p.tm++;
        else
            break;
    }
    /* Tiles take whole panels, as evenly as span() deals them: equal tiles keep the
     * threads equally busy (fixed-size tiles left a thin last one, e.g. 4 of 196 columns). */
    p.tm = p.tm < div_up(m, mr) ? p.tm : div_up(m, mr);
    p.tn = p.tn < div_up(n, nr) ? p.tn : div_up(n, nr);
    p.mb = div_up(div_up(m, mr), p.tm) * mr;
    p.nb = div_up(div_up(n, nr), p.tn) * nr;
    p.kc = v->kc;
    p.nkb = g->k ? div_up(g->k, p.kc) : 1;
    size_t kc = g->k < p.kc ? g->k : p.kc;
    p.shared_a = g->batch * round_up(m, mr) * g->k;
    p.shared_b = g->batch * round_up(n, nr) * g->k;
    /* Sharing means one thread's packing is read from another core's cache, which costs
     * more than packing again unless the tile is thin (each re-pack then feeds few FMAs). */
    /* On one thread there is no other core's cache: every N tile would re-pack all of A
     * (a 128-token MatMul of 3072 columns: 6 times), so A is packed once. */
    p.share_a = !g->a.packed && p.tn > 1 && g->k > 0 && p.shared_a <= SHARED_LIMIT &&
                (p.nb < SHARE_BELOW || n_threads == 1);
    p.share_b = !g->b.packed && p.tm > 1 && g->k > 0 && p.shared_b <= SHARED_LIMIT && p.mb < SHARE_BELOW;
    if (!p.share_a)
        p.shared_a = 0;
    if (!p.share_b)
        p.shared_b = 0;
    p.shared_a = round_up(p.shared_a, 16);
    p.shared_b = round_up(p.shared_b, 16);
    p.ws_floats = 0;
    if (!g->a.packed && !p.share_a)
        p.ws_floats += p.mb * kc;
    if (!g->b.packed && !p.share_b)
        p.ws_floats += p.nb * kc;
    p.ws_floats = round_up(p.ws_floats + 16, 16); /* 64-byte alignment of each thread's slice */
    return p;
}

size_t oq_f32_gemm_workspace_size(const oq_f32_gemm_variant *v, const oq_f32_gemm_args *g, size_t n_threads)
{
    if (n_threads == 0)
        n_threads = 1;
    plan p = make_plan(v, g, n_threads);
    return (p.shared_a + p.shared_b + p.ws_floats * n_threads + 16) * sizeof(float);
}

/* Rows [*r0, *r0 + *rows) of tile i of tiles over total rows in panels of w. */
static void span(size_t i, size_t tiles, size_t total, size_t w, size_t *r0, size_t *rows)
{
    size_t panels = div_up(total, w), p0 = i * panels / tiles, p1 = (i + 1) * panels / tiles;
    *r0 = p0 * w;
    size_t end = p1 * w < total ? p1 * w : total;
    *rows = end - *r0;
}

typedef struct job {
    const oq_f32_gemm_variant *v;
    const oq_f32_gemm_args *g;
    plan p;
    float *shared_a, *shared_b, *ws;
} job;

static size_t operand_offset(const oq_f32_gemm_operand *o, size_t t)
{
    return o->offset ? o->offset[t] : t * o->stride;
}

/* Packs rows [r0, r0+rows) of K block kb0 of operand A (is_a) or B for batch t
 * into dst (a block of the full packed layout). */
static void pack_block(const job *jb, bool is_a, size_t t, size_t k0, size_t kb, size_t r0, size_t rows, float *dst)
{
    const oq_f32_gemm_args *g = jb->g;
    if (is_a) {
        const float *a = g->a.data + operand_offset(&g->a, t);
        pack_panels(a, g->a.rs, g->a.cs, r0, rows, k0, kb, jb->v->mr, dst);
    } else if (g->b.pack) {
        g->b.pack(g->b.pack_ctx, t, k0, kb, r0, rows, jb->v->nr, dst);
    } else {
        const float *b = g->b.data + operand_offset(&g->b, t);
        pack_panels(b, g->b.cs, g->b.rs, r0, rows, k0, kb, jb->v->nr, dst);
    }
}

/* Task of the shared packing pass: (operand, batch, K block, row chunk). */
static void pack_shared(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const job *jb = ctx;
    const oq_f32_gemm_args *g = jb->g;
    const plan *p = &jb->p;
    size_t a_tasks = p->share_a ? g->batch * p->nkb * p->tm : 0;
    bool is_a = task < a_tasks;
    if (!is_a)
        task -= a_tasks;
    size_t chunks = is_a ? p->tm : p->tn, total = is_a ? g->m : g->n;
    size_t w = is_a ? jb->v->mr : jb->v->nr, padded = round_up(total, w);
    size_t t = task / (p->nkb * chunks), kbi = task / chunks % p->nkb, ci = task % chunks;
    size_t k0 = kbi * p->kc, kb = g->k - k0 < p->kc ? g->k - k0 : p->kc;
    size_t r0, rows;
    span(ci, chunks, total, w, &r0, &rows);
    float *dst = (is_a ? jb->shared_a : jb->shared_b) + t * padded * g->k + k0 * padded + r0 * kb;
    pack_block(jb, is_a, t, k0, kb, r0, rows, dst);
}

static void run_tile(void *ctx, size_t task, size_t thread)
{
    const job *jb = ctx;
    const oq_f32_gemm_variant *v = jb->v;
    const oq_f32_gemm_args *g = jb->g;
    const plan *p = &jb->p;
    size_t tiles = p->tm * p->tn;
    size_t t = task / tiles, rem = task % tiles;
    size_t mr = v->mr, nr = v->nr, k = g->k;
    size_t m0, mb, n0, nb;
    span(rem / p->tn, p->tm, g->m, mr, &m0, &mb);
    span(rem % p->tn, p->tn, g->n, nr, &n0, &nb);
    size_t mp = round_up(g->m, mr), np = round_up(g->n, nr);

    float *ws = jb->ws + thread * p->ws_floats;
    bool own_a = !g->a.packed && !p->share_a;
    float *apack = ws, *bpack = ws + (own_a ? p->mb * (k < p->kc ? k : p->kc) : 0);
    const float *a_full = g->a.packed ? g->a.packed + operand_offset(&g->a, t)
                                      : (p->share_a ? jb->shared_a + t * mp * k : NULL);
    const float *b_full = g->b.packed ? g->b.packed + operand_offset(&g->b, t)
                                      : (p->share_b ? jb->shared_b + t * np * k : NULL);
    float *c = g->c + (g->c_offset ? g->c_offset[t] : t * g->c_stride);
    const float *bias = g->bias ? g->bias + t * g->bias_stride : NULL;
    oq_f32_gemm_epilogue ep = {g->alpha, g->min, g->max};

    size_t k0 = 0;
    do {
        size_t kb = k - k0 < p->kc ? k - k0 : p->kc;
        unsigned flags = 0;
        bool first = k0 == 0, last = k0 + kb >= k;
        if (!first || g->accumulate)
            flags |= OQ_F32_GEMM_LOAD_C;
        if (last && g->clamp)
            flags |= OQ_F32_GEMM_CLAMP;
        const float *ablk, *bblk;
        if (a_full)
            ablk = a_full + k0 * mp + m0 * kb;
        else {
            pack_block(jb, true, t, k0, kb, m0, mb, apack);
            ablk = apack;
        }
        if (b_full)
            bblk = b_full + k0 * np + n0 * kb;
        else {
            pack_block(jb, false, t, k0, kb, n0, nb, bpack);
            bblk = bpack;
        }
        for (size_t j = 0; j < nb; j += nr) {
            size_t nrj = nb - j < nr ? nb - j : nr;
            const float *bias_col = first && bias && g->bias_kind == OQ_F32_BIAS_COL ? bias + n0 + j : NULL;
            for (size_t i = 0; i < mb; i += mr) {
                size_t mri = mb - i < mr ? mb - i : mr;
                const float *bias_row = first && bias && g->bias_kind == OQ_F32_BIAS_ROW ? bias + m0 + i : NULL;
                v->ukernel(mri, nrj, kb, ablk + i * kb, bblk + j * kb, c + (m0 + i) * g->ldc + n0 + j, g->ldc,
                           bias_row, bias_col, &ep, flags);
            }
        }
        k0 += kb;
    } while (k0 < k);
}

void oq_f32_gemm_run(const oq_f32_gemm_variant *v, const oq_f32_gemm_args *g, void *ws, oq_threadpool *tp)
{
    if (g->batch == 0 || g->m == 0 || g->n == 0)
        return;
    size_t n_threads = (size_t)oq_threadpool_size(tp);
    job jb = {v, g, make_plan(v, g, n_threads), NULL, NULL, NULL};
    float *w = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    jb.shared_a = w;
    jb.shared_b = w + jb.p.shared_a;
    jb.ws = w + jb.p.shared_a + jb.p.shared_b;
    size_t pack_tasks = (jb.p.share_a ? g->batch * jb.p.nkb * jb.p.tm : 0) +
                        (jb.p.share_b ? g->batch * jb.p.nkb * jb.p.tn : 0);
    if (pack_tasks)
        oq_parallel_for(tp, pack_tasks, pack_shared, &jb);
    oq_parallel_for(tp, g->batch * jb.p.tm * jb.p.tn, run_tile, &jb);
}
