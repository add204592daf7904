/* libFuzzer target over the files a user hands the quantizer besides the model:
 * .npy arrays, .npz/.npy calibration data through the data reader, calibration
 * range tables and per-node rules (JSON), PNG/JPEG images (alone and as an image
 * folder through the reader), the image preprocessing spec and the
 * onnxq.rescaled.N metadata records. The first byte picks the parser (and a few
 * options); the rest is the file, written under a tmpfs directory each run since
 * the readers take paths. Build with scripts/fuzz.sh --target fuzz_data; the
 * ctest robustness.fuzz_data_regressions replays fuzz/regressions/data/ through
 * the same function. */
#include "onnxq.h"

#include "data/image.h"
#include "ir/graph.h"
#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ONNXQ_SOURCE_DIR
#define ONNXQ_SOURCE_DIR "."
#endif

/* Headers may declare huge arrays: allocations past the cap fail as they would in a
 * real process, so the out-of-memory paths are what gets tested. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=64"; }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    CASE_NPY,          /* oq_npy_load */
    CASE_NPZ_READER,   /* oq_data_reader over data.npz */
    CASE_NPY_READER,   /* oq_data_reader over data.npy */
    CASE_CALIB_TABLE,  /* oq_calib_table_load */
    CASE_RULES,        /* quant_rules_create with rules_path */
    CASE_IMAGE,        /* oq_image_load (+ preprocessing), or an image folder through the reader */
    CASE_IMAGE_SPEC,   /* oq_image_spec_parse */
    CASE_RESCALED,     /* quant_rescaled_read / _rename on a metadata value */
    N_CASES
};

static char dir[64];
static int verbose; /* FUZZ_DATA_VERBOSE=1: print every failure's message (to check the seeds parse) */
/* symbolic_batch: one float input x [N,4]; fmnist_cnn: one float input [batch,1,28,28] */
static oq_model *model_vec, *model_img;

static void remove_dir(void)
{
    static const char *const files[] = {"data.npy", "data.npz", "table.json", "rules.json", "image", "cls/img.png",
                                        "lock"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/cls", dir);
    rmdir(path);
    rmdir(dir);
    oq_model_destroy(model_vec);
    oq_model_destroy(model_img);
}

static void load_fixture(const char *name, oq_model **out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s/model.onnx", ONNXQ_SOURCE_DIR, name);
    if (oq_model_load(path, NULL, out) != OQ_OK) {
        fprintf(stderr, "fuzz_data: %s\n", oq_last_error());
        abort();
    }
}

/* The working folder: the first of base/oq_fuzz_data.N whose lock no live process holds.
 * Not a random name: the paths reach compared strings, which feed the mutator, and the
 * smoke run must mutate the same way every time; a folder left by a crashed run is reused. */
static bool claim_dir(const char *base)
{
    for (int i = 0; i < 64; i++) {
        snprintf(dir, sizeof dir, "%s/oq_fuzz_data.%d", base, i);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return false;
        char lock[96];
        snprintf(lock, sizeof lock, "%s/lock", dir);
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return true; /* held until the process ends */
        close(fd);
    }
    return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    verbose = getenv("FUZZ_DATA_VERBOSE") && atoi(getenv("FUZZ_DATA_VERBOSE")) > 0;
    if (!claim_dir("/dev/shm") && !claim_dir("/tmp")) {
        perror("fuzz_data: no working folder");
        abort();
    }
    load_fixture("symbolic_batch", &model_vec);
    load_fixture("fmnist_cnn", &model_img);
    atexit(remove_dir);
    return 0;
}

/* A failure must come with a message; an empty one is a bug worth stopping for. */
static void check_message(oq_status st)
{
    const char *msg = oq_last_error();
    if (verbose && st != OQ_OK)
        fprintf(stderr, "fuzz_data: %s: %s\n", oq_status_str(st), msg ? msg : "(null)");
    if (st != OQ_OK && (!msg || !msg[0])) {
        fprintf(stderr, "fuzz_data: status %s without an error message\n", oq_status_str(st));
        abort();
    }
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Every batch the reader gives; opt bits pick the model, batch size and sample cap. */
static void run_reader(const char *source, oq_model *m, unsigned opt)
{
    oq_reader_options ro = oq_reader_options_default();
    static const size_t batch[4] = {0, 1, 3, 7};
    ro.batch_size = batch[opt & 3];
    ro.max_samples = (opt >> 2) & 1 ? 5 : 0;
    oq_data_reader *r = NULL;
    oq_status st = oq_data_reader_open(source, m, &ro, &r);
    check_message(st);
    if (st != OQ_OK)
        return;
    (void)oq_data_reader_sample_count(r);
    size_t n_in = oq_data_reader_input_count(r);
    for (int pass = 0; pass < 2; pass++) {
        for (;;) {
            const oq_tensor *const *b = NULL;
            st = oq_data_reader_next(r, &b);
            check_message(st);
            if (st != OQ_OK || !b)
                break;
            for (size_t i = 0; i < n_in; i++) {
                if (!b[i] || (b[i]->nbytes && !b[i]->data)) {
                    fprintf(stderr, "fuzz_data: reader batch input %zu has no data\n", i);
                    abort();
                }
                /* touch every byte so a short buffer shows under ASan */
                volatile uint8_t sum = 0;
                for (size_t k = 0; k < b[i]->nbytes; k++)
                    sum += ((const uint8_t *)b[i]->data)[k];
                (void)sum;
            }
            const int64_t *labels = NULL;
            size_t n_labels = 0;
            check_message(oq_data_reader_labels(r, &labels, &n_labels));
        }
        if (st != OQ_OK)
            break;
        st = oq_data_reader_rewind(r);
        check_message(st);
        if (st != OQ_OK)
            break;
    }
    oq_data_reader_destroy(r);
}

static void run_image(const char *path, unsigned opt)
{
    uint8_t *px = NULL;
    int w = 0, h = 0, c = opt & 1 ? 3 : 1;
    oq_status st = oq_image_load(path, c, &px, &w, &h);
    check_message(st);
    if (st == OQ_OK) {
        oq_image_spec spec;
        if (oq_image_spec_parse((opt >> 1) & 1 ? "resize=9,crop=5x7,order=bgr" : NULL, &spec) != OQ_OK)
            abort();
        float out[3 * 5 * 7];
        oq_image_preprocess(px, w, h, c, &spec, 5, 7, (opt >> 2) & 1, OQ_FLOAT, out);
    }
    free(px);
}

/* The image folder dir/cls/img.png through the reader into fmnist_cnn's input. */
static void run_image_folder(const uint8_t *data, size_t size, unsigned opt)
{
    char sub[128], path[160];
    snprintf(sub, sizeof sub, "%s/cls", dir);
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
        perror(sub);
        abort();
    }
    snprintf(path, sizeof path, "%s/img.png", sub);
    write_file(path, data, size);
    static const char *const specs[4] = {NULL, "resize=30,order=bgr", "crop=28x28,scale=1,mean=0.5,std=2", "resize=1"};
    oq_reader_options ro = oq_reader_options_default();
    ro.image_spec = specs[opt & 3];
    oq_data_reader *r = NULL;
    oq_status st = oq_data_reader_open(dir, model_img, &ro, &r);
    check_message(st);
    for (const oq_tensor *const *b = NULL; st == OQ_OK;) {
        st = oq_data_reader_next(r, &b);
        check_message(st);
        if (!b)
            break;
    }
    oq_data_reader_destroy(r);
    unlink(path);
}

/* The bytes as the value of an onnxq.rescaled.N record (up to the first NUL, as a
 * protobuf string arrives), read, renamed and read again as `onnxq debug` does. */
static const char *rename_some(void *user, const char *name)
{
    (void)user;
    return name[0] && (name[0] & 1) ? "renamed" : NULL;
}

static void run_rescaled(const uint8_t *data, size_t size)
{
    oq_model *m = oq_model_new();
    if (!m)
        return;
    m->metadata = calloc(2, sizeof *m->metadata);
    if (m->metadata) {
        m->n_metadata = 1;
        m->metadata[0].key = strdup("onnxq.rescaled.0");
        m->metadata[0].value = strndup((const char *)data, size);
    }
    for (int round = 0; round < 2 && m->metadata && m->metadata[0].key && m->metadata[0].value; round++) {
        quant_rescaled *rs = NULL;
        size_t n = 0;
        oq_status st = quant_rescaled_read(m, &rs, &n);
        check_message(st);
        for (size_t i = 0; st == OQ_OK && i < n; i++) {
            if (!rs[i].from || !rs[i].to || (rs[i].ch > 0 && !rs[i].divisor)) {
                fprintf(stderr, "fuzz_data: rescaled entry %zu incomplete\n", i);
                abort();
            }
            volatile float sum = 0;
            for (int64_t c = 0; c < rs[i].ch; c++)
                sum += rs[i].divisor[c];
            (void)sum;
        }
        if (st == OQ_OK)
            quant_rescaled_free(rs, n);
        if (round == 0)
            check_message(quant_rescaled_rename(m, rename_some, NULL));
    }
    oq_model_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % N_CASES, opt = data[0] / N_CASES;
    data++, size--;
    char path[128];
    oq_status st;
    switch (which) {
    case CASE_NPY: {
        snprintf(path, sizeof path, "%s/data.npy", dir);
        write_file(path, data, size);
        oq_tensor *t = NULL;
        st = oq_npy_load(path, &t);
        check_message(st);
        if (st == OQ_OK && t->nbytes) {
            volatile uint8_t sum = 0;
            for (size_t k = 0; k < t->nbytes; k++)
                sum += ((const uint8_t *)t->data)[k];
            (void)sum;
        }
        oq_tensor_destroy(t);
        break;
    }
    case CASE_NPZ_READER:
    case CASE_NPY_READER:
        snprintf(path, sizeof path, "%s/%s", dir, which == CASE_NPZ_READER ? "data.npz" : "data.npy");
        write_file(path, data, size);
        run_reader(path, (opt >> 3) & 1 ? model_img : model_vec, opt);
        break;
    case CASE_CALIB_TABLE: {
        snprintf(path, sizeof path, "%s/table.json", dir);
        write_file(path, data, size);
        oq_calib_table *t = NULL;
        st = oq_calib_table_load(path, &t);
        check_message(st);
        if (st == OQ_OK) {
            float mn, mx;
            (void)oq_calib_table_count(t);
            (void)oq_calib_table_get(t, "x", &mn, &mx);
        }
        oq_calib_table_destroy(t);
        break;
    }
    case CASE_RULES: {
        snprintf(path, sizeof path, "%s/rules.json", dir);
        write_file(path, data, size);
        oq_quant_options qo = oq_quant_options_default();
        qo.rules_path = path;
        qo.mode = opt & 1 ? OQ_QUANT_DYNAMIC : OQ_QUANT_STATIC;
        quant_rules *r = NULL;
        st = quant_rules_create(&qo, &r);
        check_message(st);
        if (st == OQ_OK) {
            const oq_graph *g = model_img->graph;
            for (size_t i = 0; i < g->n_nodes; i++) {
                quant_rule q = quant_rules_for(r, &g->nodes[i]);
                (void)q;
                (void)quant_rules_op_enabled(r, g->nodes[i].op_type);
            }
        }
        quant_rules_destroy(r);
        break;
    }
    case CASE_IMAGE:
        if ((opt >> 3) & 1) {
            run_image_folder(data, size, opt);
        } else {
            snprintf(path, sizeof path, "%s/image", dir);
            write_file(path, data, size);
            run_image(path, opt);
        }
        break;
    case CASE_IMAGE_SPEC: {
        char *text = strndup((const char *)data, size);
        if (!text)
            break;
        oq_image_spec spec;
        check_message(oq_image_spec_parse(text, &spec));
        free(text);
        break;
    }
    case CASE_RESCALED:
        run_rescaled(data, size);
        break;
    }
    return 0;
}
