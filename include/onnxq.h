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

#ifdef __cplusplus
}
#endif
#endif
