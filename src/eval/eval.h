/* eval: what the measuring commands (compare, eval, bench, debug) share —
 * streaming difference statistics and top-k accuracy (metrics.c, declared in
 * include/onnxq.h "evaluation"), latency percentiles and peak memory
 * (latency.c), the compare / accuracy / latency loops (run.c), and a small
 * JSON writer with the report header of docs/reports.md (report.c). Nothing
 * here knows the CLI. */
#ifndef OQ_EVAL_H
#define OQ_EVAL_H

#include "onnxq.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Public (include/onnxq.h, "evaluation"):
 *   oq_diff_stats + oq_diff_stats_init / _update / _sqnr_db / _cosine / ...
 *   oq_accuracy + oq_accuracy_init / _update
 *   oq_latency_stats + oq_latency_stats_compute
 *   oq_peak_rss_bytes, oq_peak_rss_reset
 * Internal helpers below. */

/* Adds n elements from plain float buffers: `samples` equal slices (1 when n
 * is not a multiple), and rows of row_len elements for the argmax
 * disagreement (row_len < 2: no class axis). oq_diff_stats_update calls it
 * with samples = dims[0] and row_len = last dim for tensors of rank >= 2. */
void oq_diff_stats_add_f32(oq_diff_stats *st, const float *ref, const float *test, int64_t n, int64_t samples,
                           int64_t row_len);

/* ---- measuring loops (run.c) ---- */

/* Where a measuring run gets its batches: next() gives one tensor per session
 * input (valid until the next call; *inputs NULL when done) and the labels of
 * the batch's samples (NULL when there are none). */
typedef struct oq_batch_source {
    oq_status (*next)(void *user, const oq_tensor *const **inputs, const int64_t **labels, size_t *n_labels);
    void *user;
    int64_t total; /* samples it will deliver (progress); <= 0 unknown */
} oq_batch_source;
/* A source reading a data reader (labels from oq_data_reader_labels). */
void oq_batch_source_reader(oq_batch_source *src, oq_data_reader *r);

typedef struct oq_compare_output {
    char *name;            /* the reference model's output name */
    oq_diff_stats diff;    /* reference vs test */
    oq_accuracy acc_ref, acc_test; /* top-1/top-5 against the labels */
    bool has_accuracy;     /* labels were given and the output has one row of class scores per label */
} oq_compare_output;

typedef struct oq_compare_result {
    size_t n_outputs;
    oq_compare_output *outputs;   /* in the reference model's output order */
    int64_t samples;              /* samples compared (first axis of the first input) */
    size_t runs;                  /* runs of each model */
    oq_latency_stats latency[2];  /* per run, ms: [0] reference, [1] test */
} oq_compare_result;

typedef struct oq_compare_options {
    const char *ref_name, *test_name; /* named in error messages (file names); NULL: generic */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
} oq_compare_options;

/* Runs ref and test on every batch of src — one untimed warm-up run each, then
 * interleaved timed runs (alternating which goes first) — and accumulates the
 * per-output difference statistics and, with labels, the accuracy of both. Test
 * outputs are matched to the reference by name, else by position. */
oq_status oq_compare_run(oq_session *ref, oq_session *test, const oq_batch_source *src,
                         const oq_compare_options *opt, oq_compare_result **out);
void oq_compare_result_destroy(oq_compare_result *r);

/* Scores output `output` of s against the labels of every batch of src; an
 * error when the data has no labels. name: the model in messages. */
oq_status oq_accuracy_run(oq_session *s, size_t output, const oq_batch_source *src, const char *name,
                          void (*progress)(void *user, int64_t done, int64_t total), void *progress_user,
                          oq_accuracy *acc);

/* warmup untimed runs then iters timed runs of s on the same inputs; times in ms. */
oq_status oq_bench_run(oq_session *s, const oq_tensor *const *in, size_t n_in, int warmup, int iters,
                       oq_latency_stats *out);

/* ---- JSON writer ----
 * Streams one JSON document to a FILE, pretty-printed with two-space
 * indentation; commas are placed automatically. Non-finite numbers are
 * written as null (docs/reports.md: a value that does not exist is null). */
#define OQ_JSON_MAX_DEPTH 32

typedef struct oq_json {
    FILE *f;
    int depth;
    bool has_items[OQ_JSON_MAX_DEPTH]; /* a member was written at this level */
    bool after_key;                    /* next value follows "key": */
    bool compact[OQ_JSON_MAX_DEPTH];   /* this container on one line */
} oq_json;

void oq_json_init(oq_json *j, FILE *f);
/* compact: the whole object/array on one line (small records such as latency_ms). */
void oq_json_begin_object(oq_json *j, bool compact);
void oq_json_end_object(oq_json *j);
void oq_json_begin_array(oq_json *j, bool compact);
void oq_json_end_array(oq_json *j);
void oq_json_key(oq_json *j, const char *key);
void oq_json_string(oq_json *j, const char *s); /* NULL → null */
void oq_json_number(oq_json *j, double v);      /* NaN / ±inf → null */
void oq_json_int(oq_json *j, int64_t v);
void oq_json_bool(oq_json *j, bool v);
void oq_json_null(oq_json *j);
/* key + value shorthands */
void oq_json_kv_string(oq_json *j, const char *key, const char *s);
void oq_json_kv_number(oq_json *j, const char *key, double v);
void oq_json_kv_int(oq_json *j, const char *key, int64_t v);
void oq_json_kv_bool(oq_json *j, const char *key, bool v);
/* "latency_ms": {"median":…, "p10":…, "p90":…[, "mean":…]} */
void oq_json_kv_latency(oq_json *j, const char *key, const oq_latency_stats *lat, bool with_mean);

/* Writes the common header members of docs/reports.md into the open
 * top-level object: onnxq_report, kind, label, onnxq_version, created (UTC,
 * ISO 8601), machine {isa, threads, cores}. threads: threads the sessions use. */
void oq_report_header(oq_json *j, const char *kind, const char *label, const char *version, int threads);

/* Opens path for writing a report; error names the file. */
oq_status oq_report_open(const char *path, FILE **out);
/* Closes it, reporting a write error (disk full) with the file name. */
oq_status oq_report_close(FILE *f, const char *path);

/* Operators that only move or select values (their quantized output shares the input's range). */
bool oq_op_moves_data(const char *op);

#endif
