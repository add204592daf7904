/* ops: the operator interface. Each operator family (one file) defines
 * oq_op_def values listed in registry.inc; the runtime calls prepare once at
 * session creation, then infer (output types and shapes) and run per execution. */
#ifndef OQ_OPS_OP_H
#define OQ_OPS_OP_H

#include "ir/graph.h"

typedef struct oq_exec oq_exec; /* runtime execution of one (sub)graph */

typedef struct oq_op_node {
    const oq_node *node;
    const char *label;             /* node name for messages */
    int64_t opset;                 /* opset version the model imports for the node's domain */
    size_t n_inputs, n_outputs;
    /* Per input: the tensor when it is constant (initializer/Constant) at session creation, else NULL. */
    const oq_tensor *const *consts;
    void *state;                   /* operator-private, e.g. packed weights; freed by def->destroy */
    oq_threadpool *tp;
    oq_exec **subgraphs;           /* per graph attribute, in attribute order (If: then, else) */
    size_t n_subgraphs;
} oq_op_node;

typedef struct oq_op_def {
    /* Validates attributes and constant inputs, packs weights into n->state. Optional. */
    oq_status (*prepare)(oq_op_node *n);
    /* Sets dtype and shape of every output from the inputs (which hold data: shape
     * values can be read). NULL: run allocates its outputs itself with oq_tensor_alloc. */
    oq_status (*infer)(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out);
    /* Computes outputs. in[i] is NULL for an omitted optional input. When infer is
     * set, out[i] already has data of the inferred shape (not zeroed). */
    oq_status (*run)(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out);
    void (*destroy)(void *state);
} oq_op_def;

/* Registry lookup: the implementation of (domain, op_type) valid at opset, or NULL. */
typedef struct oq_op_entry {
    const char *domain;
    const char *op_type;
    int first_opset, last_opset;
    const oq_op_def *def;
} oq_op_entry;
const oq_op_entry *oq_op_find(const char *domain, const char *op_type, int64_t opset);
/* Any entry for the op type (to tell "unknown op" from "unsupported opset"). */
const oq_op_entry *oq_op_find_any(const char *domain, const char *op_type);
extern const oq_op_entry oq_op_registry[];
extern const size_t oq_op_registry_count;

#define OQ_OP(domain, op_type, first, last, impl) extern const oq_op_def oq_op_##impl;
#include "ops/registry.inc"
#undef OQ_OP

/* Helpers for operator code. Errors name the node. */
oq_status oq_op_error(const oq_op_node *n, oq_status st, const char *fmt, ...) OQ_PRINTF(3, 4);
/* Numpy-style broadcast of two shapes. */
oq_status oq_broadcast_shape(const oq_op_node *n, int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                             int64_t *out);
/* Normalizes a possibly negative axis into [0, rank). */
oq_status oq_norm_axis(const oq_op_node *n, int64_t axis, int rank, int *out);
/* Sets dtype+shape of out (no data); used by infer functions. */
void oq_set_shape(oq_tensor *out, oq_dtype dtype, int ndim, const int64_t *dims);
/* Checks that input i is present and has one of the given dtypes (terminated by OQ_UNDEFINED). */
oq_status oq_check_input(const oq_op_node *n, const oq_tensor *const *in, size_t i, ...);

/* A channels-last x ([N, spatial..., C], onnxq_nhwc) described with NCHW dims in view (the channel
 * dim moved to 1; the data stays as it is), for the geometry code of the NCHW operators. */
const oq_tensor *oq_nchw_view(const oq_tensor *x, oq_tensor *view);

/* Scratch an operator keeps across runs: grown (aligned), never shrunk. */
typedef struct oq_scratch {
    void *p;
    size_t cap;
} oq_scratch;
/* At least bytes of s, or NULL when out of memory (the old contents are not kept). */
void *oq_scratch_get(oq_scratch *s, size_t bytes);
void oq_scratch_free(oq_scratch *s);

/* DynamicQuantizeLinear of count floats into u8 (ONNX's rule: the range includes 0,
 * scale = range / 255, zero point and values rounded half to even, saturated; NaN
 * becomes 0), as DynamicQuantizeMatMul, DynamicQuantizeLSTM and a dynamic QLinearConv
 * quantize their input; large inputs are split over tp (NULL: this thread). */
void oq_quantize_dynamic_u8(const float *x, size_t count, uint8_t *q, float *scale, int32_t *zp,
                            oq_threadpool *tp);

/* QuantizeLinear's rule on n floats into u8 (s8 when is_signed), per-tensor scale and zero point:
 * the kernel the QuantizeLinear operator runs (an ElementwiseChain ending in one uses it too). */
void oq_quantize_f32_to_8bit(const float *x, size_t n, float scale, int32_t zp, bool is_signed, void *y);

/* Subgraph execution for control-flow operators (If/Loop/Scan): runs sub with
 * the given formal inputs (graph inputs in order); outputs are new tensors the
 * caller owns (out[i] must be freed with oq_tensor_destroy). Outer-scope values
 * are visible to the subgraph. */
oq_status oq_exec_run(oq_exec *sub, const oq_tensor *const *in, size_t n_in, oq_tensor **out, size_t n_out);
size_t oq_exec_input_count(const oq_exec *sub);
/* The subgraph built for the node's graph attribute attr_name, or NULL. */
oq_exec *oq_op_subgraph(const oq_op_node *n, const char *attr_name);
size_t oq_exec_output_count(const oq_exec *sub);

/* The steps of a session-only onnxq.ElementwiseChain node (ops/ew_chain.c, made by
 * passes/fuse_elementwise.c): v = v op operand (RSUB, RDIV: operand op v; MAX, MIN: as Clip;
 * SIGMOID: the Sigmoid operator's kernel; MAXIMUM, MINIMUM: as the Max and Min operators, RMAXIMUM,
 * RMINIMUM with the operand first; LEAKYRELU: the LeakyRelu operator's kernel, the operand a
 * one-value alpha). */
enum {
    OQ_EW_STEP_ADD = 1,
    OQ_EW_STEP_SUB,
    OQ_EW_STEP_RSUB,
    OQ_EW_STEP_MUL,
    OQ_EW_STEP_DIV,
    OQ_EW_STEP_RDIV,
    OQ_EW_STEP_MAX,
    OQ_EW_STEP_MIN,
    OQ_EW_STEP_SIGMOID, /* v = sigmoid(v); the operand is not read */
    OQ_EW_STEP_MAXIMUM,
    OQ_EW_STEP_RMAXIMUM,
    OQ_EW_STEP_MINIMUM,
    OQ_EW_STEP_RMINIMUM,
    OQ_EW_STEP_LEAKYRELU,
    OQ_EW_STEP_LAST = OQ_EW_STEP_LEAKYRELU
};

#endif