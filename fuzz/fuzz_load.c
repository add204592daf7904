/* libFuzzer target over the whole loading path: bytes → oq_model_load_memory →
 * oq_session_create (which clones, rewrites and plans the model) → one
 * oq_session_run on zero-filled inputs when every input has a small static shape.
 * Build with scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined). */
#include "onnxq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Inputs larger than this (elements over all inputs) are not run, to keep RSS bounded. */
#define MAX_RUN_ELEMENTS 1000000

/* A valid model may ask for more memory than the fuzzer allows (a Range or
 * Expand to a huge shape). Make such allocations fail the way they do in a
 * real process, so the library's out-of-memory paths are what gets tested;
 * the low cap also keeps single runs of big convolutions under -timeout. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=64"; }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    return 0;
}

/* A failure must come with a message; an empty one is a bug worth stopping for. */
static void check_message(oq_status st)
{
    const char *msg = oq_last_error();
    if (st != OQ_OK && (!msg || !msg[0])) {
        fprintf(stderr, "fuzz_load: status %s without an error message\n", oq_status_str(st));
        abort();
    }
}

static void run_zeros(oq_session *s)
{
    size_t ni = oq_session_input_count(s), no = oq_session_output_count(s);
    oq_tensor **in = calloc(ni + 1, sizeof *in), **out = calloc(no + 1, sizeof *out);
    int64_t total = 0;
    int ok = in && out;
    for (size_t i = 0; ok && i < ni; i++) {
        const oq_value_desc *d = oq_session_input(s, i);
        if (!d || d->ndim < 0 || d->dtype == OQ_UNDEFINED || d->dtype == OQ_STRING || !oq_dtype_size(d->dtype)) {
            ok = 0;
            break;
        }
        int64_t numel = 1;
        for (int k = 0; k < d->ndim; k++) {
            if (d->dims[k] < 0 || d->dims[k] > MAX_RUN_ELEMENTS) {
                ok = 0;
                break;
            }
            numel *= d->dims[k];
            if (numel > MAX_RUN_ELEMENTS)
                ok = 0;
        }
        total += numel;
        if (!ok || total > MAX_RUN_ELEMENTS || oq_tensor_create(d->dtype, d->ndim, d->dims, &in[i]) != OQ_OK)
            ok = 0;
    }
    if (ok) {
        oq_status st = oq_session_run(s, (const oq_tensor *const *)in, ni, out, no);
        check_message(st);
        if (st == OQ_OK) {
            for (size_t i = 0; i < no; i++) {
                if (!out[i]) {
                    fprintf(stderr, "fuzz_load: successful run left output %zu NULL\n", i);
                    abort();
                }
                oq_tensor_destroy(out[i]);
            }
        }
    }
    for (size_t i = 0; in && i < ni; i++)
        oq_tensor_destroy(in[i]);
    free(in);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oq_model *m = NULL;
    oq_status st = oq_model_load_memory(data, size, "fuzz.onnx", NULL, &m);
    check_message(st);
    if (st != OQ_OK)
        return 0;
    oq_model_info *info = NULL;
    if (oq_model_info_get(m, &info) == OQ_OK)
        oq_model_info_destroy(info);
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    oq_session *s = NULL;
    st = oq_session_create(m, &so, &s);
    check_message(st);
    if (st == OQ_OK)
        run_zeros(s);
    oq_session_destroy(s);
    oq_model_destroy(m);
    return 0;
}
