/* runtime: execution state of one graph (the main graph or a subgraph).
 * Values are slots indexed by name; nodes run in topological order; activation
 * memory comes from one arena planned from first/last use. */
#ifndef OQ_RUNTIME_EXEC_H
#define OQ_RUNTIME_EXEC_H

#include "ops/op.h"

typedef enum value_kind { VALUE_ACTIVATION = 0, VALUE_INPUT, VALUE_CONSTANT, VALUE_OUTER } value_kind;

typedef struct exec_value {
    const char *name;
    value_kind kind;
    oq_tensor t;             /* current contents; for constants a view of the constant */
    oq_tensor *owned_const;  /* constants computed at creation (Constant nodes) */
    size_t outer;            /* VALUE_OUTER: index in the parent exec */
    size_t def;              /* node that writes it (activations) */
    size_t last;             /* last node that reads it; n_nodes for graph outputs */
    bool in_arena;           /* data currently points into the arena */
    /* plan */
    size_t plan_bytes, plan_offset;
    bool planned;
} exec_value;

typedef struct exec_node {
    oq_op_node op;
    const oq_op_def *def;
    size_t *in, n_in;        /* value index per input, SIZE_MAX for omitted */
    size_t *out, n_out;
    size_t *reads, n_reads;  /* inputs plus implicit (subgraph) inputs */
    size_t *release, n_release; /* values whose last use is this node */
    const oq_tensor **in_ptrs;
    oq_tensor **out_ptrs;
    bool skip;               /* evaluated at creation (Constant) */
    double time_total;       /* profiling: seconds (oq_now) summed over runs */
    int64_t runs;
} exec_node;

typedef void (*oq_value_observer)(void *user, const char *name, const oq_tensor *t);

struct oq_exec {
    const oq_model *model;
    const oq_graph *g;
    oq_exec *parent;
    oq_threadpool *tp;
    exec_value *values;
    size_t n_values, cap_values;
    oq_strmap names;
    exec_node *nodes;
    size_t n_nodes;
    size_t *inputs, n_inputs;   /* formal inputs (graph inputs that are not initializers) */
    size_t *outputs, n_outputs;
    uint8_t *arena;
    size_t arena_size;
    bool plan_valid, replan;
    int profile;
    /* Calibration hook: called with every value a node of this graph produced, right
     * after the node ran (the tensor is valid only during the call). */
    oq_value_observer observe;
    void *observe_user;
};

oq_status oq_exec_create(const oq_model *m, const oq_graph *g, oq_exec *parent, oq_threadpool *tp, int profile,
                         oq_exec **out);
void oq_exec_destroy(oq_exec *e);

typedef struct oq_session oq_session;
/* Sets (fn NULL: clears) the observer of the session's graphs, subgraphs included (quant/calibrate.c);
 * a subgraph also shows its formal inputs (a Loop body's carried values) each time it runs. */
void oq_session_set_observer(oq_session *s, oq_value_observer fn, void *user);
/* Calibration's session: as oq_session_create, but the runtime's fusions leave If/Loop bodies as they
 * are, so every value there reaches the observer (hidden main-graph values can be exposed as outputs;
 * a body's cannot). */
oq_status oq_session_create_observable(const oq_model *m, const oq_session_options *opt, oq_session **out);
/* The same, and the main graph's Conv/Gemm outputs named in keep are not fused with their activation, so the
 * observer sees them without their being exposed (and copied out) as graph outputs. */
oq_status oq_session_create_observing(const oq_model *m, const oq_session_options *opt, const char *const *keep,
                                      size_t n_keep, oq_session **out);

#endif
