/* passes: graph rewrites, one per file, each with one entry point
 * oq_status pass_x(oq_model *m, oq_graph *g, const oq_pass_ctx *ctx). The session
 * runs them on its own copy of the model before planning. */
#ifndef OQ_PASSES_PASS_H
#define OQ_PASSES_PASS_H

#include "ir/graph.h"

typedef struct oq_pass_ctx {
    int verbose;
    size_t changed; /* nodes rewritten, for logs */
} oq_pass_ctx;

/* Conv/Gemm followed by Relu or constant Clip: the activation moves into the
 * producer's output stage (attribute onnxq_activation), the activation node goes. */
oq_status pass_fuse_activation(oq_model *m, oq_graph *g, oq_pass_ctx *ctx);

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

#endif
