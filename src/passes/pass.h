/* passes: graph rewrites, one per file, each with one entry point
 * oq_status pass_x(oq_model *m, oq_graph *g, const oq_pass_ctx *ctx). The session
 * runs them on its own copy of the model before planning. */
#ifndef OQ_PASSES_PASS_H
#define OQ_PASSES_PASS_H

#include "ir/graph.h"

typedef struct oq_pass_ctx {
    int verbose;
    size_t changed; /* nodes rewritten, for logs */
    /* Optional: called with one line per kind of change a pass made
     * ("12 BatchNormalization folded into Conv"); `onnxq optimize` prints them. */
    void (*report)(void *user, const char *pass, const char *msg);
    void *report_user;
    int64_t target_opset; /* upgrade_opset: default-domain opset to reach; 0 means 13 */
    int no_qdq_fusion;    /* session pipeline: leave QDQ patterns as they are (int8 emulated in float) */
    int keep_subgraph_values; /* session pipeline: no fusions inside If/Loop bodies (calibration observes them) */
    const oq_strmap *keep_values; /* session pipeline: values the activation fusion leaves visible (calibration) */
} oq_pass_ctx;

/* Conv/Gemm followed by Relu or constant Clip: the activation moves into the
 * producer's output stage (attribute onnxq_activation), the activation node goes. */
oq_status pass_fuse_activation(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* QDQ patterns (DequantizeLinear -> Conv/MatMul/Gemm/Add/Mul/pooling/... -> QuantizeLinear)
 * become QOperator nodes on integer kernels; runs before pass_fuse_activation.
 * Nodes that stay float are logged at OQ_LOG_INFO with the reason. */
oq_status pass_fuse_qdq(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Dynamic quantization in standard operators (DynamicQuantizeLinear -> ConvInteger /
 * MatMulInteger -> Cast -> Mul [-> Add]) becomes one fused node: QLinearConv with
 * onnxq_float_output + onnxq_dynamic_input, or com.microsoft DynamicQuantizeMatMul. */
oq_status pass_fuse_dynamic(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Chains of float Add/Sub/Mul/Div/Clip (each reading the one before and x or a float constant)
 * become one session-only onnxq.ElementwiseChain node (a decomposed HardSwish: one pass, not four). */
oq_status pass_fuse_elementwise(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Chains of int8 convolutions (QLinearConv, MaxPool, QLinearAdd/Mul, QLinear pools
 * between them) run channels-last: session-only attribute onnxq_nhwc (channels_last
 * on the com.microsoft pools), Transposes at the chain's borders. Main graph only. */
oq_status pass_layout_nhwc(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Adds an opset import of domain (at version) to m unless it has one. */
oq_status oq_model_import_domain(oq_model *m, const char *domain, int64_t version);

/* Runs the session's default passes on g and its subgraphs. */
oq_status oq_passes_run_default(oq_model *m, oq_pass_ctx *ctx);

/* Deep copy (the session's private copy). */
oq_status oq_model_clone(const oq_model *m, oq_model **out);

/* Helpers for passes */
size_t oq_graph_count_readers(const oq_graph *g, const char *name);
bool oq_graph_is_output(const oq_graph *g, const char *name);
/* Removes node i, keeping order. */
void oq_graph_remove_node(oq_graph *g, size_t i);
/* Adds an attribute to n (takes ownership of nothing: copies). */
oq_status oq_node_add_attr_string(oq_node *n, const char *name, const char *value);
oq_status oq_node_add_attr_floats(oq_node *n, const char *name, const float *v, size_t count);
oq_status oq_node_add_attr_int(oq_node *n, const char *name, int64_t v);
oq_status oq_node_add_attr_ints(oq_node *n, const char *name, const int64_t *v, size_t count);
/* Node n becomes op of domain reading inputs ("" for an omitted one); its outputs stay, its
 * attributes go when clear_attrs. inputs may point into n. On failure n is unchanged. */
oq_status oq_node_rewrite(oq_node *n, const char *op, const char *domain, const char *const *inputs, size_t n_in,
                          bool clear_attrs);

/* ---- preparation passes (also `onnxq optimize`) ---- */

/* Constant nodes become initializers; nodes whose inputs are all constant (and
 * Shape/Size of values whose shape is static) are evaluated once through the
 * operator registry and replaced by initializers. Random and quantization ops stay. */
oq_status pass_constant_fold(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* DequantizeLinear nodes of constants (weights of nodes left in float after the QDQ
 * fusion) are evaluated once into float initializers, unless the session observes them. */
oq_status pass_fold_dequantize(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* BatchNormalization (inference) after Conv/ConvTranspose/Gemm with a constant
 * weight is folded into new weight and bias initializers. */
oq_status pass_fold_batchnorm(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Cross-layer equalization: Conv or per-channel affine (Mul gamma [-> Add beta]) ->
 * [Relu|LeakyRelu] -> Conv/Gemm/MatMul with constant weights get per-channel scales moved
 * from one side to the other (same outputs), so the activation between them suits one
 * quantization range. */
oq_status pass_equalize_conv(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Removes nodes none of whose outputs reach a graph output, unused initializers
 * and stale value_info entries. */
oq_status pass_dead_nodes(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Identity, and Dropout whose mask is unused, are bypassed. */
oq_status pass_fuse_identity(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Concat(x, ConstantOfShape(constant shape)) of two inputs becomes Pad(x) along the axis with the
 * fill's value (opset 11+): a channel padding the quantizer can run on int8. */
oq_status pass_fill_to_pad(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* PyTorch's decomposed layer norm (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt,
 * Div, Mul, Add) becomes one LayerNormalization. */
oq_status pass_fuse_layernorm(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* x * 0.5 * (1 + erf(x / sqrt 2)) becomes Gelu (com.microsoft below opset 20). */
oq_status pass_fuse_gelu(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Self-attention over a packed QKV projection as PyTorch exports it (Reshape to
 * [B,S,3,H,D], Transpose, Split, Squeeze, MatMul, scale, Softmax, MatMul, Transpose,
 * Reshape) becomes one session-only onnxq.QkvAttention node (ops/attention.c). */
oq_status pass_fuse_attention(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* MatMul with a constant 2-D B and a 2-D A followed by Add of a constant bias
 * of N values becomes Gemm, so the bias is added in the GEMM's output stage. */
oq_status pass_fuse_matmul_bias(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
/* Raises the default-domain opset to ctx->target_opset (13 when 0), rewriting
 * the operators whose attributes became inputs; whole model (g ignored).
 * Fails, leaving the model unchanged, when an operator cannot be upgraded. */
oq_status pass_upgrade_opset(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);

/* The preparation pipeline the quantizer runs (and `onnxq optimize` by default):
 * constant folding, Identity removal, BatchNorm folding, dead-node cleanup, on g
 * and its subgraphs. No runtime-only fusions; no opset change. */
oq_status oq_passes_run_prepare(oq_model *m, oq_pass_ctx *ctx);

/* A named pass for `onnxq optimize --passes`. whole_model: runs once with the
 * main graph instead of per (sub)graph. */
typedef struct oq_pass_info {
    const char *name;
    oq_status (*fn)(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);
    bool whole_model;
    const char *help;
} oq_pass_info;
const oq_pass_info *oq_pass_list(size_t *count);
const oq_pass_info *oq_pass_find(const char *name);
/* Runs one pass on the main graph and (unless whole_model) every subgraph. */
oq_status oq_pass_run(const oq_pass_info *p, oq_model *m, oq_pass_ctx *ctx);

/* Helpers for passes */
/* Sends one report line (printf format) to ctx->report, if set. */
void oq_pass_note(oq_pass_ctx *ctx, const char *pass, const char *fmt, ...) OQ_PRINTF(3, 4);
/* Appends t (ownership moves to g; t->name must be set) as an initializer. */
oq_status oq_graph_add_initializer(oq_graph *g, oq_tensor *t);
/* Removes initializer i (and a graph input of the same name) and destroys it. */
void oq_graph_remove_initializer(oq_graph *g, size_t i);
/* Every node input (subgraphs included) reading `from` reads `to` instead. */
oq_status oq_graph_replace_uses(oq_graph *g, const char *from, const char *to);
/* Appends a node: op of domain (NULL: default), name (NULL: ""), inputs ("" or NULL for an omitted
 * one) and outputs copied; *added (optional) points at it until the node array grows again. */
oq_status oq_graph_add_node(oq_graph *g, const char *op, const char *domain, const char *name, const char *const *in,
                            size_t n_in, const char *const *out, size_t n_out, oq_node **added);
/* Value `name` gets a new name (name + suffix, unique in g) in its producer's outputs and in every
 * input reading it (oq_graph_replace_uses); *new_name (if not NULL) receives a copy of it. */
oq_status oq_graph_rename_value(oq_graph *g, const char *name, const char *suffix, char **new_name);
/* Node n's input `slot` becomes t, added to g as an initializer named after the input's old name +
 * suffix (unique in g). t's name is set here; ownership of t moves to g, and t is destroyed on failure. */
oq_status oq_node_set_input_initializer(oq_graph *g, oq_node *n, size_t slot, oq_tensor *t, const char *suffix);
/* Adds t to g as an initializer named base + suffix (unique in g; t's old name is freed). Ownership of t
 * moves to g; t is destroyed on failure. */
oq_status oq_graph_add_named_initializer(oq_graph *g, oq_tensor *t, const char *base, const char *suffix);
/* A name not used in g yet, built from base and suffix. Caller frees. */
char *oq_graph_unique_name(const oq_graph *g, const char *base, const char *suffix);
/* Index of the node that writes name, or SIZE_MAX. */
size_t oq_graph_producer(const oq_graph *g, const char *name);
/* Whether value name must stay visible: a graph output of g, or a value the session observes
 * (ctx->keep_values; ctx may be NULL). Fusions leave such values where they are. */
bool oq_pass_keeps_value(const oq_pass_ctx *ctx, const oq_graph *g, const char *name);
/* Index of the one node reading name (not a graph output, no other reader), or SIZE_MAX. */
size_t oq_graph_single_reader(const oq_graph *g, const char *name);
/* True when name is a one-element floating-point initializer; sets *v. */
bool oq_graph_const_scalar(const oq_graph *g, const char *name, double *v);
/* Evaluates node n of g, all of whose inputs are given in `in` (NULL for absent),
 * through the operator registry. out[i] receive new tensors (NULL for outputs
 * the operator does not produce). Fails with OQ_E_UNSUPPORTED when outputs would
 * exceed max_bytes in total (0: no limit). */
oq_status oq_pass_eval_node(const oq_model *m, const oq_node *n, const oq_tensor *const *in, size_t max_bytes,
                            oq_tensor **out);

#endif
