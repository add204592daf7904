/* onnx/load: ONNX protobuf (file or memory, external data) → graph IR. Every
 * length and count read from the file is checked; errors name the file and
 * the tensor, node or attribute at fault. */
#include "onnx/onnx_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_GRAPH_DEPTH 64

typedef struct load_ctx {
    const char *file;      /* for messages */
    char *dir;             /* folder of the model file, for external data; NULL for memory loads */
} load_ctx;

static oq_status dup_str(const char *s, char **out)
{
    *out = oq_strdup(s ? s : "");
    return *out ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
}

static oq_status dup_bytes(const void *p, size_t len, oq_bytes *out)
{
    out->data = oq_strndup(p ? p : "", p ? len : 0);
    out->len = p ? len : 0;
    return out->data ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
}

static oq_status pack_message(const ProtobufCMessage *msg, oq_bytes *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    out->data = oq_malloc(n + 1);
    if (!out->data)
        return oq_error(OQ_E_NOMEM, "out of memory");
    protobuf_c_message_pack(msg, (uint8_t *)out->data);
    out->data[n] = 0;
    out->len = n;
    return OQ_OK;
}

oq_status oq_read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return oq_error(OQ_E_IO, "'%s' is not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = oq_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return oq_error(OQ_E_NOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        free(buf);
        return oq_error(OQ_E_IO, "could not read all of '%s'", path);
    }
    *data = buf;
    *size = n;
    return OQ_OK;
}

/* Reads [offset, offset+length) of an external data file into dst (length bytes);
 * dst NULL only checks that the file holds that range. */
static oq_status read_external(const load_ctx *c, const char *tname, const char *location, int64_t offset,
                               int64_t length, void *dst)
{
    if (!c->dir)
        return oq_error(OQ_E_UNSUPPORTED, "%s: tensor '%s' uses external data '%s', which needs a model file path",
                        c->file, tname, location);
    if (!location[0] || location[0] == '/' || strstr(location, ".."))
        return oq_error(OQ_E_PARSE, "%s: tensor '%s': external data location '%s' must be a relative path inside the "
                        "model's folder", c->file, tname, location);
    size_t plen = strlen(c->dir) + strlen(location) + 2;
    char *path = oq_malloc(plen);
    if (!path)
        return oq_error(OQ_E_NOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", c->dir, location);
    FILE *f = fopen(path, "rb");
    if (!f) {
        oq_status st = oq_error(OQ_E_IO, "%s: tensor '%s': cannot open external data file '%s': %s", c->file, tname,
                                path, strerror(errno));
        free(path);
        return st;
    }
    struct stat sb;
    oq_status st = OQ_OK;
    if (fstat(fileno(f), &sb) != 0 || offset < 0 || length < 0 || offset > (int64_t)sb.st_size ||
        length > (int64_t)sb.st_size - offset)
        st = oq_error(OQ_E_PARSE, "%s: tensor '%s': external data [%lld, +%lld) lies outside '%s' (%lld bytes)", c->file,
                      tname, (long long)offset, (long long)length, path, (long long)sb.st_size);
    else if (!S_ISREG(sb.st_mode))
        st = oq_error(OQ_E_IO, "%s: tensor '%s': external data '%s' is not a regular file", c->file, tname, path);
    else if (dst && (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(dst, 1, (size_t)length, f) != (size_t)length))
        st = oq_error(OQ_E_IO, "%s: tensor '%s': could not read external data from '%s'", c->file, tname, path);
    fclose(f);
    free(path);
    return st;
}

static oq_status convert_tensor(const load_ctx *c, const Onnx__TensorProto *tp, const char *what, oq_tensor **out)
{
    const char *tname = tp->name && tp->name[0] ? tp->name : what;
    oq_dtype dt = (oq_dtype)tp->data_type;
    if (!tp->has_data_type || tp->data_type <= 0 || tp->data_type >= OQ_DTYPE_COUNT)
        return oq_error(tp->data_type > 0 ? OQ_E_UNSUPPORTED : OQ_E_PARSE,
                        "%s: tensor '%s' has unknown or unsupported data type %d", c->file, tname, (int)tp->data_type);
    if (tp->n_dims > OQ_MAX_DIMS)
        return oq_error(OQ_E_UNSUPPORTED, "%s: tensor '%s' has rank %zu; onnxq supports up to %d", c->file, tname,
                        tp->n_dims, OQ_MAX_DIMS);
    for (size_t i = 0; i < tp->n_dims; i++)
        if (tp->dims[i] < 0)
            return oq_error(OQ_E_PARSE, "%s: tensor '%s' has negative dimension %lld", c->file, tname,
                            (long long)tp->dims[i]);
    int64_t numel = oq_shape_numel((int)tp->n_dims, tp->dims);
    size_t es = oq_dtype_size(dt), bytes;
    if (numel < 0 || (dt != OQ_STRING && oq_mul_overflow((size_t)numel, es, &bytes)))
        return oq_error(OQ_E_PARSE, "%s: tensor '%s' is impossibly large", c->file, tname);
    if (dt == OQ_STRING)
        bytes = 0;
    /* Data must be present before allocating, so a tiny file cannot ask for a huge buffer. */
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    size_t have = 0;
    if (dt == OQ_STRING)
        have = tp->n_string_data;
    else if (external)
        have = (size_t)numel;
    else if (tp->has_raw_data)
        have = es ? tp->raw_data.len / es : 0;
    else if (tp->n_float_data && dt != OQ_FLOAT && dt != OQ_COMPLEX64)
        return oq_error(OQ_E_PARSE, "%s: tensor '%s' of type %s stores float_data", c->file, tname, oq_dtype_name(dt));
    else if (tp->n_float_data)
        have = dt == OQ_COMPLEX64 ? tp->n_float_data / 2 : tp->n_float_data;
    else if (tp->n_double_data && dt != OQ_DOUBLE && dt != OQ_COMPLEX128)
        return oq_error(OQ_E_PARSE, "%s: tensor '%s' of type %s stores double_data", c->file, tname, oq_dtype_name(dt));
    else if (tp->n_double_data)
        have = dt == OQ_COMPLEX128 ? tp->n_double_data / 2 : tp->n_double_data;
    else if (tp->n_int32_data)
        have = tp->n_int32_data;
    else if (tp->n_int64_data)
        have = tp->n_int64_data;
    else if (tp->n_uint64_data)
        have = tp->n_uint64_data;
    if (tp->has_raw_data && dt != OQ_STRING && !external && tp->raw_data.len != bytes)
        return oq_error(OQ_E_PARSE, "%s: tensor '%s' has %zu bytes of raw data but its shape and type need %zu",
                        c->file, tname, tp->raw_data.len, bytes);
    if (have != (size_t)numel)
        return oq_error(OQ_E_PARSE, "%s: tensor '%s' holds %zu values but its shape needs %lld", c->file, tname, have,
                        (long long)numel);
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    if (external) {
        for (size_t i = 0; i < tp->n_external_data; i++) {
            const Onnx__StringStringEntryProto *e = tp->external_data[i];
            if (!e->key || !e->value)
                continue;
            if (!strcmp(e->key, "location"))
                location = e->value;
            else if (!strcmp(e->key, "offset"))
                offset = strtoll(e->value, NULL, 10);
            else if (!strcmp(e->key, "length"))
                length = strtoll(e->value, NULL, 10);
        }
        if (!location)
            return oq_error(OQ_E_PARSE, "%s: tensor '%s' is marked external but has no location", c->file, tname);
        if (length >= 0 && (size_t)length != bytes)
            return oq_error(OQ_E_PARSE, "%s: tensor '%s': external length %lld does not match the %zu bytes its shape needs",
                            c->file, tname, (long long)length, bytes);
        /* The file must hold the bytes before they are allocated: a tiny model cannot ask for terabytes. */
        oq_status est = read_external(c, tname, location, offset, (int64_t)bytes, NULL);
        if (est != OQ_OK)
            return est;
    }
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_tensor_alloc(t, dt, (int)tp->n_dims, tp->dims);
    if (st == OQ_OK && tp->name && !(t->name = oq_strdup(tp->name)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    size_t n = (size_t)numel;
    if (dt == OQ_STRING) {
        char **s = t->data;
        for (size_t i = 0; i < n && st == OQ_OK; i++)
            if (!(s[i] = oq_strndup((const char *)tp->string_data[i].data, tp->string_data[i].len)))
                st = oq_error(OQ_E_NOMEM, "out of memory");
    } else if (external) {
        st = read_external(c, tname, location, offset, (int64_t)bytes, t->data);
    } else if (tp->has_raw_data) {
        if (bytes)
            memcpy(t->data, tp->raw_data.data, bytes);
    } else if (tp->n_float_data) {
        memcpy(t->data, tp->float_data, bytes);
    } else if (tp->n_double_data) {
        memcpy(t->data, tp->double_data, bytes);
    } else if (tp->n_int64_data) {
        if (dt == OQ_INT64 || dt == OQ_UINT64)
            memcpy(t->data, tp->int64_data, bytes);
        else
            st = oq_error(OQ_E_PARSE, "%s: tensor '%s' of type %s stores int64_data", c->file, tname, oq_dtype_name(dt));
    } else if (tp->n_uint64_data) {
        if (dt == OQ_UINT64 || dt == OQ_UINT32) {
            for (size_t i = 0; i < n; i++) {
                if (dt == OQ_UINT64)
                    ((uint64_t *)t->data)[i] = tp->uint64_data[i];
                else
                    ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i];
            }
        } else {
            st = oq_error(OQ_E_PARSE, "%s: tensor '%s' of type %s stores uint64_data", c->file, tname, oq_dtype_name(dt));
        }
    } else if (tp->n_int32_data) {
        const int32_t *v = tp->int32_data;
        for (size_t i = 0; i < n; i++) {
            switch (dt) {
            case OQ_INT32: ((int32_t *)t->data)[i] = v[i]; break;
            case OQ_INT16: ((int16_t *)t->data)[i] = (int16_t)v[i]; break;
            case OQ_UINT16:
            case OQ_FLOAT16:
            case OQ_BFLOAT16: ((uint16_t *)t->data)[i] = (uint16_t)v[i]; break;
            case OQ_INT8: ((int8_t *)t->data)[i] = (int8_t)v[i]; break;
            case OQ_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v[i]; break;
            case OQ_BOOL: ((uint8_t *)t->data)[i] = v[i] != 0; break;
            default:
                st = oq_error(OQ_E_PARSE, "%s: tensor '%s' of type %s stores int32_data", c->file, tname,
                              oq_dtype_name(dt));
                i = n;
                break;
            }
        }
    }
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

static oq_status convert_value_info(const load_ctx *c, const Onnx__ValueInfoProto *vp, oq_value_info *v)
{
    oq_status st = dup_str(vp->name, &v->name);
    if (st == OQ_OK && vp->doc_string)
        st = dup_str(vp->doc_string, &v->doc_string);
    v->ndim = -1;
    if (st != OQ_OK || !vp->type)
        return st;
    const Onnx__TypeProto *tp = vp->type;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return pack_message(&tp->base, &v->type_proto);
    if (tp->denotation && tp->denotation[0]) /* keep denotations through save */
        st = pack_message(&tp->base, &v->type_proto);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    v->dtype = tt->has_elem_type ? (oq_dtype)tt->elem_type : OQ_UNDEFINED;
    if ((int)v->dtype < 0 || v->dtype >= OQ_DTYPE_COUNT)
        return oq_error(OQ_E_UNSUPPORTED, "%s: value '%s' has unknown element type %d", c->file, v->name,
                        (int)tt->elem_type);
    if (!tt->shape)
        return st;
    if (tt->shape->n_dim > OQ_MAX_DIMS)
        return oq_error(OQ_E_UNSUPPORTED, "%s: value '%s' has rank %zu; onnxq supports up to %d", c->file, v->name,
                        tt->shape->n_dim, OQ_MAX_DIMS);
    v->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < v->ndim && st == OQ_OK; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return oq_error(OQ_E_PARSE, "%s: value '%s' has negative dimension %lld", c->file, v->name,
                                (long long)d->dim_value);
            v->dims[i] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param) {
            st = dup_str(d->dim_param, &v->dim_params[i]);
        }
    }
    return st;
}

static oq_status convert_graph(const load_ctx *c, const Onnx__GraphProto *gp, int depth, oq_graph **out);

static oq_status convert_attr(const load_ctx *c, const Onnx__AttributeProto *ap, const char *node, int depth,
                              oq_attr *a)
{
    oq_status st = dup_str(ap->name, &a->name);
    if (st == OQ_OK && ap->ref_attr_name)
        st = dup_str(ap->ref_attr_name, &a->ref_attr_name);
    if (st == OQ_OK && ap->doc_string)
        st = dup_str(ap->doc_string, &a->doc_string);
    if (st != OQ_OK)
        return st;
    a->type = ap->has_type ? (oq_attr_type)ap->type : OQ_ATTR_UNDEFINED;
    if (a->type == OQ_ATTR_UNDEFINED) { /* IR < 3 files: infer from the field that is set */
        if (ap->has_f) a->type = OQ_ATTR_FLOAT;
        else if (ap->has_i) a->type = OQ_ATTR_INT;
        else if (ap->has_s) a->type = OQ_ATTR_STRING;
        else if (ap->t) a->type = OQ_ATTR_TENSOR;
        else if (ap->g) a->type = OQ_ATTR_GRAPH;
        else if (ap->n_floats) a->type = OQ_ATTR_FLOATS;
        else if (ap->n_ints) a->type = OQ_ATTR_INTS;
        else if (ap->n_strings) a->type = OQ_ATTR_STRINGS;
        else if (ap->n_tensors) a->type = OQ_ATTR_TENSORS;
        else if (ap->n_graphs) a->type = OQ_ATTR_GRAPHS;
    }
    a->f = ap->f;
    a->i = ap->i;
    if (ap->has_s)
        st = dup_bytes(ap->s.data, ap->s.len, &a->s);
    char what[512];
    snprintf(what, sizeof what, "attribute '%s' of node '%s'", a->name, node);
    if (st == OQ_OK && ap->t)
        st = convert_tensor(c, ap->t, what, &a->t);
    if (st == OQ_OK && ap->g)
        st = convert_graph(c, ap->g, depth + 1, &a->g);
    if (st == OQ_OK && ap->n_floats) {
        a->floats = oq_malloc(ap->n_floats * sizeof(float));
        if (!a->floats)
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        a->n_floats = ap->n_floats;
    }
    if (st == OQ_OK && ap->n_ints) {
        a->ints = oq_malloc(ap->n_ints * sizeof(int64_t));
        if (!a->ints)
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        a->n_ints = ap->n_ints;
    }
    if (st == OQ_OK && ap->n_strings) {
        if (!(a->strings = oq_calloc(ap->n_strings, sizeof *a->strings)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t i = 0; i < ap->n_strings && st == OQ_OK; i++, a->n_strings++)
            st = dup_bytes(ap->strings[i].data, ap->strings[i].len, &a->strings[i]);
    }
    if (st == OQ_OK && ap->n_tensors) {
        if (!(a->tensors = oq_calloc(ap->n_tensors, sizeof *a->tensors)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t i = 0; i < ap->n_tensors && st == OQ_OK; i++, a->n_tensors++)
            st = convert_tensor(c, ap->tensors[i], what, &a->tensors[i]);
    }
    if (st == OQ_OK && ap->n_graphs) {
        if (!(a->graphs = oq_calloc(ap->n_graphs, sizeof *a->graphs)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t i = 0; i < ap->n_graphs && st == OQ_OK; i++, a->n_graphs++)
            st = convert_graph(c, ap->graphs[i], depth + 1, &a->graphs[i]);
    }
    /* Sparse tensors and type protos are kept packed, in field order, for save. */
    size_t n_raw = (ap->sparse_tensor ? 1 : 0) + ap->n_sparse_tensors + (ap->tp ? 1 : 0) + ap->n_type_protos;
    if (st == OQ_OK && n_raw) {
        if (!(a->raw = oq_calloc(n_raw, sizeof *a->raw)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        if (ap->sparse_tensor && st == OQ_OK)
            st = pack_message(&ap->sparse_tensor->base, &a->raw[a->n_raw++]);
        for (size_t i = 0; i < ap->n_sparse_tensors && st == OQ_OK; i++)
            st = pack_message(&ap->sparse_tensors[i]->base, &a->raw[a->n_raw++]);
        if (ap->tp && st == OQ_OK)
            st = pack_message(&ap->tp->base, &a->raw[a->n_raw++]);
        for (size_t i = 0; i < ap->n_type_protos && st == OQ_OK; i++)
            st = pack_message(&ap->type_protos[i]->base, &a->raw[a->n_raw++]);
    }
    return st;
}

static oq_status convert_node(const load_ctx *c, const Onnx__NodeProto *np, size_t index, int depth, oq_node *n)
{
    oq_status st = dup_str(np->name, &n->name);
    if (st == OQ_OK)
        st = dup_str(np->op_type, &n->op_type);
    if (st == OQ_OK)
        st = dup_str(np->domain, &n->domain);
    if (st == OQ_OK && np->doc_string)
        st = dup_str(np->doc_string, &n->doc_string);
    if (st != OQ_OK)
        return st;
    char lb[128];
    const char *label = n->name[0] ? n->name : (snprintf(lb, sizeof lb, "#%zu (%s)", index, n->op_type), lb);
    if (!n->op_type[0])
        return oq_error(OQ_E_PARSE, "%s: node %s has no op_type", c->file, label);
    n->inputs = oq_calloc(np->n_input, sizeof(char *));
    n->outputs = oq_calloc(np->n_output, sizeof(char *));
    n->attrs = oq_calloc(np->n_attribute, sizeof(oq_attr));
    if (!n->inputs || !n->outputs || !n->attrs)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < np->n_input && st == OQ_OK; i++, n->n_inputs++)
        st = dup_str(np->input[i], &n->inputs[i]);
    for (size_t i = 0; i < np->n_output && st == OQ_OK; i++, n->n_outputs++)
        st = dup_str(np->output[i], &n->outputs[i]);
    for (size_t i = 0; i < np->n_attribute && st == OQ_OK; i++, n->n_attrs++)
        st = convert_attr(c, np->attribute[i], label, depth, &n->attrs[i]);
    return st;
}

static oq_status convert_value_infos(const load_ctx *c, Onnx__ValueInfoProto *const *src, size_t n, oq_value_info **dst,
                                     size_t *count)
{
    *dst = oq_calloc(n, sizeof **dst);
    if (!*dst)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    for (size_t i = 0; i < n && st == OQ_OK; i++, (*count)++)
        st = convert_value_info(c, src[i], &(*dst)[i]);
    return st;
}

static oq_status convert_graph(const load_ctx *c, const Onnx__GraphProto *gp, int depth, oq_graph **out)
{
    if (depth > MAX_GRAPH_DEPTH)
        return oq_error(OQ_E_PARSE, "%s: subgraphs are nested more than %d deep", c->file, MAX_GRAPH_DEPTH);
    oq_graph *g = oq_graph_new();
    if (!g)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = dup_str(gp->name, &g->name);
    if (st == OQ_OK && gp->doc_string)
        st = dup_str(gp->doc_string, &g->doc_string);
    if (st == OQ_OK) {
        g->nodes = oq_calloc(gp->n_node, sizeof *g->nodes);
        g->cap_nodes = gp->n_node ? gp->n_node : 1;
        g->initializers = oq_calloc(gp->n_initializer, sizeof *g->initializers);
        g->cap_initializers = gp->n_initializer ? gp->n_initializer : 1;
        if (!g->nodes || !g->initializers)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < gp->n_initializer && st == OQ_OK; i++) {
        st = convert_tensor(c, gp->initializer[i], "initializer", &g->initializers[i]);
        if (st == OQ_OK) {
            g->n_initializers++;
            if (!gp->initializer[i]->name || !gp->initializer[i]->name[0])
                st = oq_error(OQ_E_PARSE, "%s: initializer %zu has no name", c->file, i);
        }
    }
    for (size_t i = 0; i < gp->n_node && st == OQ_OK; i++, g->n_nodes++)
        st = convert_node(c, gp->node[i], i, depth, &g->nodes[i]);
    if (st == OQ_OK)
        st = convert_value_infos(c, gp->input, gp->n_input, &g->inputs, &g->n_inputs);
    if (st == OQ_OK)
        st = convert_value_infos(c, gp->output, gp->n_output, &g->outputs, &g->n_outputs);
    if (st == OQ_OK)
        st = convert_value_infos(c, gp->value_info, gp->n_value_info, &g->value_infos, &g->n_value_infos);
    if (st == OQ_OK && gp->n_sparse_initializer) {
        if (!(g->sparse_initializers = oq_calloc(gp->n_sparse_initializer, sizeof(oq_bytes))))
            st = oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t i = 0; i < gp->n_sparse_initializer && st == OQ_OK; i++, g->n_sparse_initializers++)
            st = pack_message(&gp->sparse_initializer[i]->base, &g->sparse_initializers[i]);
    }
    if (st != OQ_OK) {
        oq_graph_destroy(g);
        return st;
    }
    *out = g;
    return OQ_OK;
}

static oq_status convert_model(const load_ctx *c, const Onnx__ModelProto *mp, oq_model **out)
{
    if (!mp->graph)
        return oq_error(OQ_E_PARSE, "%s: the model has no graph", c->file);
    oq_model *m = oq_model_new();
    if (!m)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    m->ir_version = mp->ir_version;
    m->model_version = mp->model_version;
    if (mp->producer_name) st = dup_str(mp->producer_name, &m->producer_name);
    if (st == OQ_OK && mp->producer_version) st = dup_str(mp->producer_version, &m->producer_version);
    if (st == OQ_OK && mp->domain) st = dup_str(mp->domain, &m->domain);
    if (st == OQ_OK && mp->doc_string) st = dup_str(mp->doc_string, &m->doc_string);
    if (st == OQ_OK) {
        m->opsets = oq_calloc(mp->n_opset_import, sizeof *m->opsets);
        m->metadata = oq_calloc(mp->n_metadata_props, sizeof *m->metadata);
        m->functions = oq_calloc(mp->n_functions, sizeof *m->functions);
        if (!m->opsets || !m->metadata || !m->functions)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < mp->n_opset_import && st == OQ_OK; i++, m->n_opsets++) {
        m->opsets[i].version = mp->opset_import[i]->version;
        st = dup_str(mp->opset_import[i]->domain, &m->opsets[i].domain);
    }
    for (size_t i = 0; i < mp->n_metadata_props && st == OQ_OK; i++, m->n_metadata++) {
        st = dup_str(mp->metadata_props[i]->key, &m->metadata[i].key);
        if (st == OQ_OK)
            st = dup_str(mp->metadata_props[i]->value, &m->metadata[i].value);
    }
    for (size_t i = 0; i < mp->n_functions && st == OQ_OK; i++, m->n_functions++)
        st = pack_message(&mp->functions[i]->base, &m->functions[i]);
    if (st == OQ_OK)
        st = convert_graph(c, mp->graph, 0, &m->graph);
    if (st == OQ_OK && mp->n_opset_import == 0 && m->ir_version >= 3)
        st = oq_error(OQ_E_PARSE, "%s: the model imports no operator set", c->file);
    if (st != OQ_OK) {
        oq_model_destroy(m);
        return st;
    }
    *out = m;
    return OQ_OK;
}

oq_load_options oq_load_options_default(void)
{
    oq_load_options o = {0};
    return o;
}

/* protobuf-c decodes nested messages recursively with no depth limit, so a few
 * kilobytes of nested fields overflow the stack. Walk the wire format with the
 * message descriptors first and reject deep nesting; malformed bytes are left
 * for the decoder to report. Returns the depth reached (capped at limit + 1). */
#define MAX_MESSAGE_DEPTH (3 * MAX_GRAPH_DEPTH + 64)

static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static int wire_depth(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth, int limit)
{
    const uint8_t *end = p + n;
    int deepest = depth;
    while (p < end && deepest <= limit) {
        uint64_t key, len;
        if (!wire_varint(&p, end, &key))
            break;
        switch (key & 7) {
        case 0:
            if (!wire_varint(&p, end, &len))
                return deepest;
            break;
        case 1:
            if (end - p < 8)
                return deepest;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return deepest;
            p += 4;
            break;
        case 2: {
            if (!wire_varint(&p, end, &len) || len > (uint64_t)(end - p))
                return deepest;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
                int sub = wire_depth(f->descriptor, p, (size_t)len, depth + 1, limit);
                if (sub > deepest)
                    deepest = sub;
            }
            p += len;
            break;
        }
        default:
            return deepest;
        }
    }
    return deepest;
}

static oq_status load_buffer(const uint8_t *data, size_t size, const char *file, char *dir, const oq_load_options *opt,
                             oq_model **out)
{
    load_ctx c = {file, dir};
    if (size == 0)
        return oq_error(OQ_E_PARSE, "%s: the file is empty", file);
    if (wire_depth(&onnx__model_proto__descriptor, data, size, 0, MAX_MESSAGE_DEPTH) > MAX_MESSAGE_DEPTH)
        return oq_error(OQ_E_PARSE, "%s: protobuf messages are nested more than %d deep", file, MAX_MESSAGE_DEPTH);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!mp)
        return oq_error(OQ_E_PARSE, "%s: not a valid ONNX model (the protobuf is truncated or corrupt)", file);
    oq_model *m = NULL;
    oq_status st = convert_model(&c, mp, &m);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st == OQ_OK && !(m->path = oq_strdup(file)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK)
        st = oq_model_validate(m);
    if (st == OQ_OK && opt && opt->check_operators)
        st = oq_model_check_supported(m);
    if (st != OQ_OK) {
        oq_model_destroy(m);
        return st;
    }
    *out = m;
    return OQ_OK;
}

oq_status oq_model_load_memory(const void *data, size_t size, const char *name, const oq_load_options *opt,
                               oq_model **out)
{
    if ((!data && size) || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_load_memory: NULL argument");
    return load_buffer(data, size, name ? name : "<memory>", NULL, opt, out);
}

oq_status oq_model_load(const char *path, const oq_load_options *opt, oq_model **out)
{
    if (!path || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_load: NULL argument");
    uint8_t *data = NULL;
    size_t size = 0;
    oq_status st = oq_read_file(path, &data, &size);
    if (st != OQ_OK)
        return st;
    char *dir = oq_strdup(path);
    if (!dir) {
        free(data);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    st = load_buffer(data, size, path, dir, opt, out);
    free(dir);
    free(data);
    return st;
}

oq_status oq_tensor_proto_load(const char *path, oq_tensor **out)
{
    uint8_t *data = NULL;
    size_t size = 0;
    oq_status st = oq_read_file(path, &data, &size);
    if (st != OQ_OK)
        return st;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
    free(data);
    if (!tp)
        return oq_error(OQ_E_PARSE, "%s: not a valid serialized TensorProto", path);
    char *dir = oq_strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = 0;
    load_ctx c = {path, slash ? dir : NULL};
    st = convert_tensor(&c, tp, "tensor", out);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    free(dir);
    return st;
}
