/* onnxq public API: load, save and run ONNX models on the CPU.
 * Every function returns an oq_status; on failure oq_last_error() holds a
 * message naming the file, node or tensor. Output parameters are written only on success. */
#ifndef ONNXQ_H
#define ONNXQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One list of status codes; numbers are stable. */
#define OQ_STATUS_LIST(X)                                   \
    X(OQ_OK, 0, "ok")                                      \
    X(OQ_E_INVALID_ARG, 1, "invalid argument")             \
    X(OQ_E_UNSUPPORTED, 2, "unsupported")                  \
    X(OQ_E_NOMEM, 3, "out of memory")                      \
    X(OQ_E_IO, 4, "input/output error")                    \
    X(OQ_E_PARSE, 5, "malformed model or data")            \
    X(OQ_E_SHAPE, 6, "shape mismatch")                     \
    X(OQ_E_TYPE, 7, "type mismatch")                       \
    X(OQ_E_GRAPH, 8, "invalid graph")                      \
    X(OQ_E_RUNTIME, 9, "runtime error")

typedef enum oq_status {
#define OQ_STATUS_ENUM(name, value, text) name = value,
    OQ_STATUS_LIST(OQ_STATUS_ENUM)
#undef OQ_STATUS_ENUM
} oq_status;

const char *oq_status_str(oq_status st);
/* Message of the last failure on this thread ("" if none). */
const char *oq_last_error(void);

typedef enum oq_log_level { OQ_LOG_ERROR = 0, OQ_LOG_WARN = 1, OQ_LOG_INFO = 2, OQ_LOG_DEBUG = 3 } oq_log_level;
typedef void (*oq_log_fn)(oq_log_level level, const char *msg, void *user);
/* Default: warnings and errors to stderr. NULL fn silences logging. */
void oq_set_log_callback(oq_log_fn fn, void *user, oq_log_level max_level);

/* Element types use the ONNX TensorProto numbers; never renumber. */
typedef enum oq_dtype {
    OQ_UNDEFINED = 0,
    OQ_FLOAT = 1,
    OQ_UINT8 = 2,
    OQ_INT8 = 3,
    OQ_UINT16 = 4,
    OQ_INT16 = 5,
    OQ_INT32 = 6,
    OQ_INT64 = 7,
    OQ_STRING = 8,
    OQ_BOOL = 9,
    OQ_FLOAT16 = 10,
    OQ_DOUBLE = 11,
    OQ_UINT32 = 12,
    OQ_UINT64 = 13,
    OQ_COMPLEX64 = 14,
    OQ_COMPLEX128 = 15,
    OQ_BFLOAT16 = 16,
    OQ_DTYPE_COUNT = 17
} oq_dtype;

const char *oq_dtype_name(oq_dtype t);
/* Bytes per element; 0 for undefined, string (strings are char* arrays) or unknown types. */
size_t oq_dtype_size(oq_dtype t);

#define OQ_MAX_DIMS 8

/* A dense tensor in C order. Strings are stored as an array of NUL-terminated char*. */
typedef struct oq_tensor {
    oq_dtype dtype;
    int ndim;
    int64_t dims[OQ_MAX_DIMS];
    void *data;
    size_t nbytes;      /* bytes of data in use */
    unsigned flags;     /* OQ_TENSOR_* */
    char *name;         /* may be NULL */
} oq_tensor;

#define OQ_TENSOR_OWNS_DATA 1u

/* New tensor with zeroed data owned by the tensor. */
oq_status oq_tensor_create(oq_dtype dtype, int ndim, const int64_t *dims, oq_tensor **out);
/* New tensor that points at caller memory (not freed by destroy). */
oq_status oq_tensor_wrap(oq_dtype dtype, int ndim, const int64_t *dims, void *data, oq_tensor **out);
void oq_tensor_destroy(oq_tensor *t);
int64_t oq_tensor_numel(const oq_tensor *t);

/* numpy .npy files: the interchange format for inputs and outputs. */
oq_status oq_npy_load(const char *path, oq_tensor **out);
oq_status oq_npy_save(const char *path, const oq_tensor *t);

/* ---- models ---- */
typedef struct oq_model oq_model;

typedef struct oq_load_options {
    int check_operators; /* nonzero: fail at load if an operator or opset is not implemented */
} oq_load_options;
oq_load_options oq_load_options_default(void);

oq_status oq_model_load(const char *path, const oq_load_options *opt, oq_model **out);
oq_status oq_model_load_memory(const void *data, size_t size, const char *name, const oq_load_options *opt,
                               oq_model **out);

typedef struct oq_save_options {
    /* Initializers at least this many bytes go to an external data file next to the model
     * (named <model file>.data); 0 keeps everything inline, which fails above 2 GB. */
    size_t external_threshold;
} oq_save_options;
oq_save_options oq_save_options_default(void);
oq_status oq_model_save(const oq_model *m, const char *path, const oq_save_options *opt);
void oq_model_destroy(oq_model *m);

/* Checks every node has an implementation for the model's opset; the error names the node. */
oq_status oq_model_check_supported(const oq_model *m);

/* Description of a model (for `onnxq info`). */
typedef struct oq_value_desc {
    const char *name;
    oq_dtype dtype;
    int ndim;                        /* -1: unknown rank */
    int64_t dims[OQ_MAX_DIMS];       /* -1: unknown or symbolic */
    const char *dim_params[OQ_MAX_DIMS]; /* symbolic names or NULL */
} oq_value_desc;

typedef struct oq_op_count {
    const char *domain;
    const char *op_type;
    size_t count;
} oq_op_count;

typedef struct oq_opset_desc {
    const char *domain;
    int64_t version;
} oq_opset_desc;

typedef struct oq_model_info {
    int64_t ir_version;
    const char *producer;
    const char *graph_name;
    size_t n_inputs, n_outputs, n_opsets, n_op_types, n_nodes;
    const oq_value_desc *inputs;     /* graph inputs that are not initializers */
    const oq_value_desc *outputs;
    const oq_opset_desc *opsets;
    const oq_op_count *op_types;     /* histogram, subgraphs included, sorted by count */
    size_t n_initializers;
    int64_t n_parameters;            /* elements over all initializers and Constant nodes */
    int64_t parameter_bytes;
    int is_quantized;                /* any QuantizeLinear, QLinear or Integer operator present */
    size_t n_quantized_nodes;
} oq_model_info;

oq_status oq_model_info_get(const oq_model *m, oq_model_info **out);
void oq_model_info_destroy(oq_model_info *info);

/* ---- sessions ---- */
typedef struct oq_session oq_session;

typedef struct oq_session_options {
    int threads;          /* 0: number of cores */
    int profile;          /* nonzero: collect per-node time */
    int emulate_qdq;      /* nonzero: do not fuse QDQ patterns into integer operators; a QDQ
                             model then runs int8 emulated in float (debug mode) */
} oq_session_options;
oq_session_options oq_session_options_default(void);

oq_status oq_session_create(const oq_model *m, const oq_session_options *opt, oq_session **out);
size_t oq_session_input_count(const oq_session *s);
size_t oq_session_output_count(const oq_session *s);
/* Descriptions of the graph's (non-initializer) inputs and outputs, valid while s lives. */
const oq_value_desc *oq_session_input(const oq_session *s, size_t i);
const oq_value_desc *oq_session_output(const oq_session *s, size_t i);
/* in[i] feeds input i (in graph order). out[i] receive new tensors owned by the caller. */
oq_status oq_session_run(oq_session *s, const oq_tensor *const *in, size_t n_in, oq_tensor **out, size_t n_out);
void oq_session_destroy(oq_session *s);

/* Per-node time of a session created with opt.profile set, summed over every run so far
 * (main graph; a node with subgraphs includes their time). */
typedef struct oq_node_profile {
    const char *name;    /* node name, or "<op_type>#<index>" when it has none */
    const char *op_type;
    double total_ms;
    int64_t runs;
} oq_node_profile;
/* *out: a caller-owned array (free with free()) valid while s lives; n nodes in execution order. */
oq_status oq_session_profile(const oq_session *s, oq_node_profile **out, size_t *n);

/* ==== quantization (src/quant, src/data/reader*.c) ======================== */

/* Calibration data: a stream of batches holding one tensor per model input.
 * Sources: a .npy file (single-input models), a .npz file with one array per
 * input name, a folder of such files (sorted by name), or a comma-separated
 * list of files. The first axis of every array is the sample axis; samples are
 * regrouped into batches that fit the model's input shape. Only one batch is
 * in memory at a time. */
typedef struct oq_data_reader oq_data_reader;

typedef struct oq_reader_options {
    size_t batch_size;  /* samples per batch when the model's batch dim is symbolic; 0: 32 */
    size_t max_samples; /* stop after this many samples; 0: all */
    const char *labels; /* .npy of integer class labels, one per sample (first axis), or NULL */
    /* Image folders: preprocessing spec, comma-separated key=value, e.g.
     * "resize=256,crop=224,order=rgb,layout=nchw,scale=255,mean=0.485:0.456:0.406,std=0.229:0.224:0.225".
     * NULL: resize/crop to the model's input size, rgb, layout from the model, scale 255, no mean/std. */
    const char *image_spec;
} oq_reader_options;
oq_reader_options oq_reader_options_default(void);

oq_status oq_data_reader_open(const char *source, const oq_model *m, const oq_reader_options *opt,
                              oq_data_reader **out);
/* *batch receives the reader's n_inputs tensors (model input order), valid
 * until the next call; NULL once the data is exhausted. */
oq_status oq_data_reader_next(oq_data_reader *r, const oq_tensor *const **batch);
oq_status oq_data_reader_rewind(oq_data_reader *r);
size_t oq_data_reader_input_count(const oq_data_reader *r);
/* Samples the reader will deliver in total (from the file headers, capped by max_samples). */
int64_t oq_data_reader_sample_count(const oq_data_reader *r);
/* Labels of the samples in the batch last returned by oq_data_reader_next: an image
 * folder labels each image by its subfolder (index in sorted subfolder order), other
 * sources take them from opt->labels. *labels is NULL (and *n 0) when the source has none. */
oq_status oq_data_reader_labels(const oq_data_reader *r, const int64_t **labels, size_t *n);
/* Class names of an image folder (sorted subfolder names); NULL when none. */
const char *oq_data_reader_class_name(const oq_data_reader *r, int64_t label);
void oq_data_reader_destroy(oq_data_reader *r);

/* Observers turn the activations seen during calibration into one range per tensor. */
typedef enum oq_calib_method {
    OQ_CALIB_MINMAX = 0,
    OQ_CALIB_MOVING_AVERAGE = 1, /* exponential moving average of per-batch min/max */
    OQ_CALIB_ENTROPY = 2,        /* histogram, threshold minimizing KL divergence */
    OQ_CALIB_PERCENTILE = 3,     /* histogram, |x| percentile */
    OQ_CALIB_MSE = 4             /* histogram, threshold minimizing expected squared error */
} oq_calib_method;

typedef struct oq_calib_options {
    oq_calib_method method;
    double percentile;     /* OQ_CALIB_PERCENTILE, in percent: 99.999 */
    double moving_average; /* OQ_CALIB_MOVING_AVERAGE: weight of the newest batch, 0.01 */
    int num_bins;          /* histogram methods: 2048 */
    int threads;           /* float session threads; 0: number of cores */
    /* Called with done = 0 when a pass over the data begins, then after every batch with the samples
     * seen so far and the total (-1: unknown). */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
} oq_calib_options;
oq_calib_options oq_calib_options_default(void);

/* Ranges per tensor name, for the model after the quantizer's preparation passes. */
typedef struct oq_calib_table oq_calib_table;

/* Runs the float model over the data and records the range of every activation
 * the quantizer may quantize. */
oq_status oq_calibrate(const oq_model *m, const oq_calib_options *opt, oq_data_reader *data, oq_calib_table **out);
oq_status oq_calib_table_save(const oq_calib_table *t, const char *path); /* JSON */
oq_status oq_calib_table_load(const char *path, oq_calib_table **out);
size_t oq_calib_table_count(const oq_calib_table *t);
/* Range of a tensor; returns 0 when the table has no entry for name. */
int oq_calib_table_get(const oq_calib_table *t, const char *name, float *min, float *max);
void oq_calib_table_destroy(oq_calib_table *t);

typedef enum oq_quant_mode { OQ_QUANT_STATIC = 0, OQ_QUANT_DYNAMIC = 1 } oq_quant_mode;
typedef enum oq_quant_format { OQ_QUANT_QDQ = 0, OQ_QUANT_QOPERATOR = 1 } oq_quant_format;
typedef enum oq_dynamic_form {
    OQ_DYNAMIC_FUSED = 0,        /* com.microsoft DynamicQuantizeMatMul */
    OQ_DYNAMIC_MATMULINTEGER = 1 /* DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul (-> Add) */
} oq_dynamic_form;

typedef struct oq_quant_options {
    oq_quant_mode mode;
    oq_quant_format format;        /* static only */
    oq_dynamic_form dynamic_form;  /* dynamic only */
    oq_dtype activation_type;      /* OQ_UINT8 (default) or OQ_INT8 */
    int activation_symmetric;      /* zero point 0, range symmetric around 0 */
    oq_dtype weight_type;          /* OQ_INT8 (symmetric, default) or OQ_UINT8 (asymmetric) */
    int per_channel;               /* weights per output channel/column (default 1) */
    int reduce_range;              /* 7-bit weights, for CPUs without VNNI */
    const char *op_types;          /* comma-separated operator types to quantize; NULL: the mode's default */
    const char *exclude;           /* comma-separated node names or glob patterns kept in float */
    const char *rules_path;        /* JSON per-node rules file, or NULL */
    const oq_calib_table *table;   /* static: ranges to use; NULL: calibrate on the reader given to oq_quantize */
    oq_calib_options calib;        /* static without table */
    int prepare;                   /* run the preparation passes first (default 1) */
    int bias_correction;           /* static with calibration data: correct each int8 Conv/Gemm's bias by its
                                      mean output error per channel on that data (default 1) */
    int64_t bias_correction_samples; /* samples each bias-correction pass reads, at most (one pass per
                                        layer; default 128, 0: all the calibration data) */
    int adaptive_rounding;         /* static with bias correction: each int8 Conv's weights are rounded up or
                                      down to lower its output error against the float model on the data
                                      (one more pass over it per Conv) instead of to the nearest level */
    int equalize_data;             /* static with calibration data: the input channels of Convs are
                                      balanced against their weights, from their ranges on the data,
                                      where the graph lets a per-channel scale in and out exactly (after
                                      a decomposed HardSwish, a linear bottleneck, a residual stream, a
                                      squeeze-and-excitation gate; same float function) (default 1) */
    int compact;                   /* one initializer per distinct scale/zero point, short generated names
                                      (default 1); the float model's names are kept either way */
    /* One line per quantized tensor as it goes, then the totals. NULL: silent. */
    void (*report)(void *user, const char *line);
    void *report_user;
} oq_quant_options;
oq_quant_options oq_quant_options_default(void);

/* Quantizes `in` into a new model. calib: data for static mode when opt->table
 * is NULL (ignored otherwise). */
oq_status oq_quantize(const oq_model *in, const oq_quant_options *opt, oq_data_reader *calib, oq_model **out);

/* Image models: makes the single float image input X a uint8 input (values 0-255, in the
 * spec's layout) and puts the normalization of `image_spec` (see oq_reader_options:
 * scale, mean, std, layout) into the graph as Cast -> [Transpose] -> Mul -> Add. Run it
 * before oq_quantize; calibration data then is uint8 images. Works on m in place: on
 * failure m is unusable (use a copy). */
oq_status oq_model_uint8_input(oq_model *m, const char *image_spec);

/* ==== end quantization ===================================================== */

/* ==== evaluation (src/eval) ================================================= */

/* Streaming difference between a reference (float model) and a test (quantized
 * model) output, accumulated over batches without keeping them. The first axis
 * is the sample axis (a rank-0/1 tensor is one sample); the class axis is the
 * last axis (rank >= 2 and last dim >= 2): one argmax per row. */
typedef struct oq_diff_stats {
    int64_t count;           /* elements compared */
    int64_t samples;         /* samples compared */
    double sum_abs_diff;     /* sum |ref - test| */
    double max_abs_diff;
    double sum_sample_max;   /* sum over samples of max |ref - test| within the sample */
    double sum_ref_sq, sum_test_sq, sum_err_sq, sum_dot; /* for SQNR and cosine */
    int64_t argmax_rows;     /* rows compared by argmax; 0: no class axis */
    int64_t argmax_disagree; /* rows whose argmax differs */
} oq_diff_stats;

void oq_diff_stats_init(oq_diff_stats *st);
/* Adds one batch. ref and test must have the same shape (OQ_E_SHAPE otherwise,
 * naming ref->name); any real dtype, read as double. */
oq_status oq_diff_stats_update(oq_diff_stats *st, const oq_tensor *ref, const oq_tensor *test);
/* Results; NaN when nothing was compared. */
double oq_diff_stats_mean_abs(const oq_diff_stats *st);
double oq_diff_stats_mean_sample_max(const oq_diff_stats *st);
/* 10*log10(sum ref^2 / sum err^2) in dB: +inf when the error is 0 (reports write null). */
double oq_diff_stats_sqnr_db(const oq_diff_stats *st);
/* dot(ref, test) / (|ref| |test|); 1 when both are all zeros, NaN when only one is. */
double oq_diff_stats_cosine(const oq_diff_stats *st);
/* Fraction of rows whose argmax differs; NaN when there is no class axis. */
double oq_diff_stats_argmax_disagreement(const oq_diff_stats *st);
/* Merges b into a (per-thread or per-file statistics). */
void oq_diff_stats_merge(oq_diff_stats *a, const oq_diff_stats *b);

/* Top-1 / top-k accuracy of class scores against integer labels. */
typedef struct oq_accuracy {
    int k;              /* the k of top-k (5 by default) */
    int64_t samples;
    int64_t top1_hits;
    int64_t topk_hits;  /* label among the k highest scores (ties: lower index first) */
} oq_accuracy;
void oq_accuracy_init(oq_accuracy *a, int k);
/* scores: rank >= 1 with the class axis last; one row per label (rows = numel / last
 * dim must equal n_labels, OQ_E_SHAPE otherwise). A label outside [0, classes) is a
 * miss, not an error. */
oq_status oq_accuracy_update(oq_accuracy *a, const oq_tensor *scores, const int64_t *labels, size_t n_labels);
double oq_accuracy_top1(const oq_accuracy *a); /* NaN when no samples */
double oq_accuracy_topk(const oq_accuracy *a);

/* Latency summary of n times (any unit, usually ms). Percentiles interpolate
 * linearly between order statistics (numpy's default). */
typedef struct oq_latency_stats {
    size_t n;
    double median, p10, p90, mean, min, max;
} oq_latency_stats;
oq_status oq_latency_stats_compute(const double *times, size_t n, oq_latency_stats *out);

/* Peak resident set size of the process in bytes (Linux VmHWM); -1 when unknown. */
int64_t oq_peak_rss_bytes(void);
/* Resets the peak to the current RSS (Linux: "5" into /proc/self/clear_refs).
 * Returns 1 when reset, 0 when the system does not allow it. */
int oq_peak_rss_reset(void);

/* ==== end evaluation ======================================================= */

/* ==== per-layer debugging (src/eval/debug.c) =============================== */

/* One quantized activation of a QDQ model (a QuantizeLinear on a float tensor)
 * matched to the same tensor of the float model it was made from. */
typedef struct oq_layer_report {
    char *tensor;          /* the tensor's name in the float model */
    char *node, *op_type;  /* the node writing it in the quantized model (name as --exclude takes it) */
    oq_diff_stats out;     /* quantized model vs float model at this tensor (earlier layers' error included) */
    oq_diff_stats own;     /* this layer alone: the float model's values of its inputs fed into the
                              layer's quantized pattern; count 0 when it could not run alone */
    double weight_sqnr_db; /* dequantized weights vs the float weights (after BatchNorm folding); NaN: none */
    int float_node;        /* the node reads no quantized input (it runs in float): `own` is the
                              quantization of its output, which excluding the node does not remove */
} oq_layer_report;

typedef struct oq_debug_options {
    int threads;  /* session threads; 0: one per core */
    int emulate;  /* run the quantized model int8 emulated in float (QDQ pairs kept) */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
} oq_debug_options;
oq_debug_options oq_debug_options_default(void);

/* Runs both models over the data and measures every matched layer; *out is sorted
 * worst first (lowest SQNR of `out`). Free with oq_layer_reports_destroy. */
oq_status oq_debug_layers(const oq_model *flt, const oq_model *quant, oq_data_reader *data,
                          const oq_debug_options *opt, oq_layer_report **out, size_t *n);
void oq_layer_reports_destroy(oq_layer_report *r, size_t n);

/* Quantize to an agreement target: static quantization with opt->table, then, while
 * the top-1 agreement with the float model on `data` is below target, keep one more
 * layer in float — the one adding the most error on its own (oq_debug_layers). */
typedef struct oq_target_options {
    double target;     /* top-1 agreement to reach, in (0, 1] */
    int max_excluded;  /* layers it may keep in float; 0: 16 */
    int threads;
    void (*report)(void *user, const char *line); /* one line per step, or NULL */
    void *report_user;
    /* Calibration data: each step then quantizes as oq_quantize does with it (bias correction and
     * the data-driven equalization included; ranges from opt->table when set, else calibrated on
     * it). NULL: opt->table alone, without those data steps. */
    oq_data_reader *calib;
} oq_target_options;
typedef struct oq_target_result {
    double agreement;  /* of the returned model */
    int reached;       /* agreement >= target */
    int steps;         /* layers kept in float by the search */
    char *excluded;    /* their node names, comma-separated (free()) */
} oq_target_result;
oq_status oq_quantize_to_target(const oq_model *in, const oq_quant_options *opt, const oq_target_options *t,
                                oq_data_reader *data, oq_model **out, oq_target_result *res);

/* ==== HTML report (src/eval/html.c) ======================================== */

/* Renders the JSON reports of docs/reports.md (any mix of compare, eval, bench and
 * debug) into one self-contained HTML page at out_path (tables and inline SVG bar
 * charts; no scripts, nothing fetched). out_path is written through a temporary file. */
oq_status oq_report_html(const char *const *paths, size_t n, const char *title, const char *out_path);

#ifdef __cplusplus
}
#endif
#endif
