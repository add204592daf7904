/* Conformance runner: the official ONNX backend node tests (Debian's
 * libonnx-testdata). A test is "claimed" when every operator in its model is in
 * onnxq's registry; claimed tests must pass unless skip.txt lists them with a
 * reason. Ends with the summary line "N passed, M failed". */
#include "onnx/onnx_io.h"
#include "ops/op.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_DIR "/usr/include/onnx/backend/test/data/node"

typedef struct skip_entry {
    char *name, *reason;
} skip_entry;

static skip_entry *skips;
static size_t n_skips;

static void load_skips(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || !*p)
            continue;
        char *end = p;
        while (*end && *end != ' ' && *end != '\t' && *end != '\n')
            end++;
        char *reason = end;
        while (*reason == ' ' || *reason == '\t')
            reason++;
        reason[strcspn(reason, "\n")] = 0;
        skip_entry *ns = realloc(skips, (n_skips + 1) * sizeof *ns);
        if (!ns)
            break;
        skips = ns;
        skips[n_skips].name = strndup(p, (size_t)(end - p));
        skips[n_skips].reason = strdup(reason);
        n_skips++;
    }
    fclose(f);
}

static const char *skip_reason(const char *test)
{
    for (size_t i = 0; i < n_skips; i++)
        if (!strcmp(skips[i].name, test))
            return skips[i].reason;
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every operator of the graph (and subgraphs) is in the registry. */
static bool claimed(const oq_graph *g, char *missing, size_t len)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (!oq_op_find_any(n->domain, n->op_type)) {
            snprintf(missing, len, "%s", n->op_type);
            return false;
        }
        for (size_t a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g && !claimed(n->attrs[a].g, missing, len))
                return false;
            for (size_t k = 0; k < n->attrs[a].n_graphs; k++)
                if (!claimed(n->attrs[a].graphs[k], missing, len))
                    return false;
        }
    }
    return true;
}

static bool compare(const oq_tensor *got, const oq_tensor *want, char *why, size_t len)
{
    char a[128], b[128];
    if (got->dtype != want->dtype) {
        snprintf(why, len, "type %s, expected %s", oq_dtype_name(got->dtype), oq_dtype_name(want->dtype));
        return false;
    }
    if (!oq_shape_equal(got->ndim, got->dims, want->ndim, want->dims)) {
        snprintf(why, len, "shape %s, expected %s", oq_shape_str(got->ndim, got->dims, a, sizeof a),
                 oq_shape_str(want->ndim, want->dims, b, sizeof b));
        return false;
    }
    int64_t n = oq_tensor_numel(want);
    for (int64_t i = 0; i < n; i++) {
        if (want->dtype == OQ_STRING) {
            const char *x = ((char **)got->data)[i], *y = ((char **)want->data)[i];
            if (strcmp(x ? x : "", y ? y : "")) {
                snprintf(why, len, "element %lld: \"%s\", expected \"%s\"", (long long)i, x, y);
                return false;
            }
            continue;
        }
        bool fp = want->dtype == OQ_FLOAT || want->dtype == OQ_DOUBLE || want->dtype == OQ_FLOAT16 ||
                  want->dtype == OQ_BFLOAT16;
        if (fp) {
            double x = oq_tensor_get_f64(got, i), y = oq_tensor_get_f64(want, i);
            if (isnan(y) ? !isnan(x) : (isinf(y) ? x != y : fabs(x - y) > 1e-7 + 1e-3 * fabs(y))) {
                snprintf(why, len, "element %lld: %.9g, expected %.9g", (long long)i, x, y);
                return false;
            }
        } else if (oq_tensor_get_i64(got, i) != oq_tensor_get_i64(want, i) ||
                   (want->dtype == OQ_UINT64 &&
                    ((const uint64_t *)got->data)[i] != ((const uint64_t *)want->data)[i])) {
            snprintf(why, len, "element %lld: %lld, expected %lld", (long long)i,
                     (long long)oq_tensor_get_i64(got, i), (long long)oq_tensor_get_i64(want, i));
            return false;
        }
    }
    return true;
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Runs one test case; returns true on pass, fills why on failure. */
static bool run_case(const char *dir, char *why, size_t len, bool *is_claimed, char *missing, size_t mlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    oq_model *m = NULL;
    oq_session *s = NULL;
    bool ok = true;
    *is_claimed = true;
    oq_status st = oq_model_load(path, NULL, &m);
    if (st != OQ_OK) {
        snprintf(why, len, "load: %s", oq_last_error());
        return false;
    }
    if (!claimed(m->graph, missing, mlen)) {
        *is_claimed = false;
        oq_model_destroy(m);
        return false;
    }
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    st = oq_session_create(m, &so, &s);
    if (st != OQ_OK) {
        snprintf(why, len, "session: %s", oq_last_error());
        oq_model_destroy(m);
        return false;
    }
    size_t n_in = oq_session_input_count(s), n_out = oq_session_output_count(s);
    for (int ds = 0; ok; ds++) {
        char dsdir[4300];
        snprintf(dsdir, sizeof dsdir, "%s/test_data_set_%d", dir, ds);
        if (!exists(dsdir))
            break;
        oq_tensor **in = calloc(n_in + 1, sizeof *in), **out = calloc(n_out + 1, sizeof *out),
                  **want = calloc(n_out + 1, sizeof *want);
        for (size_t i = 0; ok && i < n_in; i++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/input_%zu.pb", dsdir, i);
            if (oq_tensor_proto_load(p, &in[i]) != OQ_OK) {
                snprintf(why, len, "input %zu: %s", i, oq_last_error());
                ok = false;
            } else if (in[i]->dtype == OQ_UINT16 && oq_session_input(s, i)->dtype == OQ_BFLOAT16) {
                in[i]->dtype = OQ_BFLOAT16; /* onnx 1.12 test data stores bfloat16 tensors as uint16 */
            }
        }
        for (size_t i = 0; ok && i < n_out; i++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/output_%zu.pb", dsdir, i);
            if (oq_tensor_proto_load(p, &want[i]) != OQ_OK) {
                snprintf(why, len, "expected output %zu: %s", i, oq_last_error());
                ok = false;
            } else if (want[i]->dtype == OQ_UINT16 && oq_session_output(s, i)->dtype == OQ_BFLOAT16) {
                want[i]->dtype = OQ_BFLOAT16;
            }
        }
        if (ok && oq_session_run(s, (const oq_tensor *const *)in, n_in, out, n_out) != OQ_OK) {
            snprintf(why, len, "run: %s", oq_last_error());
            ok = false;
        }
        for (size_t i = 0; ok && i < n_out; i++) {
            char w[512];
            if (!compare(out[i], want[i], w, sizeof w)) {
                snprintf(why, len, "output %zu '%s': %s", i, oq_session_output(s, i)->name, w);
                ok = false;
            }
        }
        for (size_t i = 0; i < n_in; i++)
            oq_tensor_destroy(in[i]);
        for (size_t i = 0; i < n_out; i++) {
            oq_tensor_destroy(out[i]);
            oq_tensor_destroy(want[i]);
        }
        free(in);
        free(out);
        free(want);
    }
    oq_session_destroy(s);
    oq_model_destroy(m);
    return ok;
}

int main(int argc, char **argv)
{
    const char *root = DEFAULT_DIR, *filter = NULL, *skip_file = "tests/conformance/skip.txt";
    bool verbose = false, list_unclaimed = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            root = argv[++i];
        else if (!strcmp(argv[i], "--skip-file") && i + 1 < argc)
            skip_file = argv[++i];
        else if (!strcmp(argv[i], "-v"))
            verbose = true;
        else if (!strcmp(argv[i], "--unclaimed"))
            list_unclaimed = true;
        else {
            fprintf(stderr, "usage: %s [--dir DIR] [--filter SUBSTRING] [--skip-file FILE] [-v] [--unclaimed]\n", argv[0]);
            return 2;
        }
    }
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    load_skips(skip_file);
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "cannot open %s (install libonnx-testdata)\n", root);
        return 2;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "test_", 5) || (filter && !strstr(de->d_name, filter)))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn)
            break;
        names = nn;
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    size_t passed = 0, failed = 0, skipped = 0, unclaimed = 0, skip_passed = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[4096], why[1024] = "", missing[128] = "";
        bool is_claimed;
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        bool ok = run_case(dir, why, sizeof why, &is_claimed, missing, sizeof missing);
        const char *reason = skip_reason(names[i]);
        if (!is_claimed) {
            unclaimed++;
            if (list_unclaimed)
                printf("UNCLAIMED %s (%s)\n", names[i], missing);
        } else if (ok) {
            if (reason) {
                skip_passed++;
                printf("PASS %s (listed in skip.txt: remove it)\n", names[i]);
            } else if (verbose) {
                printf("PASS %s\n", names[i]);
            }
            passed++;
        } else if (reason) {
            skipped++;
            if (verbose)
                printf("SKIP %s: %s (%s)\n", names[i], reason, why);
        } else {
            failed++;
            printf("FAIL %s: %s\n", names[i], why);
        }
        free(names[i]);
    }
    free(names);
    printf("%zu claimed tests: %zu skipped with a reason in skip.txt, %zu not claimed (operator not implemented)\n",
           passed + failed + skipped, skipped, unclaimed);
    printf("%zu passed, %zu failed\n", passed, failed);
    for (size_t i = 0; i < n_skips; i++) {
        free(skips[i].name);
        free(skips[i].reason);
    }
    free(skips);
    return failed ? 1 : 0;
}
