/* passes/pipeline: the named passes `onnxq optimize --passes` can pick, and
 * the preparation pipeline the quantizer runs before it quantizes. (The
 * session's own pipeline is oq_passes_run_default in util.c.) */
#include "passes/pass.h"

#include <string.h>

static const oq_pass_info passes[] = {
    {"upgrade_opset", pass_upgrade_opset, true, "raise the opset (to --opset, default 13) for quantized operators"},
    {"constant_fold", pass_constant_fold, false, "Constant nodes and constant subgraphs to initializers"},
    {"fuse_identity", pass_fuse_identity, false, "remove Identity and inference Dropout"},
    {"fill_to_pad", pass_fill_to_pad, false, "Concat with a constant fill (ConstantOfShape) to Pad"},
    {"fold_batchnorm", pass_fold_batchnorm, false, "fold BatchNormalization into Conv/ConvTranspose/Gemm weights"},
    {"equalize_conv", pass_equalize_conv, false,
     "cross-layer equalization of Conv|affine -> [Relu] -> Conv|Gemm|MatMul (for quantization)"},
    {"fuse_layernorm", pass_fuse_layernorm, false, "decomposed layer norm to LayerNormalization"},
    {"fuse_gelu", pass_fuse_gelu, false, "erf GELU pattern to Gelu"},
    {"fuse_matmul_bias", pass_fuse_matmul_bias, false, "2-D MatMul + constant bias Add to Gemm"},
    {"fuse_activation", pass_fuse_activation, false,
     "Relu/Clip into Conv/Gemm (onnxq-only attributes: the file then runs in onnxq only)"},
    {"dead_nodes", pass_dead_nodes, false, "remove nodes and initializers that reach no output"},
};

const oq_pass_info *oq_pass_list(size_t *count)
{
    *count = sizeof passes / sizeof passes[0];
    return passes;
}

const oq_pass_info *oq_pass_find(const char *name)
{
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++)
        if (!strcmp(passes[i].name, name))
            return &passes[i];
    return NULL;
}

static oq_status run_on(const oq_pass_info *p, oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    oq_status st = p->fn(m, g, ctx);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs && st == OQ_OK; a++) {
            if (g->nodes[i].attrs[a].g)
                st = run_on(p, m, g->nodes[i].attrs[a].g, ctx);
            for (size_t k = 0; k < g->nodes[i].attrs[a].n_graphs && st == OQ_OK; k++)
                st = run_on(p, m, g->nodes[i].attrs[a].graphs[k], ctx);
        }
    return st;
}

oq_status oq_pass_run(const oq_pass_info *p, oq_model *m, oq_pass_ctx *ctx)
{
    if (p->whole_model)
        return p->fn(m, m->graph, ctx);
    return run_on(p, m, m->graph, ctx);
}

oq_status oq_passes_run_prepare(oq_model *m, oq_pass_ctx *ctx)
{
    static const char *const names[] = {"constant_fold", "fuse_identity", "fill_to_pad", "fold_batchnorm",
                                         "equalize_conv", "dead_nodes"};
    oq_status st = OQ_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && st == OQ_OK; i++)
        st = oq_pass_run(oq_pass_find(names[i]), m, ctx);
    return st;
}

/* Public entry for `onnxq optimize` (declared in include/onnxq.h once the lead
 * moves it there; tools/onnxq/optimize.c declares it meanwhile). passes: comma
 * separated names, NULL for the preparation pipeline, which raises the opset
 * to target_opset (13 when 0) only when the model is below 10, the first opset
 * with QuantizeLinear; an explicit target_opset always applies. */
typedef void (*oq_optimize_report_fn)(void *user, const char *pass, const char *msg);
oq_status oq_model_optimize(oq_model *m, const char *pass_list, int64_t target_opset, oq_optimize_report_fn fn,
                            void *user);
oq_status oq_model_optimize(oq_model *m, const char *pass_list, int64_t target_opset, oq_optimize_report_fn fn,
                            void *user)
{
    if (!m || !m->graph)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_optimize: NULL model");
    oq_pass_ctx ctx = {0};
    ctx.report = fn;
    ctx.report_user = user;
    ctx.target_opset = target_opset;
    if (!pass_list) {
        oq_status st = OQ_OK;
        if (target_opset || oq_model_opset(m, "") < 10)
            st = oq_pass_run(oq_pass_find("upgrade_opset"), m, &ctx);
        return st == OQ_OK ? oq_passes_run_prepare(m, &ctx) : st;
    }
    /* Check every name before changing anything. */
    const oq_pass_info *todo[64];
    size_t n = 0;
    for (const char *s = pass_list; *s;) {
        size_t len = strcspn(s, ",");
        char name[64];
        if (len == 0 || len >= sizeof name)
            return oq_error(OQ_E_INVALID_ARG, "bad pass list '%s'", pass_list);
        memcpy(name, s, len);
        name[len] = 0;
        const oq_pass_info *p = oq_pass_find(name);
        if (!p)
            return oq_error(OQ_E_INVALID_ARG, "unknown pass '%s' (see --list)", name);
        if (n == sizeof todo / sizeof todo[0])
            return oq_error(OQ_E_INVALID_ARG, "too many passes in '%s'", pass_list);
        todo[n++] = p;
        s += len;
        s += *s == ',';
    }
    oq_status st = OQ_OK;
    for (size_t i = 0; i < n && st == OQ_OK; i++)
        st = oq_pass_run(todo[i], m, &ctx);
    return st;
}

/* Names and descriptions for `onnxq optimize --list`. */
size_t oq_optimize_pass_count(void);
const char *oq_optimize_pass_name(size_t i, const char **help);
size_t oq_optimize_pass_count(void) { return sizeof passes / sizeof passes[0]; }
const char *oq_optimize_pass_name(size_t i, const char **help)
{
    if (i >= sizeof passes / sizeof passes[0])
        return NULL;
    if (help)
        *help = passes[i].help;
    return passes[i].name;
}
