/* onnx/save: graph IR → ONNX protobuf file. The protobuf-c structs point into
 * the IR (no copies); large initializers may go to an external data file. The
 * file is written to a temporary name and renamed, so a failed save leaves
 * nothing half written. */
#include "onnx/onnx_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything allocated while building the protobuf tree, freed in one go. */
typedef struct save_ctx {
    void **allocs;
    size_t n_allocs, cap_allocs;
    ProtobufCMessage **unpacked; /* messages re-read from kept bytes */
    size_t n_unpacked, cap_unpacked;
    const oq_save_options *opt;
    FILE *ext;             /* external data file, opened lazily */
    char *ext_path, *ext_name;
    uint64_t ext_offset;
    oq_status st;
} save_ctx;

static void *sc_alloc(save_ctx *c, size_t n)
{
    if (c->st != OQ_OK)
        return NULL;
    void *p = oq_calloc(1, n);
    if (!p || oq_grow((void **)&c->allocs, &c->cap_allocs, c->n_allocs + 1, sizeof(void *)) != OQ_OK) {
        free(p);
        c->st = oq_error(OQ_E_NOMEM, "out of memory while saving");
        return NULL;
    }
    c->allocs[c->n_allocs++] = p;
    return p;
}

static ProtobufCMessage *sc_unpack(save_ctx *c, const ProtobufCMessageDescriptor *d, const oq_bytes *b)
{
    if (c->st != OQ_OK)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, b->len, (const uint8_t *)b->data);
    if (!m || oq_grow((void **)&c->unpacked, &c->cap_unpacked, c->n_unpacked + 1, sizeof(void *)) != OQ_OK) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        c->st = oq_error(OQ_E_NOMEM, "could not re-encode a kept protobuf field");
        return NULL;
    }
    c->unpacked[c->n_unpacked++] = m;
    return m;
}

static char *sc_str(save_ctx *c, const char *fmt, long long v)
{
    char *p = sc_alloc(c, 32);
    if (p)
        snprintf(p, 32, fmt, v);
    return p;
}

static Onnx__StringStringEntryProto *sc_entry(save_ctx *c, char *key, char *value)
{
    Onnx__StringStringEntryProto *e = sc_alloc(c, sizeof *e);
    if (!e)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = key;
    e->value = value;
    return e;
}

static Onnx__TensorProto *build_tensor(save_ctx *c, const oq_tensor *t, bool allow_external)
{
    Onnx__TensorProto *tp = sc_alloc(c, sizeof *tp);
    if (!tp)
        return NULL;
    onnx__tensor_proto__init(tp);
    tp->n_dims = (size_t)t->ndim;
    tp->dims = (int64_t *)t->dims;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->name = t->name;
    if (t->dtype == OQ_STRING) {
        size_t n = (size_t)oq_tensor_numel(t);
        ProtobufCBinaryData *sd = sc_alloc(c, (n ? n : 1) * sizeof *sd);
        if (!sd)
            return NULL;
        char **s = t->data;
        for (size_t i = 0; i < n; i++) {
            sd[i].data = (uint8_t *)s[i];
            sd[i].len = s[i] ? strlen(s[i]) : 0;
        }
        tp->n_string_data = n;
        tp->string_data = sd;
        return tp;
    }
    if (allow_external && c->opt && c->opt->external_threshold && t->nbytes >= c->opt->external_threshold &&
        c->ext_path) {
        if (!c->ext) {
            c->ext = fopen(c->ext_path, "wb");
            if (!c->ext) {
                c->st = oq_error(OQ_E_IO, "cannot create external data file '%s': %s", c->ext_path, strerror(errno));
                return NULL;
            }
        }
        /* Align each tensor to 64 bytes, as onnx's own writer does for mmap. */
        while (c->ext_offset % 64) {
            fputc(0, c->ext);
            c->ext_offset++;
        }
        if (fwrite(t->data, 1, t->nbytes, c->ext) != t->nbytes) {
            c->st = oq_error(OQ_E_IO, "could not write external data to '%s'", c->ext_path);
            return NULL;
        }
        Onnx__StringStringEntryProto **e = sc_alloc(c, 3 * sizeof *e);
        if (!e)
            return NULL;
        e[0] = sc_entry(c, "location", c->ext_name);
        e[1] = sc_entry(c, "offset", sc_str(c, "%lld", (long long)c->ext_offset));
        e[2] = sc_entry(c, "length", sc_str(c, "%lld", (long long)t->nbytes));
        c->ext_offset += t->nbytes;
        tp->n_external_data = 3;
        tp->external_data = e;
        tp->has_data_location = 1;
        tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        return tp;
    }
    tp->has_raw_data = 1;
    tp->raw_data.data = t->data;
    tp->raw_data.len = t->nbytes;
    return tp;
}

static Onnx__ValueInfoProto **build_value_infos(save_ctx *c, const oq_value_info *v, size_t n)
{
    Onnx__ValueInfoProto **out = sc_alloc(c, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        Onnx__ValueInfoProto *vp = out[i] = sc_alloc(c, sizeof *vp);
        if (!vp)
            return NULL;
        onnx__value_info_proto__init(vp);
        vp->name = v[i].name;
        vp->doc_string = v[i].doc_string;
        if (v[i].type_proto.data) {
            vp->type = (Onnx__TypeProto *)sc_unpack(c, &onnx__type_proto__descriptor, &v[i].type_proto);
            continue;
        }
        if (v[i].dtype == OQ_UNDEFINED && v[i].ndim < 0)
            continue;
        Onnx__TypeProto *tp = sc_alloc(c, sizeof *tp);
        Onnx__TypeProto__Tensor *tt = sc_alloc(c, sizeof *tt);
        if (!tp || !tt)
            return NULL;
        onnx__type_proto__init(tp);
        onnx__type_proto__tensor__init(tt);
        tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp->tensor_type = tt;
        tt->has_elem_type = 1;
        tt->elem_type = (int32_t)v[i].dtype;
        if (v[i].ndim >= 0) {
            Onnx__TensorShapeProto *sp = sc_alloc(c, sizeof *sp);
            Onnx__TensorShapeProto__Dimension **dims = sc_alloc(c, (size_t)(v[i].ndim + 1) * sizeof *dims);
            if (!sp || !dims)
                return NULL;
            onnx__tensor_shape_proto__init(sp);
            sp->n_dim = (size_t)v[i].ndim;
            sp->dim = dims;
            for (int d = 0; d < v[i].ndim; d++) {
                Onnx__TensorShapeProto__Dimension *dp = dims[d] = sc_alloc(c, sizeof *dp);
                if (!dp)
                    return NULL;
                onnx__tensor_shape_proto__dimension__init(dp);
                if (v[i].dim_params[d]) {
                    dp->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                    dp->dim_param = v[i].dim_params[d];
                } else if (v[i].dims[d] >= 0) {
                    dp->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                    dp->dim_value = v[i].dims[d];
                }
            }
            tt->shape = sp;
        }
        vp->type = tp;
    }
    return out;
}

static Onnx__GraphProto *build_graph(save_ctx *c, const oq_graph *g);

static Onnx__AttributeProto *build_attr(save_ctx *c, const oq_attr *a)
{
    Onnx__AttributeProto *ap = sc_alloc(c, sizeof *ap);
    if (!ap)
        return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = a->name;
    ap->ref_attr_name = a->ref_attr_name;
    ap->doc_string = a->doc_string;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case OQ_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
    case OQ_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
    case OQ_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s.data;
        ap->s.len = a->s.len;
        break;
    default: break;
    }
    if (a->t)
        ap->t = build_tensor(c, a->t, false);
    if (a->g)
        ap->g = build_graph(c, a->g);
    ap->n_floats = a->n_floats;
    ap->floats = a->floats;
    ap->n_ints = a->n_ints;
    ap->ints = a->ints;
    if (a->n_strings) {
        ProtobufCBinaryData *s = sc_alloc(c, a->n_strings * sizeof *s);
        if (!s)
            return NULL;
        for (size_t i = 0; i < a->n_strings; i++) {
            s[i].data = (uint8_t *)a->strings[i].data;
            s[i].len = a->strings[i].len;
        }
        ap->n_strings = a->n_strings;
        ap->strings = s;
    }
    if (a->n_tensors) {
        ap->tensors = sc_alloc(c, a->n_tensors * sizeof *ap->tensors);
        for (size_t i = 0; ap->tensors && i < a->n_tensors; i++)
            ap->tensors[i] = build_tensor(c, a->tensors[i], false);
        ap->n_tensors = a->n_tensors;
    }
    if (a->n_graphs) {
        ap->graphs = sc_alloc(c, a->n_graphs * sizeof *ap->graphs);
        for (size_t i = 0; ap->graphs && i < a->n_graphs; i++)
            ap->graphs[i] = build_graph(c, a->graphs[i]);
        ap->n_graphs = a->n_graphs;
    }
    /* kept packed fields, in the order load stored them */
    size_t r = 0;
    if (a->type == OQ_ATTR_SPARSE_TENSOR && r < a->n_raw)
        ap->sparse_tensor = (Onnx__SparseTensorProto *)sc_unpack(c, &onnx__sparse_tensor_proto__descriptor, &a->raw[r++]);
    if (a->type == OQ_ATTR_SPARSE_TENSORS && a->n_raw) {
        ap->sparse_tensors = sc_alloc(c, a->n_raw * sizeof *ap->sparse_tensors);
        for (; ap->sparse_tensors && r < a->n_raw; r++)
            ap->sparse_tensors[ap->n_sparse_tensors++] =
                (Onnx__SparseTensorProto *)sc_unpack(c, &onnx__sparse_tensor_proto__descriptor, &a->raw[r]);
    }
    if (a->type == OQ_ATTR_TYPE_PROTO && r < a->n_raw)
        ap->tp = (Onnx__TypeProto *)sc_unpack(c, &onnx__type_proto__descriptor, &a->raw[r++]);
    if (a->type == OQ_ATTR_TYPE_PROTOS && a->n_raw) {
        ap->type_protos = sc_alloc(c, a->n_raw * sizeof *ap->type_protos);
        for (; ap->type_protos && r < a->n_raw; r++)
            ap->type_protos[ap->n_type_protos++] = (Onnx__TypeProto *)sc_unpack(c, &onnx__type_proto__descriptor, &a->raw[r]);
    }
    return ap;
}

static Onnx__GraphProto *build_graph(save_ctx *c, const oq_graph *g)
{
    Onnx__GraphProto *gp = sc_alloc(c, sizeof *gp);
    if (!gp)
        return NULL;
    onnx__graph_proto__init(gp);
    gp->name = g->name;
    gp->doc_string = g->doc_string;
    gp->node = sc_alloc(c, (g->n_nodes + 1) * sizeof *gp->node);
    for (size_t i = 0; gp->node && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        Onnx__NodeProto *np = gp->node[i] = sc_alloc(c, sizeof *np);
        if (!np)
            return NULL;
        onnx__node_proto__init(np);
        np->name = n->name;
        np->op_type = n->op_type;
        np->domain = n->domain;
        np->doc_string = n->doc_string;
        np->n_input = n->n_inputs;
        np->input = n->inputs;
        np->n_output = n->n_outputs;
        np->output = n->outputs;
        np->attribute = sc_alloc(c, (n->n_attrs + 1) * sizeof *np->attribute);
        for (size_t a = 0; np->attribute && a < n->n_attrs; a++)
            np->attribute[a] = build_attr(c, &n->attrs[a]);
        np->n_attribute = n->n_attrs;
    }
    gp->n_node = g->n_nodes;
    gp->initializer = sc_alloc(c, (g->n_initializers + 1) * sizeof *gp->initializer);
    for (size_t i = 0; gp->initializer && i < g->n_initializers; i++)
        gp->initializer[i] = build_tensor(c, g->initializers[i], true);
    gp->n_initializer = g->n_initializers;
    if (g->n_sparse_initializers) {
        gp->sparse_initializer = sc_alloc(c, g->n_sparse_initializers * sizeof *gp->sparse_initializer);
        for (size_t i = 0; gp->sparse_initializer && i < g->n_sparse_initializers; i++)
            gp->sparse_initializer[i] = (Onnx__SparseTensorProto *)sc_unpack(
                c, &onnx__sparse_tensor_proto__descriptor, &g->sparse_initializers[i]);
        gp->n_sparse_initializer = g->n_sparse_initializers;
    }
    gp->input = build_value_infos(c, g->inputs, g->n_inputs);
    gp->n_input = g->n_inputs;
    gp->output = build_value_infos(c, g->outputs, g->n_outputs);
    gp->n_output = g->n_outputs;
    gp->value_info = build_value_infos(c, g->value_infos, g->n_value_infos);
    gp->n_value_info = g->n_value_infos;
    return c->st == OQ_OK ? gp : NULL;
}

oq_save_options oq_save_options_default(void)
{
    oq_save_options o = {0};
    o.external_threshold = 0;
    return o;
}

static void ctx_free(save_ctx *c)
{
    for (size_t i = 0; i < c->n_allocs; i++)
        free(c->allocs[i]);
    free(c->allocs);
    for (size_t i = 0; i < c->n_unpacked; i++)
        protobuf_c_message_free_unpacked(c->unpacked[i], NULL);
    free(c->unpacked);
    if (c->ext)
        fclose(c->ext);
    free(c->ext_path);
}

static void build_model(save_ctx *c, const oq_model *m, Onnx__ModelProto *mp)
{
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = m->ir_version ? m->ir_version : 8;
    mp->producer_name = m->producer_name;
    mp->producer_version = m->producer_version;
    mp->domain = m->domain;
    mp->has_model_version = m->model_version != 0;
    mp->model_version = m->model_version;
    mp->doc_string = m->doc_string;
    mp->opset_import = sc_alloc(c, (m->n_opsets + 1) * sizeof *mp->opset_import);
    for (size_t i = 0; mp->opset_import && i < m->n_opsets; i++) {
        Onnx__OperatorSetIdProto *o = mp->opset_import[i] = sc_alloc(c, sizeof *o);
        if (!o)
            break;
        onnx__operator_set_id_proto__init(o);
        o->domain = m->opsets[i].domain;
        o->has_version = 1;
        o->version = m->opsets[i].version;
    }
    mp->n_opset_import = m->n_opsets;
    mp->metadata_props = sc_alloc(c, (m->n_metadata + 1) * sizeof *mp->metadata_props);
    for (size_t i = 0; mp->metadata_props && i < m->n_metadata; i++)
        mp->metadata_props[i] = sc_entry(c, m->metadata[i].key, m->metadata[i].value);
    mp->n_metadata_props = m->n_metadata;
    if (m->n_functions) {
        mp->functions = sc_alloc(c, m->n_functions * sizeof *mp->functions);
        for (size_t i = 0; mp->functions && i < m->n_functions; i++)
            mp->functions[i] = (Onnx__FunctionProto *)sc_unpack(c, &onnx__function_proto__descriptor, &m->functions[i]);
        mp->n_functions = m->n_functions;
    }
    mp->graph = build_graph(c, m->graph);
}

/* Packs the model into a new buffer (no external data). */
static oq_status serialize(const oq_model *m, uint8_t **out, size_t *size)
{
    save_ctx c = {0};
    Onnx__ModelProto mp;
    build_model(&c, m, &mp);
    oq_status st = c.st;
    if (st == OQ_OK) {
        *size = protobuf_c_message_get_packed_size(&mp.base);
        if (!(*out = oq_malloc(*size)))
            st = oq_error(OQ_E_NOMEM, "out of memory serializing a model");
        else
            protobuf_c_message_pack(&mp.base, *out);
    }
    ctx_free(&c);
    return st;
}

oq_status oq_model_clone(const oq_model *m, oq_model **out)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    oq_status st = serialize(m, &buf, &size);
    if (st == OQ_OK)
        st = oq_model_load_memory(buf, size, m->path ? m->path : "<model>", NULL, out);
    free(buf);
    return st;
}

oq_status oq_model_save(const oq_model *m, const char *path, const oq_save_options *opt)
{
    if (!m || !path || !m->graph)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_save: NULL argument");
    save_ctx c = {0};
    c.opt = opt;
    size_t plen = strlen(path);
    char *tmp = oq_malloc(plen + 16), *ext_tmp = NULL;
    if (!tmp)
        return oq_error(OQ_E_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    if (opt && opt->external_threshold) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(base) + 8;
        c.ext_name = sc_alloc(&c, n);
        ext_tmp = oq_malloc(plen + 32);
        c.ext_path = oq_malloc(plen + 32);
        if (!c.ext_name || !ext_tmp || !c.ext_path) {
            free(tmp);
            free(ext_tmp);
            ctx_free(&c);
            return oq_error(OQ_E_NOMEM, "out of memory");
        }
        snprintf(c.ext_name, n, "%s.data", base);
        snprintf(c.ext_path, plen + 32, "%s.data.tmp%ld", path, (long)getpid());
        snprintf(ext_tmp, plen + 32, "%s.data", path);
    }
    Onnx__ModelProto mp;
    build_model(&c, m, &mp);
    oq_status st = c.st;
    uint8_t *buf = NULL;
    size_t size = 0;
    if (st == OQ_OK) {
        size = protobuf_c_message_get_packed_size(&mp.base);
        if (size > INT32_MAX && !(opt && opt->external_threshold))
            st = oq_error(OQ_E_UNSUPPORTED,
                          "'%s': the model is %zu bytes, over protobuf's 2 GB limit; save with external data", path, size);
        else if (!(buf = oq_malloc(size)))
            st = oq_error(OQ_E_NOMEM, "out of memory serializing '%s' (%zu bytes)", path, size);
    }
    if (st == OQ_OK) {
        protobuf_c_message_pack(&mp.base, buf);
        FILE *f = fopen(tmp, "wb");
        if (!f)
            st = oq_error(OQ_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
        else {
            size_t w = fwrite(buf, 1, size, f);
            if (fclose(f) != 0 || w != size)
                st = oq_error(OQ_E_IO, "could not write '%s'", path);
        }
    }
    if (c.ext) {
        if (fclose(c.ext) != 0 && st == OQ_OK)
            st = oq_error(OQ_E_IO, "could not write external data '%s'", c.ext_path);
        c.ext = NULL;
    }
    if (st == OQ_OK && c.ext_offset && rename(c.ext_path, ext_tmp) != 0)
        st = oq_error(OQ_E_IO, "could not rename '%s' to '%s': %s", c.ext_path, ext_tmp, strerror(errno));
    if (st == OQ_OK && rename(tmp, path) != 0)
        st = oq_error(OQ_E_IO, "could not rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != OQ_OK) {
        remove(tmp);
        if (c.ext_path)
            remove(c.ext_path);
    }
    free(buf);
    free(tmp);
    free(ext_tmp);
    ctx_free(&c);
    return st;
}
