/* quant: internal interfaces of the quantizer — a tiny JSON reader (rules and
 * calibration tables), observers, the calibration table, per-node rules,
 * quantization parameters, and the graph rewriters (static QDQ, QDQ→QOperator,
 * dynamic). The public entry points are in include/onnxq.h. */
#ifndef OQ_QUANT_H
#define OQ_QUANT_H

#include "ir/graph.h"
#include "passes/pass.h"

#include <stdio.h>

/* ---- JSON (json.c): a small DOM, enough for rules files and range tables ---- */
typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;
typedef struct json_value json_value;
struct json_value {
    json_type type;
    double num;       /* number, or bool as 0/1 */
    char *str;        /* string */
    char **keys;      /* object member names */
    json_value *items; /* array items / object member values */
    size_t n;
};
/* Parses text; errors name `what` (file name) and the line. */
oq_status json_parse(const char *text, size_t len, const char *what, json_value *out);
oq_status json_parse_file(const char *path, json_value *out);
void json_free(json_value *v);
const json_value *json_get(const json_value *obj, const char *key);
/* Writes s as a JSON string literal. */
void json_write_string(FILE *f, const char *s);

/* Samples the reader has handed out since open or rewind (data/reader.c). */
int64_t oq_data_reader_delivered(const oq_data_reader *r);

/* ---- observers (observer.c) ---- */
typedef struct oq_observer {
    oq_calib_method method;
    double min, max;        /* running min/max (or moving averages) */
    int64_t batches;
    /* histogram of |x| over [0, hmax); grows by doubling hmax (pairs of bins merge) */
    double *hist;
    int nbins;
    double hmax;
} oq_observer;
oq_status oq_observer_init(oq_observer *o, const oq_calib_options *opt);
void oq_observer_free(oq_observer *o);
void oq_observer_update(oq_observer *o, const float *x, size_t n, double ma_weight);
/* The range the method picks; min <= 0 <= max is not forced here. */
void oq_observer_range(const oq_observer *o, const oq_calib_options *opt, float *min, float *max);
/* Threshold selection on a histogram of |x| (exposed for tests). nq: quantized levels on [0, t]. */
double oq_hist_entropy_threshold(const double *hist, int nbins, double hmax, int nq);
double oq_hist_percentile_threshold(const double *hist, int nbins, double hmax, double percentile);
double oq_hist_mse_threshold(const double *hist, int nbins, double hmax, int nq);
/* The MSE threshold t for an asymmetric 8-bit range [-min(neg, t), t] (neg: how far the
 * tensor goes below 0; 0 for a non-negative one): the 255 steps cover only that range, so
 * HardSwish's [-0.375, t] is not charged a step of t/127 as a symmetric range would be. */
double oq_hist_mse_threshold_asym(const double *hist, int nbins, double hmax, double neg);

/* ---- calibration table (calibrate.c) ---- */
typedef struct calib_entry {
    char *name;
    float min, max;         /* range chosen by the method */
    float seen_min, seen_max; /* plain min/max over the data */
} calib_entry;
struct oq_calib_table {
    calib_entry *e;
    size_t n, cap;
    char *method;
    int64_t samples;
};
/* oq_calibrate on a model quant_prepare already prepared (preparation renames values, so it
 * must run once: the quantizer calibrates the very graph it then quantizes). rules: observe only
 * the tensors whose ranges that configuration quantizes (a Conv's output before a Relu folded
 * into it is not one of them, and the session may then fuse the two); NULL: every tensor any
 * configuration may need (`onnxq calibrate`, a table that serves many). */
struct quant_rules;
oq_status quant_calibrate_prepared(const oq_model *prep, const oq_calib_options *opt, const struct quant_rules *rules,
                                   oq_data_reader *data, oq_calib_table **out);
oq_status calib_table_add(oq_calib_table *t, const char *name, float min, float max, float smin, float smax);

/* ---- rules (rules.c): which nodes quantize and how ---- */
typedef struct quant_rule {
    int quantize;     /* 0: keep float */
    int per_channel;
    int reduce_range;
    const char *why;  /* reason when kept float */
} quant_rule;
typedef struct quant_rules quant_rules;
oq_status quant_rules_create(const oq_quant_options *opt, quant_rules **out);
void quant_rules_destroy(quant_rules *r);
/* The rule for node n: global settings, then op-type overrides, then name/pattern overrides. */
quant_rule quant_rules_for(const quant_rules *r, const oq_node *n);
/* Glob match with * and ?. */
bool quant_glob(const char *pattern, const char *s);
/* Operator types enabled (op_types option or the mode's default). */
bool quant_rules_op_enabled(const quant_rules *r, const char *op_type);

/* ---- quantization parameters (qparams.c) ---- */
typedef struct qparams {
    float scale;
    int32_t zero_point;
} qparams;
/* Activation parameters from a range: the range always includes 0, so that 0 is exact. */
qparams qparams_activation(float min, float max, oq_dtype type, int symmetric);
/* Quantizes a float weight [.. axis ..] per channel along axis (axis < 0: per tensor).
 * q: new tensor of type (OQ_INT8 symmetric, OQ_UINT8 asymmetric); scale/zp: new 1-D tensors (or scalars). */
oq_status quantize_weight(const oq_tensor *w, int axis, oq_dtype type, int reduce_range, oq_tensor **q,
                          oq_tensor **scale, oq_tensor **zp);
/* int32 bias with scale = x_scale * w_scale[c]. */
oq_status quantize_bias(const oq_tensor *b, float x_scale, const oq_tensor *w_scale, oq_tensor **q,
                        oq_tensor **scale);
/* Scalar helpers for new initializers. */
oq_status make_scalar_f32(float v, oq_tensor **out);
oq_status make_scalar_zp(int32_t v, oq_dtype type, oq_tensor **out);
/* SQNR in dB of the dequantized weight against the float one. */
double weight_sqnr(const oq_tensor *w, const oq_tensor *q, const oq_tensor *scale, const oq_tensor *zp, int axis);

/* ---- scopes (qgraph.c): a subgraph sees the names of its enclosing graphs (ONNX lexical scoping) ---- */
struct quant_ctx;
typedef struct quant_scope {
    const oq_graph *g;
    const struct quant_scope *up; /* the enclosing graph's scope; NULL for the main graph */
    const char *where;            /* "If_25.then_branch/" for messages; "" for the main graph */
} quant_scope;
/* The initializer `name` as g's nodes see it: g's own, else the nearest enclosing graph's. */
oq_tensor *quant_scope_initializer(const quant_scope *s, const char *name);
/* A name unused in s->g and in every enclosing graph (new subgraph values must not shadow
 * outer ones, and outer graphs must not later reuse them). Caller frees. */
char *qg_unique_name(const quant_scope *s, const char *base, const char *suffix);
/* Sorts g (s->g) with the names of its enclosing graphs visible. */
oq_status qg_toposort(oq_graph *g, const quant_scope *s);
/* Calls fn on g and then on every subgraph below it (depth first, parents first),
 * with q->where naming the subgraph for messages. */
typedef oq_status (*qg_graph_fn)(struct quant_ctx *q, oq_graph *g, const quant_scope *s);
oq_status qg_each_graph(struct quant_ctx *q, oq_graph *g, qg_graph_fn fn);
/* Initializer bytes of g and its subgraphs. */
int64_t qg_initializer_bytes_deep(const oq_graph *g);

/* ---- rewriters ---- */
typedef struct quant_ctx {
    const oq_quant_options *opt;
    const quant_rules *rules;
    const oq_calib_table *table;
    oq_model *m;
    /* report state */
    size_t n_quant_nodes, n_float_nodes;
    int64_t bytes_before, bytes_after;
    char *float_why;   /* "name (Op): reason; ..." for the totals, capped */
    size_t float_why_len, float_why_cap;
    const char *where;   /* the (sub)graph being rewritten, prefix of node labels in messages ("" or NULL: main) */
    size_t weights_done, weights_total; /* the [k/n] weight lines, over every graph */
    size_t qoperator_converted;
    const oq_strmap *shared_names; /* static: names defined in more than one graph */
} quant_ctx;
void quant_report(const quant_ctx *q, const char *fmt, ...) OQ_PRINTF(2, 3);
void quant_note_float(quant_ctx *q, const oq_node *n, const char *why);
/* count nodes kept float, described by one item of the totals line. */
void quant_note_float_group(quant_ctx *q, size_t count, const char *what);

/* Tensors the static quantizer wants ranges for (calibration observes them). Returns a
 * caller-freed array of names borrowed from g. all_ops: ignore rules (calibrate for every configuration). */
oq_status quant_static_tensors(const oq_graph *g, const quant_rules *rules, bool all_ops, const char ***names,
                               size_t *count);
/* The same inside g's If/Loop/Scan bodies (recursively; parents' types and initializers visible), except
 * names quant_static_tensors lists already. A body that does not run on the calibration data leaves its
 * tensors without a range: its nodes then stay float. */
oq_status quant_static_subgraph_tensors(const oq_graph *g, const char ***names, size_t *count);
oq_status quant_static_qdq(quant_ctx *q);
oq_status quant_qdq_to_qoperator(quant_ctx *q);

/* A set of names (copied). */
typedef struct quant_names {
    char **v;
    size_t n, cap;
    oq_strmap map;
} quant_names;
oq_status quant_names_add(quant_names *s, const char *name);
bool quant_names_has(const quant_names *s, const char *name);
void quant_names_free(quant_names *s);
/* Adds every value name of g and its subgraphs (inputs, outputs, initializers, node inputs and outputs). */
oq_status quant_names_of_graph(const oq_graph *g, quant_names *s);
/* The quantized model made small (compact.c): shared constants, short generated names; the names in keep
 * (the prepared float model's) stay. */
oq_status quant_compact(oq_model *m, const quant_names *keep);
oq_status quant_dynamic(quant_ctx *q);
/* ---- empirical bias correction (bias_correct.c) ---- */
/* Per-channel means of every Conv/Gemm output of the prepared float model over the data. */
typedef struct quant_bias_means quant_bias_means;
/* max_samples: the first samples of the data each pass reads (<= 0: all; whole batches). */
/* keep_model: a copy of prep stays with the means, for adaptive rounding in quant_bias_correct. */
oq_status quant_bias_float_means(const oq_model *prep, int threads, int64_t max_samples, oq_data_reader *data,
                                 bool keep_model, quant_bias_means **out);
void quant_bias_means_destroy(quant_bias_means *fm);
/* After quant_static_qdq: moves each int32 Conv/Gemm bias of q->m's main graph by the mean per channel of
 * (float output - quantized output) over the data, layer after layer in graph order. */
oq_status quant_bias_correct(quant_ctx *q, const quant_bias_means *fm, int threads, int64_t max_samples,
                             oq_data_reader *data);
/* The arithmetic, exposed for tests: sum[c] += every x[o, c, i] (x is outer x ch x inner); and
 * bias[c] += round(diff[c] / scale[c]) (scale scalar when nscale == 1), except where that is
 * not finite or more than 2^24 steps; returns the steps moved. */
void bc_accumulate(const float *x, int64_t outer, int64_t ch, int64_t inner, double *sum);
/* sumsq[c] += every x[o, c, i]^2. */
void bc_accumulate_sq(const float *x, int64_t outer, int64_t ch, int64_t inner, double *sumsq);
/* lo[c] = min(lo[c], every x[o, c, i]), hi[c] likewise the largest (NaN is skipped). */
void bc_range(const float *x, int64_t outer, int64_t ch, int64_t inner, double *lo, double *hi);
/* The range of each channel (axis 1) of each named value of m over the first max_samples samples
 * (<= 0: all): range[i] is a new array of nch[i] smallest values then nch[i] largest, or NULL (nch[i]
 * 0) when names[i] is not a float tensor of a fixed channel count; inner[i]: values per channel in one
 * sample (1: [N, C, 1, 1]). */
oq_status quant_channel_range(const oq_model *m, const char *const *names, size_t n, int threads,
                              int64_t max_samples, oq_data_reader *data, double **range, int64_t *nch,
                              int64_t *inner);

/* A private copy of m whose only outputs are the named values (and only what computes them runs), and a
 * session on it (the caller destroys both); the outputs' indices: quant_session_output_index. */
oq_status quant_exposed_session(const oq_model *m, const char *const *names, size_t n, int threads, oq_model **copy,
                                oq_session **session);
size_t quant_session_output_index(const oq_session *s, const char *name); /* SIZE_MAX: none */

/* ---- adaptive rounding of Conv weights (adaround.c), a step of bias correction ---- */
typedef struct ar_geom {
    int64_t cin, h, w, cout, group, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
} ar_geom;
/* A Conv's statistics over the data: per group the Gram matrix of its input patches (upper triangle)
 * and their sum, per output channel the sum of patch * float output and of the float output. */
typedef struct ar_stats {
    ar_geom g;
    int64_t k;        /* weights per output channel: cin / group * kh * kw */
    double *gram;     /* group x k x k */
    double *psum;     /* group x k */
    double *cross;    /* cout x k */
    double *ysum;     /* cout */
    double *patch;    /* scratch */
    int64_t n;        /* patches summed (per group) */
    int64_t step, counter; /* every step-th output position is summed (a cost budget) */
} ar_stats;
oq_status ar_stats_init(ar_stats *s, const ar_geom *g, int64_t expected_samples);
void ar_stats_free(ar_stats *s);
/* x: [batch, cin, h, w] as the quantized model feeds the Conv; y: [batch, cout, oh, ow] float output. */
void ar_stats_add(ar_stats *s, const float *x, const float *y, int64_t batch);
/* Whether the patches are enough for the weights per channel (else the rounding would fit the data). */
bool ar_enough(const ar_stats *s);
/* Rounds one output channel's weights w (k) to q in {floor, floor + 1}(w / scale) within [-qmax, qmax]:
 * greedy flips from round-to-nearest while they lower q'.cov.q scale^2 - 2 scale q'.c (cov: k x k
 * symmetric, centered; c: k). r: scratch of k. Returns the weights left away from nearest. */
int64_t ar_round_channel(const double *cov, const double *c, int64_t k, double scale, const float *w, int32_t qmax,
                         int8_t *q, double *r);
/* Every output channel of the layer (w: float weights [cout, k], q: int8 [cout, k] as nearest rounding
 * left them, each channel keeping its largest level); returns the weights moved. */
int64_t ar_round_layer(const ar_stats *s, const float *w, const float *scale, int64_t nscale, int8_t *q,
                       oq_status *st);
/* Adaptive rounding of the int8 Conv at node ni of qm (a QDQ model), against fmodel, the float model
 * whose Conv writes float_out; *moved: weights moved, -1 when the layer is left as it is (not a
 * 2-D Conv with symmetric int8 weights, too few patches). */
oq_status quant_adaround_conv(oq_model *qm, size_t ni, const oq_model *fmodel, const char *float_out, int threads,
                              int64_t max_samples, oq_data_reader *data, int64_t *moved);

/* ---- data-driven equalization (equalize_data.c) ---- */
/* Groups of values whose channel c can be divided by k_c where they are made (a Mul/Div by a constant,
 * a Conv's output, a squeeze-and-excitation gate) and multiplied back by the weights of the Convs
 * that read them, through Add/Sub/Mul/Div by constants, residual Adds, Relu and pooling; k from the
 * channels' ranges on the first max_samples samples of data against those weights. Same function;
 * the rescaled values get new names. *done: groups rescaled. */
oq_status quant_equalize_inputs(oq_model *m, int threads, int64_t max_samples, oq_data_reader *data, size_t *done);

/* ---- the record of rescaled values (rescaled.c) ---- */
/* Values to[i] = from[i] / divisor[c] along axis (ch channels), written to m's metadata; the
 * divisors must be bfloat16 values (quant_round_bf16), which the record holds exactly. */
oq_status quant_note_rescaled(oq_model *m, const char *const *from, const char *const *to, size_t n, int axis,
                              const double *divisor, int64_t ch);
/* x to the nearest bfloat16 value (8 significant bits, ties to even). */
double quant_round_bf16(double x);
typedef struct quant_rescaled {
    char *from, *to; /* to = from / divisor[c] along axis */
    int axis;
    int64_t ch;
    float *divisor;
} quant_rescaled;
/* Every rescaled value m's metadata records (malformed entries are skipped). */
oq_status quant_rescaled_read(const oq_model *m, quant_rescaled **out, size_t *n);
/* The recorded new names through rename(user, name), which gives the new name or NULL (unchanged). */
oq_status quant_rescaled_rename(oq_model *m, const char *(*rename)(void *user, const char *name), void *user);
void quant_rescaled_free(quant_rescaled *r, size_t n);
int64_t bc_shift_bias(int32_t *bias, const float *scale, int64_t nscale, const double *diff, int64_t nch);

/* The quantizer's preparation: clone, opset upgrade when needed, passes. */
oq_status quant_prepare(const oq_model *in, int run_passes, int64_t min_opset, oq_model **out,
                        void (*report)(void *, const char *), void *user);

/* ---- graph building helpers (qgraph.c) ---- */
/* (a node: oq_graph_add_node, passes/pass.h) */
/* (an integer attribute: oq_node_add_attr_int, passes/pass.h) */
oq_status qg_attr_float(oq_node *n, const char *name, float v);
/* Adds t under the name base+suffix made unique; *name receives the name (owned by g's tensor). */
oq_status qg_add_init(oq_graph *g, oq_tensor *t, const char *base, const char *suffix, const char **name);
/* Same, with the name also unused in the graphs enclosing g (s->g == g; s NULL: g alone). */
oq_status qg_add_init_in(oq_graph *g, const quant_scope *s, oq_tensor *t, const char *base, const char *suffix,
                         const char **name);
/* Copies attribute a onto n. */
oq_status qg_copy_attr(oq_node *n, const oq_attr *a);
oq_status qg_ensure_opset(oq_model *m, const char *domain, int64_t version);
size_t qg_initializer_index(const oq_graph *g, const char *name);
int64_t qg_initializer_bytes(const oq_graph *g);

#endif
