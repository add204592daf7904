/* ir: the in-memory graph that onnx/ loads and saves, passes rewrite and
 * runtime/ plans. Names link values (as in ONNX); everything is owned by its graph. */
#ifndef OQ_IR_GRAPH_H
#define OQ_IR_GRAPH_H

#include "core/core.h"

typedef struct oq_graph oq_graph;

/* Attribute types use the ONNX AttributeProto numbers. */
typedef enum oq_attr_type {
    OQ_ATTR_UNDEFINED = 0,
    OQ_ATTR_FLOAT = 1,
    OQ_ATTR_INT = 2,
    OQ_ATTR_STRING = 3,
    OQ_ATTR_TENSOR = 4,
    OQ_ATTR_GRAPH = 5,
    OQ_ATTR_FLOATS = 6,
    OQ_ATTR_INTS = 7,
    OQ_ATTR_STRINGS = 8,
    OQ_ATTR_TENSORS = 9,
    OQ_ATTR_GRAPHS = 10,
    OQ_ATTR_SPARSE_TENSOR = 11,
    OQ_ATTR_SPARSE_TENSORS = 12,
    OQ_ATTR_TYPE_PROTO = 13,
    OQ_ATTR_TYPE_PROTOS = 14
} oq_attr_type;

typedef struct oq_bytes {
    char *data; /* NUL-terminated for convenience; len excludes it */
    size_t len;
} oq_bytes;

typedef struct oq_attr {
    char *name;
    oq_attr_type type;
    char *ref_attr_name; /* function attribute reference, kept for save */
    char *doc_string;
    float f;
    int64_t i;
    oq_bytes s;
    oq_tensor *t;
    oq_graph *g;
    float *floats;
    size_t n_floats;
    int64_t *ints;
    size_t n_ints;
    oq_bytes *strings;
    size_t n_strings;
    oq_tensor **tensors;
    size_t n_tensors;
    oq_graph **graphs;
    size_t n_graphs;
    /* sparse tensors and type protos are kept as packed protobuf bytes */
    oq_bytes *raw;
    size_t n_raw;
} oq_attr;

typedef struct oq_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default ONNX domain */
    char *doc_string;
    char **inputs; /* "" for an omitted optional input */
    size_t n_inputs;
    char **outputs;
    size_t n_outputs;
    oq_attr *attrs;
    size_t n_attrs;
} oq_node;

/* A typed value (graph input/output/value_info). ndim -1: no shape given. */
typedef struct oq_value_info {
    char *name;
    char *doc_string;
    oq_dtype dtype;
    int ndim;
    int64_t dims[OQ_MAX_DIMS];     /* -1 where unknown or symbolic */
    char *dim_params[OQ_MAX_DIMS]; /* symbolic dimension names, or NULL */
    oq_bytes type_proto;           /* original TypeProto bytes for non-tensor types (sequence, map) */
} oq_value_info;

struct oq_graph {
    char *name;
    char *doc_string;
    oq_node *nodes;
    size_t n_nodes, cap_nodes;
    oq_tensor **initializers; /* name in tensor->name */
    size_t n_initializers, cap_initializers;
    oq_value_info *inputs;
    size_t n_inputs;
    oq_value_info *outputs;
    size_t n_outputs;
    oq_value_info *value_infos;
    size_t n_value_infos;
    oq_bytes *sparse_initializers; /* kept as packed bytes for save */
    size_t n_sparse_initializers;
};

typedef struct oq_opset_import {
    char *domain;
    int64_t version;
} oq_opset_import;

typedef struct oq_string_pair {
    char *key, *value;
} oq_string_pair;

struct oq_model {
    int64_t ir_version;
    char *producer_name, *producer_version, *domain, *doc_string;
    int64_t model_version;
    oq_opset_import *opsets;
    size_t n_opsets;
    oq_string_pair *metadata;
    size_t n_metadata;
    oq_bytes *functions; /* model-local functions, kept packed */
    size_t n_functions;
    oq_graph *graph;
    char *path; /* file it came from, for messages; may be NULL */
};

oq_graph *oq_graph_new(void);
void oq_graph_destroy(oq_graph *g);
void oq_node_clear(oq_node *n);
void oq_attr_clear(oq_attr *a);
void oq_value_info_clear(oq_value_info *v);
oq_model *oq_model_new(void);

/* Opset version the model imports for a domain ("" and "ai.onnx" are the same); 0 if none. */
int64_t oq_model_opset(const oq_model *m, const char *domain);
bool oq_domain_is_default(const char *domain);

const oq_attr *oq_node_attr(const oq_node *n, const char *name);
int64_t oq_node_attr_int(const oq_node *n, const char *name, int64_t dflt);
float oq_node_attr_float(const oq_node *n, const char *name, float dflt);
/* Returns the string attribute or dflt. */
const char *oq_node_attr_string(const oq_node *n, const char *name, const char *dflt);
/* Returns count (0 if absent) and sets *vals (NULL if absent). */
size_t oq_node_attr_ints(const oq_node *n, const char *name, const int64_t **vals);
size_t oq_node_attr_floats(const oq_node *n, const char *name, const float **vals);
/* Node input i, or NULL when absent/empty. */
const char *oq_node_input(const oq_node *n, size_t i);
/* A printable name for messages: node name, else "<op_type> #index". */
const char *oq_node_label(const oq_node *n, char *buf, size_t len);

/* Finds an initializer by name, or NULL. */
oq_tensor *oq_graph_initializer(const oq_graph *g, const char *name);
/* Sorts g->nodes topologically (stable). Fails on cycles or values used before
 * they are produced, naming the node; outer lists the names visible from enclosing graphs. */
oq_status oq_graph_toposort(oq_graph *g, const char *const *outer, size_t n_outer);
/* Names a node or its subgraphs read that the node's subgraphs do not define
 * (implicit inputs from the outer scope). Caller frees the array, not the strings. */
oq_status oq_node_implicit_inputs(const oq_node *n, const char ***names, size_t *count);
/* Structural checks: unique value names, inputs exist, dims sane. */
oq_status oq_graph_verify(const oq_graph *g, const char *const *outer, size_t n_outer);

/* Simple string→index hash map used by the loader and the planner. */
typedef struct oq_strmap {
    const char **keys;
    size_t *vals;
    size_t cap, count;
} oq_strmap;
oq_status oq_strmap_init(oq_strmap *m, size_t expected);
void oq_strmap_free(oq_strmap *m);
/* Key is not copied; it must outlive the map. Overwrites. */
oq_status oq_strmap_put(oq_strmap *m, const char *key, size_t val);
bool oq_strmap_get(const oq_strmap *m, const char *key, size_t *val);

#endif
