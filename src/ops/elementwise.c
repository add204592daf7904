/* ops/elementwise: binary and n-ary operators with numpy broadcasting (Add … Pow,
 * comparisons, logic, bit operations, PRelu, variadic Sum/Mean/Max/Min, Where).
 * Shapes are coalesced into rows of a contiguous inner loop; rows are split over the pool. */
#include "ops/elementwise.h"
#include "kernels/f32-vbinary/vbinary.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

/* ---- parallel range helper (shared with unary/reduce/norm) ---- */

typedef struct range_job {
    oq_ew_range_fn fn;
    void *ctx;
    size_t total, chunk;
} range_job;

static void range_task(void *vctx, size_t task, size_t thread)
{
    (void)thread;
    range_job *j = vctx;
    size_t s = task * j->chunk, e = s + j->chunk;
    j->fn(j->ctx, s, e < j->total ? e : j->total);
}

void oq_ew_parallel(oq_threadpool *tp, size_t total, size_t serial_below, size_t align, oq_ew_range_fn fn, void *ctx)
{
    if (total == 0)
        return;
    int nt = oq_threadpool_size(tp);
    if (nt <= 1 || total < serial_below) {
        fn(ctx, 0, total);
        return;
    }
    if (align == 0)
        align = 1;
    size_t tasks = (size_t)nt * 4;
    size_t chunk = (total + tasks - 1) / tasks;
    chunk = (chunk + align - 1) / align * align;
    range_job j = {fn, ctx, total, chunk};
    oq_parallel_for(tp, (total + chunk - 1) / chunk, range_task, &j);
}

/* ---- kernels: o[i] = op(a[i or 0], b[i or 0]); mode 0 both vectors, 1 a scalar, 2 b scalar ---- */

typedef void (*bin_fn)(const void *a, const void *b, void *o, size_t n, int mode);

#define DEF_BIN(fname, TA, TO, EXPR)                                          \
    static void fname(const void *va, const void *vb, void *vo, size_t n, int mode) \
    {                                                                         \
        const TA *restrict a = va;                                            \
        const TA *restrict b = vb;                                            \
        TO *restrict o = vo;                                                  \
        if (mode == 0) {                                                      \
            OQ_EW_BLOCKED(n, TA x = a[i]; TA y = b[i]; o[i] = (TO)(EXPR));    \
        } else if (mode == 1) {                                               \
            const TA x = a[0];                                                \
            OQ_EW_BLOCKED(n, TA y = b[i]; o[i] = (TO)(EXPR));                 \
        } else {                                                              \
            const TA y = b[0];                                                \
            OQ_EW_BLOCKED(n, TA x = a[i]; o[i] = (TO)(EXPR));                 \
        }                                                                     \
    }

/* x < 0 without -Wtype-limits noise for unsigned types. */
static inline bool neg_never(uint64_t v) { (void)v; return false; }
static inline bool neg_i64(int64_t v) { return v < 0; }
static inline bool neg_f64(double v) { return v < 0; }
#define IS_NEG(x, sg)                                                                                       \
    _Generic((x), uint8_t: neg_never, uint16_t: neg_never, uint32_t: neg_never, uint64_t: neg_never,        \
             float: neg_f64, double: neg_f64, default: neg_i64)(x)

/* Integer arithmetic wraps through the unsigned type (signed overflow is undefined in C). */
#define ARITH_KERNELS(DT, T, U, S, SG)                                                          \
    DEF_BIN(add_##S, T, T, (U)x + (U)y)                                                         \
    DEF_BIN(sub_##S, T, T, (U)x - (U)y)                                                         \
    DEF_BIN(mul_##S, T, T, 1u * (U)x * (U)y)                                                         \
    DEF_BIN(max_##S, T, T, x > y ? x : y)                                                       \
    DEF_BIN(min_##S, T, T, x < y ? x : y)                                                       \
    DEF_BIN(eq_##S, T, uint8_t, x == y)                                                         \
    DEF_BIN(gt_##S, T, uint8_t, x > y)                                                          \
    DEF_BIN(ge_##S, T, uint8_t, x >= y)                                                         \
    DEF_BIN(lt_##S, T, uint8_t, x < y)                                                          \
    DEF_BIN(le_##S, T, uint8_t, x <= y)                                                         \
    DEF_BIN(prelu_##S, T, T, IS_NEG(x, SG) ? 1u * (U)x * (U)y : (U)x)
OQ_EW_NUMERIC_TYPES(ARITH_KERNELS)

#define FLOAT_KERNELS(DT, T, U, S, SG)                                                                       \
    DEF_BIN(div_##S, T, T, x / y)                                                                            \
    DEF_BIN(fmod_##S, T, T, fmod(x, y))                                                                      \
    DEF_BIN(mod_##S, T, T, (fmod(x, y) != 0 && ((fmod(x, y) < 0) != (y < 0))) ? fmod(x, y) + y : fmod(x, y))
OQ_EW_FLOAT_TYPES(FLOAT_KERNELS)

/* Division by zero gives 0 and INT_MIN / -1 wraps, instead of trapping. */
#define INT_KERNELS(DT, T, U, S, SG)                                                                     \
    DEF_BIN(div_##S, T, T, y == 0 ? 0 : (SG && y == (T)-1) ? (T)(0 - (U)x) : x / y)                     \
    DEF_BIN(fmod_##S, T, T, y == 0 ? 0 : (SG && y == (T)-1) ? 0 : x % y)                                \
    DEF_BIN(mod_##S, T, T,                                                                               \
            y == 0 ? 0 : (SG && y == (T)-1) ? 0 : ((x % y != 0) && (IS_NEG(x % y, SG) != IS_NEG(y, SG))) ? x % y + y : x % y) \
    DEF_BIN(band_##S, T, T, x & y)                                                                       \
    DEF_BIN(bor_##S, T, T, x | y)                                                                        \
    DEF_BIN(bxor_##S, T, T, x ^ y)                                                                       \
    DEF_BIN(shl_##S, T, T, (U)y >= sizeof(T) * 8 ? 0 : (T)((1u * (U)x) << (U)y))                               \
    DEF_BIN(shr_##S, T, T, (U)y >= sizeof(T) * 8 ? 0 : (T)((U)x >> (U)y))
OQ_EW_INT_TYPES(INT_KERNELS)

DEF_BIN(and_b, uint8_t, uint8_t, (x != 0) & (y != 0))
DEF_BIN(or_b, uint8_t, uint8_t, (x != 0) | (y != 0))
DEF_BIN(xor_b, uint8_t, uint8_t, (x != 0) ^ (y != 0))
DEF_BIN(eq_b, uint8_t, uint8_t, (x != 0) == (y != 0))

/* Pow with a float base and float exponent; the common exponents get exact shortcuts. */
static void pow_f32(const void *va, const void *vb, void *vo, size_t n, int mode)
{
    const float *restrict a = va;
    const float *restrict b = vb;
    float *restrict o = vo;
    if (mode == 2) {
        float y = b[0];
        if (y == 2.0f)
            OQ_EW_BLOCKED(n, o[i] = a[i] * a[i]);
        else if (y == 1.0f)
            OQ_EW_BLOCKED(n, o[i] = a[i]);
        else if (y == 3.0f)
            OQ_EW_BLOCKED(n, o[i] = a[i] * a[i] * a[i]);
        else if (y == 0.5f)
            for (size_t i = 0; i < n; i++)
                o[i] = sqrtf(a[i]);
        else
            for (size_t i = 0; i < n; i++)
                o[i] = powf(a[i], y);
    } else if (mode == 1) {
        for (size_t i = 0; i < n; i++)
            o[i] = powf(a[0], b[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            o[i] = powf(a[i], b[i]);
    }
}

static void pow_f64(const void *va, const void *vb, void *vo, size_t n, int mode)
{
    const double *a = va, *b = vb;
    double *o = vo;
    for (size_t i = 0; i < n; i++)
        o[i] = pow(a[mode == 1 ? 0 : i], b[mode == 2 ? 0 : i]);
}

/* ---- operator table ---- */

typedef enum bin_op {
    B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_FMOD, B_MAX, B_MIN, B_EQ, B_GT, B_GE, B_LT, B_LE,
    B_AND, B_OR, B_XOR, B_BAND, B_BOR, B_BXOR, B_SHL, B_SHR, B_PRELU, B_COUNT
} bin_op;

static bin_fn bin_table[B_COUNT][OQ_DTYPE_COUNT];

static bool is_compare(bin_op op) { return op >= B_EQ && op <= B_LE; }

static void table_init(void)
{
#define REG_ARITH(DT, T, U, S, SG)                                                                        \
    bin_table[B_ADD][DT] = add_##S, bin_table[B_SUB][DT] = sub_##S, bin_table[B_MUL][DT] = mul_##S;         \
    bin_table[B_MAX][DT] = max_##S, bin_table[B_MIN][DT] = min_##S, bin_table[B_EQ][DT] = eq_##S;           \
    bin_table[B_GT][DT] = gt_##S, bin_table[B_GE][DT] = ge_##S, bin_table[B_LT][DT] = lt_##S;               \
    bin_table[B_LE][DT] = le_##S, bin_table[B_PRELU][DT] = prelu_##S, bin_table[B_DIV][DT] = div_##S;       \
    bin_table[B_MOD][DT] = mod_##S, bin_table[B_FMOD][DT] = fmod_##S;
    OQ_EW_NUMERIC_TYPES(REG_ARITH)
#define REG_INT(DT, T, U, S, SG)                                                                          \
    bin_table[B_BAND][DT] = band_##S, bin_table[B_BOR][DT] = bor_##S, bin_table[B_BXOR][DT] = bxor_##S;     \
    bin_table[B_SHL][DT] = shl_##S, bin_table[B_SHR][DT] = shr_##S;
    OQ_EW_INT_TYPES(REG_INT)
    bin_table[B_AND][OQ_BOOL] = and_b;
    bin_table[B_OR][OQ_BOOL] = or_b;
    bin_table[B_XOR][OQ_BOOL] = xor_b;
    bin_table[B_EQ][OQ_BOOL] = eq_b;
    bin_table[B_POW][OQ_FLOAT] = pow_f32;
    /* float arithmetic: the widest SIMD variant the CPU runs */
    const oq_f32_vbinary_table *vb = oq_f32_vbinary();
    bin_table[B_ADD][OQ_FLOAT] = vb->add;
    bin_table[B_SUB][OQ_FLOAT] = vb->sub;
    bin_table[B_MUL][OQ_FLOAT] = vb->mul;
    bin_table[B_DIV][OQ_FLOAT] = vb->div;
    bin_table[B_MAX][OQ_FLOAT] = vb->max;
    bin_table[B_MIN][OQ_FLOAT] = vb->min;
    bin_table[B_POW][OQ_DOUBLE] = pow_f64;
}

static bin_fn bin_lookup(bin_op op, oq_dtype t)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, table_init);
    if (oq_ew_is_half(t)) /* computed in float, converted around the kernel */
        t = OQ_FLOAT;
    return (unsigned)t < OQ_DTYPE_COUNT ? bin_table[op][t] : NULL;
}

/* ---- broadcasting plan ---- */

#define MAX_IN 3

typedef struct bcast {
    int nd, n_in;
    int64_t dims[OQ_MAX_DIMS];
    int64_t str[MAX_IN][OQ_MAX_DIMS]; /* element strides, 0 where broadcast */
    size_t inner, total;
} bcast;

/* Drops size-1 output dims and merges neighbours that are contiguous for every input. */
static void bcast_plan(bcast *bc, int nout, const int64_t *out, int n_in, const oq_tensor *const *in)
{
    int64_t str[MAX_IN][OQ_MAX_DIMS];
    for (int k = 0; k < n_in; k++) {
        const oq_tensor *t = in[k];
        int off = nout - t->ndim;
        int64_t s = 1;
        for (int d = nout - 1; d >= 0; d--) {
            int64_t dim = d >= off ? t->dims[d - off] : 1;
            str[k][d] = (dim == 1) ? 0 : s;
            s *= dim;
        }
    }
    bc->n_in = n_in;
    bc->nd = 0;
    bc->total = 1;
    for (int d = 0; d < nout; d++) {
        bc->total *= (size_t)out[d];
        if (out[d] == 1)
            continue;
        int m = bc->nd;
        bool merge = m > 0;
        for (int k = 0; k < n_in && merge; k++)
            merge = bc->str[k][m - 1] == str[k][d] * out[d];
        if (merge) {
            bc->dims[m - 1] *= out[d];
            for (int k = 0; k < n_in; k++)
                bc->str[k][m - 1] = str[k][d];
        } else {
            bc->dims[m] = out[d];
            for (int k = 0; k < n_in; k++)
                bc->str[k][m] = str[k][d];
            bc->nd++;
        }
    }
    if (bc->nd == 0) {
        bc->nd = 1;
        bc->dims[0] = 1;
        for (int k = 0; k < n_in; k++)
            bc->str[k][0] = 0;
    }
    bc->inner = (size_t)bc->dims[bc->nd - 1];
}

/* Offsets of each input at the start of output row r. */
static void bcast_row(const bcast *bc, size_t r, size_t *off)
{
    for (int k = 0; k < bc->n_in; k++)
        off[k] = 0;
    for (int d = bc->nd - 2; d >= 0; d--) {
        size_t c = r % (size_t)bc->dims[d];
        r /= (size_t)bc->dims[d];
        for (int k = 0; k < bc->n_in; k++)
            off[k] += c * (size_t)bc->str[k][d];
    }
}

typedef struct bin_job {
    bcast bc;
    bin_fn fn;
    const char *a, *b;
    char *o;
    size_t esa, eso; /* element sizes of the inputs and of the output */
    oq_dtype half;   /* OQ_FLOAT16/OQ_BFLOAT16 when converting around a float kernel, else 0 */
    bool out_half;
} bin_job;

static inline float half_ld(oq_dtype t, uint16_t h) { return t == OQ_FLOAT16 ? oq_half_to_float(h) : oq_bf16_to_float(h); }
static inline uint16_t half_st(oq_dtype t, float f) { return t == OQ_FLOAT16 ? oq_float_to_half(f) : oq_float_to_bf16(f); }

static void bin_half_call(const bin_job *j, const uint16_t *a, const uint16_t *b, void *o, size_t n, int mode)
{
    float fa[256], fb[256], fo[256];
    for (size_t s = 0; s < n; s += 256) {
        size_t m = n - s < 256 ? n - s : 256;
        for (size_t i = 0; i < m; i++) {
            fa[i] = half_ld(j->half, a[mode == 1 ? 0 : s + i]);
            fb[i] = half_ld(j->half, b[mode == 2 ? 0 : s + i]);
        }
        if (j->out_half) {
            j->fn(fa, fb, fo, m, 0);
            for (size_t i = 0; i < m; i++)
                ((uint16_t *)o)[s + i] = half_st(j->half, fo[i]);
        } else {
            j->fn(fa, fb, (char *)o + s * j->eso, m, 0);
        }
    }
}

static void bin_range(void *ctx, size_t s, size_t e)
{
    const bin_job *j = ctx;
    const bcast *bc = &j->bc;
    size_t inner = bc->inner, r = s / inner, c = s % inner;
    int mode = bc->str[0][bc->nd - 1] == 0 ? 1 : bc->str[1][bc->nd - 1] == 0 ? 2 : 0;
    /* both operands constant along the row: out is wider than either (a variadic Max/Min/Sum
     * folds its inputs pairwise into the shape of all of them) */
    bool both = bc->str[0][bc->nd - 1] == 0 && bc->str[1][bc->nd - 1] == 0;
    size_t off[MAX_IN];
    while (s < e) {
        size_t len = inner - c < e - s ? inner - c : e - s;
        bcast_row(bc, r, off);
        const char *pa = j->a + (off[0] + (mode == 1 ? 0 : c)) * j->esa;
        const char *pb = j->b + (off[1] + (mode == 2 || both ? 0 : c)) * j->esa;
        char *po = j->o + s * j->eso;
        if (both) {
            if (j->half)
                bin_half_call(j, (const uint16_t *)pa, (const uint16_t *)pb, po, 1, 0);
            else
                j->fn(pa, pb, po, 1, 0);
            for (size_t i = 1; i < len; i++)
                memcpy(po + i * j->eso, po, j->eso);
        } else if (j->half)
            bin_half_call(j, (const uint16_t *)pa, (const uint16_t *)pb, po, len, mode);
        else
            j->fn(pa, pb, po, len, mode);
        s += len;
        c = 0;
        r++;
    }
}

/* out = a op b with broadcasting; out already has the broadcast shape and its data. */
static oq_status bin_apply(oq_op_node *n, bin_op op, const oq_tensor *a, const oq_tensor *b, oq_tensor *out)
{
    bin_fn fn = bin_lookup(op, a->dtype);
    if (!fn)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "type %s is not supported", oq_dtype_name(a->dtype));
    bin_job j;
    const oq_tensor *ins[2] = {a, b};
    bcast_plan(&j.bc, out->ndim, out->dims, 2, ins);
    if (j.bc.total == 0)
        return OQ_OK;
    j.fn = fn;
    j.a = a->data;
    j.b = b->data;
    j.o = out->data;
    j.esa = oq_dtype_size(a->dtype);
    j.eso = oq_dtype_size(out->dtype);
    j.half = oq_ew_is_half(a->dtype) ? a->dtype : OQ_UNDEFINED;
    j.out_half = !is_compare(op);
    oq_ew_parallel(n->tp, j.bc.total, 1 << 17, 64, bin_range, &j);
    return OQ_OK;
}

/* ---- Pow with mixed types (opset 12+): through double ---- */

typedef struct pow_job {
    bcast bc;
    const oq_tensor *a, *b;
    oq_tensor *o;
} pow_job;

static void pow_mixed_range(void *ctx, size_t s, size_t e)
{
    const pow_job *j = ctx;
    size_t off[MAX_IN];
    size_t inner = j->bc.inner;
    int64_t sa = j->bc.str[0][j->bc.nd - 1], sb = j->bc.str[1][j->bc.nd - 1];
    bool int_out = oq_ew_is_int(j->o->dtype);
    for (size_t r = s / inner; r * inner < e; r++) {
        bcast_row(&j->bc, r, off);
        size_t c0 = r * inner < s ? s - r * inner : 0, c1 = (r + 1) * inner > e ? e - r * inner : inner;
        for (size_t c = c0; c < c1; c++) {
            double x = oq_ew_load(j->a->data, j->a->dtype, off[0] + c * (size_t)sa);
            double y = oq_ew_load(j->b->data, j->b->dtype, off[1] + c * (size_t)sb);
            double v = pow(x, y);
            oq_ew_store(j->o->data, j->o->dtype, r * inner + c, int_out ? round(v) : v);
        }
    }
}

/* ---- operator entry points ---- */

static oq_status infer_broadcast(oq_op_node *n, const oq_tensor *const *in, size_t n_in, oq_dtype dt, oq_tensor *out)
{
    int nd = 0;
    int64_t dims[OQ_MAX_DIMS];
    for (size_t k = 0; k < n_in; k++) {
        if (!in[k])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", k);
        if (k == 0) {
            nd = in[0]->ndim;
            memcpy(dims, in[0]->dims, sizeof(int64_t) * (size_t)nd);
            continue;
        }
        int64_t tmp[OQ_MAX_DIMS];
        int nt;
        if (in[k]->ndim > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_SHAPE, "input %zu has too many dimensions", k);
        oq_status st = oq_broadcast_shape(n, nd, dims, in[k]->ndim, in[k]->dims, &nt, tmp);
        if (st != OQ_OK)
            return st;
        nd = nt;
        memcpy(dims, tmp, sizeof(int64_t) * (size_t)nd);
    }
    oq_set_shape(out, dt, nd, dims);
    return OQ_OK;
}

static bin_op node_op(oq_op_node *n, bin_op op)
{
    if (op == B_MOD && oq_node_attr_int(n->node, "fmod", 0))
        return B_FMOD;
    if (op == B_SHL && strcmp(oq_node_attr_string(n->node, "direction", ""), "RIGHT") == 0)
        return B_SHR;
    return op;
}

static oq_status bin_check(oq_op_node *n, const oq_tensor *const *in, bin_op op)
{
    if (n->n_inputs != 2 || !in[0] || !in[1])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 2 inputs, got %zu", n->n_inputs);
    if (op != B_POW && in[0]->dtype != in[1]->dtype)
        return oq_op_error(n, OQ_E_TYPE, "input types differ (%s and %s)", oq_dtype_name(in[0]->dtype),
                           oq_dtype_name(in[1]->dtype));
    if (op == B_SHL) {
        const char *d = oq_node_attr_string(n->node, "direction", "");
        if (strcmp(d, "LEFT") && strcmp(d, "RIGHT"))
            return oq_op_error(n, OQ_E_INVALID_ARG, "direction must be LEFT or RIGHT, got '%s'", d);
    }
    if (op == B_POW) {
        bool ok_a = oq_ew_is_float(in[0]->dtype) || oq_ew_is_int(in[0]->dtype);
        bool ok_b = oq_ew_is_float(in[1]->dtype) || oq_ew_is_int(in[1]->dtype);
        if (!ok_a || !ok_b)
            return oq_op_error(n, OQ_E_TYPE, "unsupported types %s ^ %s", oq_dtype_name(in[0]->dtype),
                               oq_dtype_name(in[1]->dtype));
        return OQ_OK;
    }
    if (!bin_lookup(node_op(n, op), in[0]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    return OQ_OK;
}

static oq_status bin_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bin_op op)
{
    oq_status st = bin_check(n, in, op);
    if (st != OQ_OK)
        return st;
    return infer_broadcast(n, in, 2, is_compare(op) ? OQ_BOOL : in[0]->dtype, out[0]);
}

static oq_status bin_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bin_op op)
{
    op = node_op(n, op);
    if (op == B_POW && (in[0]->dtype != in[1]->dtype || !bin_lookup(B_POW, in[0]->dtype))) {
        pow_job j = {.a = in[0], .b = in[1], .o = out[0]};
        const oq_tensor *ins[2] = {in[0], in[1]};
        bcast_plan(&j.bc, out[0]->ndim, out[0]->dims, 2, ins);
        oq_ew_parallel(n->tp, j.bc.total, 1 << 14, 64, pow_mixed_range, &j);
        return OQ_OK;
    }
    return bin_apply(n, op, in[0], in[1], out[0]);
}

#define BIN_OP(impl, OP)                                                                           \
    static oq_status infer_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out) \
    {                                                                                              \
        return bin_infer(n, in, out, OP);                                                          \
    }                                                                                              \
    static oq_status run_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)  \
    {                                                                                              \
        return bin_run(n, in, out, OP);                                                            \
    }                                                                                              \
    const oq_op_def oq_op_##impl = {NULL, infer_##impl, run_##impl, NULL};

BIN_OP(add, B_ADD)
BIN_OP(sub, B_SUB)
BIN_OP(mul, B_MUL)
BIN_OP(div, B_DIV)
BIN_OP(pow, B_POW)
BIN_OP(mod, B_MOD)
BIN_OP(equal, B_EQ)
BIN_OP(greater, B_GT)
BIN_OP(greater_or_equal, B_GE)
BIN_OP(less, B_LT)
BIN_OP(less_or_equal, B_LE)
BIN_OP(and, B_AND)
BIN_OP(or, B_OR)
BIN_OP(xor, B_XOR)
BIN_OP(bitwise_and, B_BAND)
BIN_OP(bitwise_or, B_BOR)
BIN_OP(bitwise_xor, B_BXOR)
BIN_OP(bit_shift, B_SHL)
BIN_OP(prelu, B_PRELU)

/* ---- variadic Sum / Mean / Max / Min ---- */

typedef struct copy_job {
    bcast bc;
    const char *src;
    char *dst;
    size_t es;
} copy_job;

static void copy_range(void *ctx, size_t s, size_t e)
{
    const copy_job *j = ctx;
    size_t off[MAX_IN], inner = j->bc.inner;
    bool scalar = j->bc.str[0][j->bc.nd - 1] == 0;
    for (size_t r = s / inner; r * inner < e; r++) {
        bcast_row(&j->bc, r, off);
        size_t c0 = r * inner < s ? s - r * inner : 0, c1 = (r + 1) * inner > e ? e - r * inner : inner;
        char *d = j->dst + (r * inner + c0) * j->es;
        if (!scalar) {
            memcpy(d, j->src + (off[0] + c0) * j->es, (c1 - c0) * j->es);
        } else {
            const char *v = j->src + off[0] * j->es;
            for (size_t c = c0; c < c1; c++, d += j->es)
                memcpy(d, v, j->es);
        }
    }
}

/* Copies src broadcast to the shape of dst. */
static void broadcast_copy(oq_op_node *n, const oq_tensor *src, oq_tensor *dst)
{
    copy_job j = {.src = src->data, .dst = dst->data, .es = oq_dtype_size(src->dtype)};
    const oq_tensor *ins[1] = {src};
    bcast_plan(&j.bc, dst->ndim, dst->dims, 1, ins);
    oq_ew_parallel(n->tp, j.bc.total, 1 << 16, 64, copy_range, &j);
}

static oq_status var_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bin_op op, bool mean)
{
    if (n->n_inputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects at least one input");
    for (size_t k = 0; k < n->n_inputs; k++) {
        if (!in[k])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", k);
        if (in[k]->dtype != in[0]->dtype)
            return oq_op_error(n, OQ_E_TYPE, "input %zu has type %s, input 0 %s", k, oq_dtype_name(in[k]->dtype),
                               oq_dtype_name(in[0]->dtype));
    }
    if (!bin_lookup(op, in[0]->dtype) || (mean && !oq_ew_is_float(in[0]->dtype)))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    return infer_broadcast(n, in, n->n_inputs, in[0]->dtype, out[0]);
}

static oq_status var_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bin_op op, bool mean)
{
    oq_tensor *o = out[0];
    oq_status st = OQ_OK;
    if (n->n_inputs == 1)
        broadcast_copy(n, in[0], o);
    else
        st = bin_apply(n, op, in[0], in[1], o);
    for (size_t k = 2; k < n->n_inputs && st == OQ_OK; k++)
        st = bin_apply(n, op, o, in[k], o); /* o is the full shape: an in-place elementwise update */
    if (st != OQ_OK || !mean)
        return st;
    size_t cnt = (size_t)oq_tensor_numel(o);
    double inv = 1.0 / (double)n->n_inputs;
    for (size_t i = 0; i < cnt; i++)
        oq_ew_store(o->data, o->dtype, i, oq_ew_load(o->data, o->dtype, i) * inv);
    return OQ_OK;
}

#define VAR_OP(impl, OP, MEAN)                                                                     \
    static oq_status infer_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out) \
    {                                                                                              \
        return var_infer(n, in, out, OP, MEAN);                                                    \
    }                                                                                              \
    static oq_status run_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)  \
    {                                                                                              \
        return var_run(n, in, out, OP, MEAN);                                                      \
    }                                                                                              \
    const oq_op_def oq_op_##impl = {NULL, infer_##impl, run_##impl, NULL};

VAR_OP(sum, B_ADD, false)
VAR_OP(mean, B_ADD, true)
VAR_OP(max, B_MAX, false)
VAR_OP(min, B_MIN, false)

/* ---- Where ---- */

typedef struct where_job {
    bcast bc;
    const uint8_t *c;
    const char *x, *y;
    char *o;
    size_t es;
} where_job;

#define WHERE_LOOP(T)                                                          \
    do {                                                                       \
        const T *restrict x = (const T *)px, *restrict y = (const T *)py;      \
        T *restrict o = (T *)po;                                               \
        if (sc && sx && sy)                                                    \
            OQ_EW_BLOCKED(len, o[i] = c[i] ? x[i] : y[i]);                     \
        else                                                                   \
            for (size_t i = 0; i < len; i++)                                   \
                o[i] = c[i * sc] ? x[i * sx] : y[i * sy];                      \
    } while (0)

static void where_range(void *ctx, size_t s, size_t e)
{
    const where_job *j = ctx;
    size_t off[MAX_IN], inner = j->bc.inner;
    int nd = j->bc.nd;
    size_t sc = (size_t)j->bc.str[0][nd - 1], sx = (size_t)j->bc.str[1][nd - 1], sy = (size_t)j->bc.str[2][nd - 1];
    for (size_t r = s / inner; r * inner < e; r++) {
        bcast_row(&j->bc, r, off);
        size_t c0 = r * inner < s ? s - r * inner : 0, c1 = (r + 1) * inner > e ? e - r * inner : inner;
        size_t len = c1 - c0;
        const uint8_t *c = j->c + off[0] + c0 * sc;
        const char *px = j->x + (off[1] + c0 * sx) * j->es, *py = j->y + (off[2] + c0 * sy) * j->es;
        char *po = j->o + (r * inner + c0) * j->es;
        switch (j->es) {
        case 1: WHERE_LOOP(uint8_t); break;
        case 2: WHERE_LOOP(uint16_t); break;
        case 4: WHERE_LOOP(uint32_t); break;
        case 8: WHERE_LOOP(uint64_t); break;
        default:
            for (size_t i = 0; i < len; i++)
                memcpy(po + i * j->es, c[i * sc] ? px + i * sx * j->es : py + i * sy * j->es, j->es);
        }
    }
}

static oq_status where_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs != 3 || !in[0] || !in[1] || !in[2])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 3 inputs");
    if (in[0]->dtype != OQ_BOOL)
        return oq_op_error(n, OQ_E_TYPE, "condition must be bool, got %s", oq_dtype_name(in[0]->dtype));
    if (in[1]->dtype != in[2]->dtype)
        return oq_op_error(n, OQ_E_TYPE, "X and Y types differ (%s and %s)", oq_dtype_name(in[1]->dtype),
                           oq_dtype_name(in[2]->dtype));
    if (in[1]->dtype == OQ_STRING || oq_dtype_size(in[1]->dtype) == 0)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "type %s is not supported", oq_dtype_name(in[1]->dtype));
    return infer_broadcast(n, in, 3, in[1]->dtype, out[0]);
}

static oq_status where_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    where_job j = {.c = in[0]->data, .x = in[1]->data, .y = in[2]->data, .o = out[0]->data,
                   .es = oq_dtype_size(in[1]->dtype)};
    bcast_plan(&j.bc, out[0]->ndim, out[0]->dims, 3, in);
    oq_ew_parallel(n->tp, j.bc.total, 1 << 16, 64, where_range, &j);
    return OQ_OK;
}

const oq_op_def oq_op_where = {NULL, where_infer, where_run, NULL};
