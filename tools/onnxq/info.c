/* onnxq info: describes a model (inputs, outputs, opsets, operator histogram,
 * parameters, quantized or not, operator support) as text or JSON. */
#include "cli.h"

#include <string.h>

static const char usage[] =
    "usage: onnxq info MODEL [--json]\n"
    "\n"
    "Describes MODEL: inputs and outputs with types and shapes, opsets, IR version,\n"
    "producer, operator histogram (subgraphs included), parameter count and size,\n"
    "whether it is quantized and whether onnxq implements every operator.\n"
    "\n"
    "options:\n"
    "  --json      print one JSON object instead of text\n"
    "  -h, --help  show this help\n";

static void human_bytes(int64_t b, char *buf, size_t n)
{
    if (b >= 1024 * 1024)
        snprintf(buf, n, "%.2f MiB", (double)b / (1024.0 * 1024.0));
    else if (b >= 1024)
        snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, n, "%lld B", (long long)b);
}

/* 1234567 → "1,234,567" */
static void grouped(int64_t v, char *buf, size_t n)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(digits), o = 0;
    if (v < 0 && o + 1 < n)
        buf[o++] = '-';
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && o + 1 < n)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
}

static const char *domain_name(const char *d) { return d && *d ? d : "ai.onnx"; }
static bool is_default_domain(const char *d) { return !d || !*d || strcmp(d, "ai.onnx") == 0; }

static void print_values_text(const char *title, const oq_value_desc *v, size_t n)
{
    printf("%s (%zu):\n", title, n);
    size_t w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i].name) > w)
            w = strlen(v[i].name);
    for (size_t i = 0; i < n; i++) {
        char shape[512];
        printf("  %-*s  %-8s  %s\n", (int)w, v[i].name, oq_dtype_name(v[i].dtype),
               cli_shape_str(&v[i], shape, sizeof shape));
    }
}

static void print_values_json(const oq_value_desc *v, size_t n)
{
    fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"name\":", i ? "," : "");
        cli_json_string(stdout, v[i].name);
        printf(",\"dtype\":\"%s\",\"shape\":", oq_dtype_name(v[i].dtype));
        if (v[i].ndim < 0) {
            fputs("null", stdout);
        } else {
            fputc('[', stdout);
            for (int k = 0; k < v[i].ndim; k++) {
                if (k)
                    fputc(',', stdout);
                if (v[i].dim_params[k] && *v[i].dim_params[k])
                    cli_json_string(stdout, v[i].dim_params[k]);
                else if (v[i].dims[k] < 0)
                    fputs("null", stdout);
                else
                    printf("%lld", (long long)v[i].dims[k]);
            }
            fputc(']', stdout);
        }
        fputc('}', stdout);
    }
    fputc(']', stdout);
}

static void print_text(const char *path, const oq_model_info *info, oq_status support, const char *support_msg)
{
    char a[64], b[64];
    printf("model:       %s\n", path);
    printf("ir version:  %lld\n", (long long)info->ir_version);
    printf("producer:    %s\n", *info->producer ? info->producer : "(none)");
    if (info->graph_name && *info->graph_name)
        printf("graph:       %s\n", info->graph_name);
    printf("opsets:      ");
    for (size_t i = 0; i < info->n_opsets; i++)
        printf("%s%s %lld", i ? ", " : "", domain_name(info->opsets[i].domain), (long long)info->opsets[i].version);
    printf("%s\n", info->n_opsets ? "" : "(none)");
    print_values_text("inputs", info->inputs, info->n_inputs);
    print_values_text("outputs", info->outputs, info->n_outputs);
    printf("operators (%zu nodes, %zu types):\n", info->n_nodes, info->n_op_types);
    size_t w = 4;
    for (size_t i = 0; i < info->n_op_types; i++) {
        size_t l = strlen(info->op_types[i].op_type) +
                   (is_default_domain(info->op_types[i].domain) ? 0 : strlen(info->op_types[i].domain) + 1);
        if (l > w)
            w = l;
    }
    for (size_t i = 0; i < info->n_op_types; i++) {
        const oq_op_count *c = &info->op_types[i];
        char name[256];
        if (is_default_domain(c->domain))
            snprintf(name, sizeof name, "%s", c->op_type);
        else
            snprintf(name, sizeof name, "%s:%s", c->domain, c->op_type);
        printf("  %-*s  %zu\n", (int)w, name, c->count);
    }
    grouped(info->n_parameters, a, sizeof a);
    human_bytes(info->parameter_bytes, b, sizeof b);
    printf("parameters:  %s (%s, %.2f MiB) in %zu initializers\n", a, b,
           (double)info->parameter_bytes / (1024.0 * 1024.0), info->n_initializers);
    if (info->is_quantized)
        printf("quantized:   yes (%zu quantized nodes)\n", info->n_quantized_nodes);
    else
        printf("quantized:   no\n");
    if (support == OQ_OK)
        printf("supported:   yes, every operator is implemented\n");
    else
        printf("supported:   no: %s\n", support_msg);
}

static void print_json(const char *path, const oq_model_info *info, oq_status support, const char *support_msg)
{
    fputs("{\"model\":", stdout);
    cli_json_string(stdout, path);
    printf(",\"ir_version\":%lld,\"producer\":", (long long)info->ir_version);
    cli_json_string(stdout, info->producer);
    fputs(",\"graph_name\":", stdout);
    cli_json_string(stdout, info->graph_name);
    fputs(",\"opsets\":[", stdout);
    for (size_t i = 0; i < info->n_opsets; i++) {
        printf("%s{\"domain\":", i ? "," : "");
        cli_json_string(stdout, info->opsets[i].domain);
        printf(",\"version\":%lld}", (long long)info->opsets[i].version);
    }
    fputs("],\"inputs\":", stdout);
    print_values_json(info->inputs, info->n_inputs);
    fputs(",\"outputs\":", stdout);
    print_values_json(info->outputs, info->n_outputs);
    printf(",\"n_nodes\":%zu,\"operators\":[", info->n_nodes);
    for (size_t i = 0; i < info->n_op_types; i++) {
        printf("%s{\"domain\":", i ? "," : "");
        cli_json_string(stdout, info->op_types[i].domain);
        fputs(",\"op_type\":", stdout);
        cli_json_string(stdout, info->op_types[i].op_type);
        printf(",\"count\":%zu}", info->op_types[i].count);
    }
    printf("],\"n_initializers\":%zu,\"parameters\":%lld,\"parameter_bytes\":%lld,\"parameter_mib\":%.4f,"
           "\"is_quantized\":%s,\"n_quantized_nodes\":%zu,\"supported\":%s",
           info->n_initializers, (long long)info->n_parameters, (long long)info->parameter_bytes,
           (double)info->parameter_bytes / (1024.0 * 1024.0), info->is_quantized ? "true" : "false",
           info->n_quantized_nodes, support == OQ_OK ? "true" : "false");
    if (support != OQ_OK) {
        fputs(",\"unsupported\":", stdout);
        cli_json_string(stdout, support_msg);
    }
    fputs("}\n", stdout);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0)
            json = true;
        else if (a[0] == '-' && a[1])
            return cli_usage_error(usage, "unknown option '%s' for info", a);
        else if (!path)
            path = a;
        else
            return cli_usage_error(usage, "unexpected argument '%s'", a);
    }
    if (!path)
        return cli_usage_error(usage, "info needs a MODEL file");

    oq_load_options lo = oq_load_options_default();
    lo.check_operators = 0; /* describe unsupported models too */
    oq_model *m = NULL;
    oq_status st = oq_model_load(path, &lo, &m);
    if (st != OQ_OK)
        return cli_fail(st);
    oq_model_info *info = NULL;
    if ((st = oq_model_info_get(m, &info)) != OQ_OK) {
        oq_model_destroy(m);
        return cli_fail(st);
    }
    oq_status support = oq_model_check_supported(m);
    char support_msg[1024] = "";
    if (support != OQ_OK)
        snprintf(support_msg, sizeof support_msg, "%s", *oq_last_error() ? oq_last_error() : oq_status_str(support));
    if (json)
        print_json(path, info, support, support_msg);
    else
        print_text(path, info, support, support_msg);
    oq_model_info_destroy(info);
    oq_model_destroy(m);
    return 0;
}
