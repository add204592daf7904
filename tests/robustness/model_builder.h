/* Test helper: builds ONNX models in C with the protobuf-c generated structs
 * and packs them to bytes. Shared by the loader/runtime unit tests and the
 * robustness tests. Every allocation goes into one pool freed by mb_free. */
#ifndef OQ_TEST_MODEL_BUILDER_H
#define OQ_TEST_MODEL_BUILDER_H

#include "onnx/onnx.pb-c.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In mb_vi dims: a dimension with neither value nor name. */
#define MB_DIM_UNKNOWN INT64_MIN

typedef struct mb {
    void **p;
    size_t n, cap;
} mb;

static inline void *mb_alloc(mb *b, size_t n)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->p = realloc(b->p, b->cap * sizeof *b->p);
        if (!b->p) {
            fprintf(stderr, "model_builder: out of memory\n");
            exit(2);
        }
    }
    void *q = calloc(1, n ? n : 1);
    if (!q) {
        fprintf(stderr, "model_builder: out of memory\n");
        exit(2);
    }
    return b->p[b->n++] = q;
}

static inline void mb_free(mb *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->p[i]);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static inline char *mb_str(mb *b, const char *s)
{
    char *d = mb_alloc(b, strlen(s) + 1);
    strcpy(d, s);
    return d;
}

/* Appends item to a protobuf-c repeated field (count *n, array *arr). */
#define MB_PUSH(b, n, arr, item)                                              \
    do {                                                                      \
        void *np_ = mb_alloc((b), ((n) + 1) * sizeof *(arr));                 \
        if (n)                                                                \
            memcpy(np_, (arr), (n) * sizeof *(arr));                          \
        (arr) = np_;                                                          \
        (arr)[(n)++] = (item);                                                \
    } while (0)

static inline Onnx__GraphProto *mb_graph(mb *b, const char *name)
{
    Onnx__GraphProto *g = mb_alloc(b, sizeof *g);
    onnx__graph_proto__init(g);
    g->name = mb_str(b, name);
    return g;
}

static inline void mb_opset(mb *b, Onnx__ModelProto *m, const char *domain, int64_t version)
{
    Onnx__OperatorSetIdProto *o = mb_alloc(b, sizeof *o);
    onnx__operator_set_id_proto__init(o);
    o->domain = mb_str(b, domain);
    o->has_version = 1;
    o->version = version;
    MB_PUSH(b, m->n_opset_import, m->opset_import, o);
}

/* A model with ir_version 8 importing the default domain at opset (0: no import). */
static inline Onnx__ModelProto *mb_model(mb *b, int64_t opset, Onnx__GraphProto *g)
{
    Onnx__ModelProto *m = mb_alloc(b, sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 8;
    m->producer_name = mb_str(b, "onnxq-tests");
    m->graph = g;
    if (opset)
        mb_opset(b, m, "", opset);
    return m;
}

/* Splits "a,b,,c" into strings ("" keeps an omitted optional input). */
static inline void mb_names(mb *b, const char *list, size_t *n, char ***arr)
{
    if (!list)
        return;
    const char *s = list;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char *name = mb_alloc(b, len + 1);
        memcpy(name, s, len);
        MB_PUSH(b, *n, *arr, name);
        if (!e)
            break;
        s = e + 1;
    }
}

/* Adds a node to g; inputs/outputs are comma-separated lists (NULL: none). */
static inline Onnx__NodeProto *mb_node(mb *b, Onnx__GraphProto *g, const char *op, const char *name,
                                       const char *inputs, const char *outputs)
{
    Onnx__NodeProto *n = mb_alloc(b, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = mb_str(b, op);
    n->name = mb_str(b, name ? name : "");
    mb_names(b, inputs, &n->n_input, &n->input);
    mb_names(b, outputs, &n->n_output, &n->output);
    if (g)
        MB_PUSH(b, g->n_node, g->node, n);
    return n;
}

static inline Onnx__AttributeProto *mb_attr(mb *b, Onnx__NodeProto *n, const char *name,
                                            Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = mb_alloc(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = mb_str(b, name);
    a->has_type = 1;
    a->type = type;
    MB_PUSH(b, n->n_attribute, n->attribute, a);
    return a;
}

static inline void mb_attr_int(mb *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static inline void mb_attr_graph(mb *b, Onnx__NodeProto *n, const char *name, Onnx__GraphProto *g)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    a->g = g;
}

/* A tensor value info; ndim < 0: no shape. params[i] non-NULL makes dim i symbolic. */
static inline Onnx__ValueInfoProto *mb_vi(mb *b, const char *name, int elem, int ndim, const int64_t *dims,
                                          const char *const *params)
{
    Onnx__ValueInfoProto *v = mb_alloc(b, sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = mb_str(b, name);
    Onnx__TypeProto *t = mb_alloc(b, sizeof *t);
    onnx__type_proto__init(t);
    Onnx__TypeProto__Tensor *tt = mb_alloc(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *s = mb_alloc(b, sizeof *s);
        onnx__tensor_shape_proto__init(s);
        for (int i = 0; i < ndim; i++) {
            Onnx__TensorShapeProto__Dimension *d = mb_alloc(b, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (params && params[i]) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = mb_str(b, params[i]);
            } else if (dims && dims[i] != MB_DIM_UNKNOWN) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            }
            MB_PUSH(b, s->n_dim, s->dim, d);
        }
        tt->shape = s;
    }
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    return v;
}

static inline void mb_input(mb *b, Onnx__GraphProto *g, Onnx__ValueInfoProto *v)
{
    MB_PUSH(b, g->n_input, g->input, v);
}

static inline void mb_output(mb *b, Onnx__GraphProto *g, Onnx__ValueInfoProto *v)
{
    MB_PUSH(b, g->n_output, g->output, v);
}

static inline Onnx__TensorProto *mb_tensor(mb *b, const char *name, int dtype, int ndim, const int64_t *dims)
{
    Onnx__TensorProto *t = mb_alloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = mb_str(b, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    t->dims = mb_alloc(b, (size_t)(ndim + 1) * sizeof *t->dims);
    if (ndim)
        memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

static inline void mb_tensor_raw(mb *b, Onnx__TensorProto *t, const void *data, size_t len)
{
    t->has_raw_data = 1;
    t->raw_data.len = len;
    t->raw_data.data = mb_alloc(b, len);
    if (len)
        memcpy(t->raw_data.data, data, len);
}

static inline void mb_initializer(mb *b, Onnx__GraphProto *g, Onnx__TensorProto *t)
{
    MB_PUSH(b, g->n_initializer, g->initializer, t);
}

/* Marks t as external: location, offset, length (length < 0: omitted). */
static inline void mb_tensor_external(mb *b, Onnx__TensorProto *t, const char *location, long long offset,
                                      long long length)
{
    char buf[32];
    Onnx__StringStringEntryProto *e = mb_alloc(b, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = mb_str(b, "location");
    e->value = mb_str(b, location);
    MB_PUSH(b, t->n_external_data, t->external_data, e);
    e = mb_alloc(b, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = mb_str(b, "offset");
    snprintf(buf, sizeof buf, "%lld", offset);
    e->value = mb_str(b, buf);
    MB_PUSH(b, t->n_external_data, t->external_data, e);
    if (length >= 0) {
        e = mb_alloc(b, sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = mb_str(b, "length");
        snprintf(buf, sizeof buf, "%lld", length);
        e->value = mb_str(b, buf);
        MB_PUSH(b, t->n_external_data, t->external_data, e);
    }
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

/* Packs the model; the buffer belongs to the pool. */
static inline uint8_t *mb_pack(mb *b, const Onnx__ModelProto *m, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = mb_alloc(b, *len);
    onnx__model_proto__pack(m, buf);
    return buf;
}

/* Writes bytes to path; returns 0 on success. */
static inline int mb_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Identity model: input x (float, dims) → Identity → y. */
static inline Onnx__ModelProto *mb_identity_model(mb *b, int64_t opset, int ndim, const int64_t *dims,
                                                  const char *const *params)
{
    Onnx__GraphProto *g = mb_graph(b, "identity");
    mb_node(b, g, "Identity", "id", "x", "y");
    mb_input(b, g, mb_vi(b, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, params));
    mb_output(b, g, mb_vi(b, "y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, params));
    return mb_model(b, opset, g);
}

#endif
