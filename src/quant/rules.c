/* quant/rules: per-node quantization settings, the analogue of PyTorch's
 * qconfig_dict. A global setting from the options, then overrides by operator
 * type, then by node name or glob pattern (later entries win), then exclusions.
 * Rules file (JSON):
 *   {"global":   {"per_channel": true, "reduce_range": false},
 *    "op_types": {"Gemm": {"per_channel": false}},
 *    "nodes":    {"layer4.*": {"quantize": false}, "conv1": {"per_channel": false}},
 *    "exclude":  ["classifier", "*.downsample.*"]} */
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

typedef struct rule_entry {
    char *pattern;     /* node name glob, or op type */
    int quantize, per_channel, reduce_range; /* -1: not set */
    const char *why;
} rule_entry;

struct quant_rules {
    quant_rule global;
    char **ops;        /* enabled op types */
    size_t n_ops;
    rule_entry *by_op, *by_name;
    size_t n_by_op, n_by_name;
    char **exclude;
    size_t n_exclude;
};

static const char *const static_default_ops =
    "Conv,MatMul,Gemm,Add,Mul,MaxPool,AveragePool,GlobalAveragePool,Concat,Relu,Clip,Flatten,Reshape,"
    "Transpose,Squeeze,Unsqueeze,Pad";
static const char *const dynamic_default_ops = "MatMul,Gemm,LSTM,Conv";

bool quant_glob(const char *p, const char *s)
{
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            ss = s;
        } else if (*p == '?' || *p == *s) {
            p++, s++;
        } else if (star) {
            p = star + 1;
            s = ++ss;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

static oq_status split_list(const char *list, char ***out, size_t *n)
{
    for (const char *s = list; s && *s;) {
        size_t len = strcspn(s, ",");
        while (len && (*s == ' ')) s++, len--;
        if (len) {
            char **v = oq_realloc(*out, sizeof **out * (*n + 1));
            if (!v)
                return oq_error(OQ_E_NOMEM, "out of memory");
            *out = v;
            if (!(v[*n] = oq_strndup(s, len)))
                return oq_error(OQ_E_NOMEM, "out of memory");
            (*n)++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return OQ_OK;
}

void quant_rules_destroy(quant_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ops; i++)
        free(r->ops[i]);
    free(r->ops);
    for (size_t i = 0; i < r->n_by_op; i++)
        free(r->by_op[i].pattern);
    free(r->by_op);
    for (size_t i = 0; i < r->n_by_name; i++)
        free(r->by_name[i].pattern);
    free(r->by_name);
    for (size_t i = 0; i < r->n_exclude; i++)
        free(r->exclude[i]);
    free(r->exclude);
    free(r);
}

static int flag(const json_value *obj, const char *key, const char *path, oq_status *st)
{
    const json_value *v = json_get(obj, key);
    if (!v)
        return -1;
    if (v->type != JSON_BOOL && v->type != JSON_NUMBER) {
        *st = oq_error(OQ_E_PARSE, "%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    return v->num != 0;
}

static oq_status check_keys(const json_value *obj, const char *const *allowed, const char *path, const char *where)
{
    if (obj->type != JSON_OBJECT)
        return oq_error(OQ_E_PARSE, "%s: %s must be an object", path, where);
    for (size_t i = 0; i < obj->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(*a, obj->keys[i]);
        if (!ok)
            return oq_error(OQ_E_PARSE, "%s: unknown setting \"%s\" in %s (known: quantize, per_channel, "
                            "reduce_range)", path, obj->keys[i], where);
    }
    return OQ_OK;
}

static const char *const node_keys[] = {"quantize", "per_channel", "reduce_range", NULL};

static oq_status load_entries(const json_value *obj, const char *path, const char *section, rule_entry **out,
                              size_t *n)
{
    if (!obj)
        return OQ_OK;
    if (obj->type != JSON_OBJECT)
        return oq_error(OQ_E_PARSE, "%s: \"%s\" must be an object of name: settings", path, section);
    *out = oq_calloc(obj->n + 1, sizeof **out);
    if (!*out)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < obj->n; i++) {
        char where[300];
        snprintf(where, sizeof where, "%s.\"%s\"", section, obj->keys[i]);
        oq_status st = check_keys(&obj->items[i], node_keys, path, where);
        if (st != OQ_OK)
            return st;
        rule_entry *e = &(*out)[(*n)++];
        if (!(e->pattern = oq_strdup(obj->keys[i])))
            return oq_error(OQ_E_NOMEM, "out of memory");
        e->quantize = flag(&obj->items[i], "quantize", path, &st);
        e->per_channel = flag(&obj->items[i], "per_channel", path, &st);
        e->reduce_range = flag(&obj->items[i], "reduce_range", path, &st);
        e->why = !strcmp(section, "op_types") ? "excluded by rules (op_types)" : "excluded by rules (nodes)";
        if (st != OQ_OK)
            return st;
    }
    return OQ_OK;
}

static oq_status load_file(quant_rules *r, const char *path)
{
    json_value doc;
    oq_status st = json_parse_file(path, &doc);
    if (st != OQ_OK)
        return st;
    static const char *const top[] = {"global", "op_types", "nodes", "exclude", NULL};
    if (doc.type != JSON_OBJECT)
        st = oq_error(OQ_E_PARSE, "%s: a rules file is a JSON object", path);
    for (size_t i = 0; st == OQ_OK && i < doc.n; i++) {
        bool ok = false;
        for (const char *const *a = top; *a; a++)
            ok |= !strcmp(*a, doc.keys[i]);
        if (!ok)
            st = oq_error(OQ_E_PARSE, "%s: unknown section \"%s\" (known: global, op_types, nodes, exclude)", path,
                          doc.keys[i]);
    }
    const json_value *gl = st == OQ_OK ? json_get(&doc, "global") : NULL;
    if (gl && (st = check_keys(gl, node_keys, path, "global")) == OQ_OK) {
        int v;
        if ((v = flag(gl, "per_channel", path, &st)) >= 0)
            r->global.per_channel = v;
        if ((v = flag(gl, "reduce_range", path, &st)) >= 0)
            r->global.reduce_range = v;
        if ((v = flag(gl, "quantize", path, &st)) >= 0)
            r->global.quantize = v;
    }
    if (st == OQ_OK)
        st = load_entries(json_get(&doc, "op_types"), path, "op_types", &r->by_op, &r->n_by_op);
    if (st == OQ_OK)
        st = load_entries(json_get(&doc, "nodes"), path, "nodes", &r->by_name, &r->n_by_name);
    const json_value *ex = st == OQ_OK ? json_get(&doc, "exclude") : NULL;
    if (ex && ex->type != JSON_ARRAY)
        st = oq_error(OQ_E_PARSE, "%s: \"exclude\" must be an array of node names or patterns", path);
    for (size_t i = 0; ex && st == OQ_OK && i < ex->n; i++) {
        if (ex->items[i].type != JSON_STRING) {
            st = oq_error(OQ_E_PARSE, "%s: \"exclude\" item %zu is not a string", path, i);
            break;
        }
        st = split_list(ex->items[i].str, &r->exclude, &r->n_exclude);
    }
    json_free(&doc);
    return st;
}

oq_status quant_rules_create(const oq_quant_options *opt, quant_rules **out)
{
    quant_rules *r = oq_calloc(1, sizeof *r);
    if (!r)
        return oq_error(OQ_E_NOMEM, "out of memory");
    r->global.quantize = 1;
    r->global.per_channel = opt->per_channel;
    r->global.reduce_range = opt->reduce_range;
    const char *ops = opt->op_types && opt->op_types[0] ? opt->op_types
                      : opt->mode == OQ_QUANT_DYNAMIC ? dynamic_default_ops : static_default_ops;
    oq_status st = split_list(ops, &r->ops, &r->n_ops);
    if (st == OQ_OK)
        st = split_list(opt->exclude, &r->exclude, &r->n_exclude);
    if (st == OQ_OK && opt->rules_path)
        st = load_file(r, opt->rules_path);
    if (st != OQ_OK) {
        quant_rules_destroy(r);
        return st;
    }
    *out = r;
    return OQ_OK;
}

bool quant_rules_op_enabled(const quant_rules *r, const char *op_type)
{
    for (size_t i = 0; i < r->n_ops; i++)
        if (!strcmp(r->ops[i], op_type))
            return true;
    return false;
}

static void apply(quant_rule *q, const rule_entry *e)
{
    if (e->quantize >= 0) {
        q->quantize = e->quantize;
        q->why = e->quantize ? NULL : e->why;
    }
    if (e->per_channel >= 0)
        q->per_channel = e->per_channel;
    if (e->reduce_range >= 0)
        q->reduce_range = e->reduce_range;
}

quant_rule quant_rules_for(const quant_rules *r, const oq_node *n)
{
    quant_rule q = r->global;
    q.why = q.quantize ? NULL : "excluded by rules (global)";
    if (!quant_rules_op_enabled(r, n->op_type)) {
        q.quantize = 0;
        q.why = "operator type not selected";
    }
    for (size_t i = 0; i < r->n_by_op; i++)
        if (!strcmp(r->by_op[i].pattern, n->op_type))
            apply(&q, &r->by_op[i]);
    const char *name = n->name ? n->name : "";
    for (size_t i = 0; i < r->n_by_name; i++)
        if (quant_glob(r->by_name[i].pattern, name))
            apply(&q, &r->by_name[i]);
    for (size_t i = 0; i < r->n_exclude; i++)
        if (quant_glob(r->exclude[i], name)) {
            q.quantize = 0;
            q.why = "excluded";
        }
    return q;
}
