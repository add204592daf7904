/* Unit tests for data/npy: round trip of every dtype, hand-written files of
 * every format version / byte order / memory order, files written by numpy
 * (when python3 with numpy is present) and corrupt files. */
#include "core/core.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/oq_test_npy_XXXXXX";

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Builds an npy file: magic, version, header (unpadded unless the text is), data. */
static size_t make_npy(unsigned char *buf, int major, const char *header, const void *data, size_t nbytes)
{
    size_t hl = strlen(header), o = 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    o = 8;
    if (major == 1) {
        buf[o++] = (unsigned char)(hl & 0xff);
        buf[o++] = (unsigned char)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            buf[o++] = (unsigned char)(hl >> (8 * i));
    }
    memcpy(buf + o, header, hl);
    o += hl;
    if (nbytes)
        memcpy(buf + o, data, nbytes);
    return o + nbytes;
}

static oq_tensor *load_bytes(const char *name, const unsigned char *b, size_t n, oq_status *st)
{
    const char *p = tmp_path(name);
    write_bytes(p, b, n);
    oq_tensor *t = NULL;
    *st = oq_npy_load(p, &t);
    return t;
}

static void test_round_trip(void)
{
    static const oq_dtype types[] = {OQ_FLOAT, OQ_DOUBLE, OQ_FLOAT16, OQ_INT8,  OQ_UINT8,  OQ_INT16,     OQ_UINT16,
                                     OQ_INT32, OQ_UINT32, OQ_INT64,   OQ_UINT64, OQ_BOOL, OQ_COMPLEX64, OQ_COMPLEX128};
    static const struct {
        int ndim;
        int64_t dims[4];
    } shapes[] = {{0, {0}}, {1, {5}}, {3, {2, 3, 4}}, {2, {0, 3}}, {4, {1, 2, 1, 3}}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            oq_tensor *t = NULL, *u = NULL;
            CHECK_OK(oq_tensor_create(types[ti], shapes[si].ndim, shapes[si].dims, &t));
            if (!t)
                continue;
            unsigned char *b = t->data;
            for (size_t i = 0; i < t->nbytes; i++)
                b[i] = types[ti] == OQ_BOOL ? (unsigned char)(i % 3 == 0) : (unsigned char)(i * 37 + 11);
            const char *p = tmp_path("rt.npy");
            CHECK_OK(oq_npy_save(p, t));
            CHECK_OK(oq_npy_load(p, &u));
            if (u) {
                CHECK(u->dtype == t->dtype);
                CHECK(oq_shape_equal(u->ndim, u->dims, t->ndim, t->dims));
                CHECK(u->nbytes == t->nbytes);
                CHECK(t->nbytes == 0 || memcmp(u->data, t->data, t->nbytes) == 0);
            }
            /* the header is padded to 64 bytes and ends in '\n', as numpy writes it */
            FILE *f = fopen(p, "rb");
            unsigned char pre[10];
            CHECK(f && fread(pre, 1, 10, f) == 10);
            if (f) {
                size_t hl = (size_t)pre[8] | (size_t)pre[9] << 8;
                CHECK(pre[6] == 1 && pre[7] == 0);
                CHECK((10 + hl) % 64 == 0);
                char *h = malloc(hl + 1);
                CHECK(fread(h, 1, hl, f) == hl);
                h[hl] = 0;
                CHECK(h[hl - 1] == '\n');
                CHECK(strncmp(h, "{'descr': '", 11) == 0);
                fclose(f);
                free(h);
            }
            oq_tensor_destroy(t);
            oq_tensor_destroy(u);
        }
    }
    /* exact header text for the common cases */
    int64_t d1[1] = {3}, d2[2] = {2, 3};
    oq_tensor *t = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 1, d1, &t));
    CHECK_OK(oq_npy_save(tmp_path("h1.npy"), t));
    oq_tensor_destroy(t);
    CHECK_OK(oq_tensor_create(OQ_INT64, 2, d2, &t));
    CHECK_OK(oq_npy_save(tmp_path("h2.npy"), t));
    oq_tensor_destroy(t);
    CHECK_OK(oq_tensor_create(OQ_UINT8, 0, NULL, &t));
    CHECK_OK(oq_npy_save(tmp_path("h0.npy"), t));
    oq_tensor_destroy(t);
    const char *want[3][2] = {{"h1.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"},
                              {"h2.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }"},
                              {"h0.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (), }"}};
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(tmp_path(want[k][0]), "rb");
        char buf[128] = {0};
        CHECK(f && fread(buf, 1, 10 + strlen(want[k][1]), f) == 10 + strlen(want[k][1]));
        CHECK(strcmp(buf + 10, want[k][1]) == 0);
        if (f)
            fclose(f);
    }
    /* types without an npy form are refused clearly */
    CHECK_OK(oq_tensor_create(OQ_BFLOAT16, 1, d1, &t));
    CHECK(oq_npy_save(tmp_path("bf.npy"), t) == OQ_E_UNSUPPORTED);
    CHECK(strstr(oq_last_error(), "bf.npy") != NULL);
    oq_tensor_destroy(t);
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 1, d1, &t));
    CHECK(oq_npy_save("/nonexistent-dir/x.npy", t) == OQ_E_IO);
    CHECK(strstr(oq_last_error(), "/nonexistent-dir/x.npy") != NULL);
    oq_tensor_destroy(t);
}

static void test_hand_written(void)
{
    unsigned char buf[1024];
    oq_status st;
    oq_tensor *t;

    /* v1.0 float32 (2,3) */
    float f6[6] = {0, 1.5f, -2, 3, 4.25f, -5};
    size_t n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n", f6, sizeof f6);
    t = load_bytes("v1.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_FLOAT && t->ndim == 2 && t->dims[0] == 2 && t->dims[1] == 3);
    if (t)
        CHECK(memcmp(t->data, f6, sizeof f6) == 0);
    oq_tensor_destroy(t);

    /* v2.0 and v3.0 have 4-byte header lengths; keys in any order, double quotes */
    int32_t i4[3] = {7, -8, 9};
    n = make_npy(buf, 2, "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<i4\"}\n", i4, sizeof i4);
    t = load_bytes("v2.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_INT32 && t->ndim == 1 && t->dims[0] == 3);
    if (t)
        CHECK(memcmp(t->data, i4, sizeof i4) == 0);
    oq_tensor_destroy(t);
    n = make_npy(buf, 3, "{'descr': '=i4', 'fortran_order': False, 'shape': (3L,), }\n", i4, sizeof i4);
    t = load_bytes("v3.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_INT32 && t->dims[0] == 3);
    oq_tensor_destroy(t);

    /* big-endian data is byte-swapped */
    unsigned char be[8] = {0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe};
    n = make_npy(buf, 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n", be, sizeof be);
    t = load_bytes("be.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_INT32);
    if (t)
        CHECK(((int32_t *)t->data)[0] == 258 && ((int32_t *)t->data)[1] == -2);
    oq_tensor_destroy(t);
    unsigned char bef[4] = {0x3f, 0x80, 0, 0};
    n = make_npy(buf, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (), }\n", bef, sizeof bef);
    t = load_bytes("bef.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->ndim == 0 && ((float *)t->data)[0] == 1.0f);
    oq_tensor_destroy(t);

    /* Fortran order: memory [0,3,1,4,2,5] of a (2,3) array is [[0,1,2],[3,4,5]] */
    int16_t fo[6] = {0, 3, 1, 4, 2, 5};
    n = make_npy(buf, 1, "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }\n", fo, sizeof fo);
    t = load_bytes("fo.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_INT16);
    if (t)
        for (int i = 0; i < 6; i++)
            CHECK(((int16_t *)t->data)[i] == i);
    oq_tensor_destroy(t);
    /* 3-D Fortran order: element (i,j,k) is at i + 2j + 4k */
    uint8_t fo3[2 * 2 * 3], want3[12];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++) {
                uint8_t v = (uint8_t)(i * 6 + j * 3 + k);
                fo3[i + 2 * j + 4 * k] = v;
                want3[i * 6 + j * 3 + k] = v;
            }
    n = make_npy(buf, 1, "{'descr': '|u1', 'fortran_order': True, 'shape': (2,2,3)}\n", fo3, sizeof fo3);
    t = load_bytes("fo3.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->ndim == 3);
    if (t)
        CHECK(memcmp(t->data, want3, 12) == 0);
    oq_tensor_destroy(t);

    /* bool and the short spellings */
    uint8_t bools[3] = {1, 0, 1};
    n = make_npy(buf, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n", bools, 3);
    t = load_bytes("b1.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_BOOL);
    oq_tensor_destroy(t);
    n = make_npy(buf, 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }\n", bools, 3);
    t = load_bytes("i1.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_INT8);
    oq_tensor_destroy(t);
    uint16_t h2[2] = {0x3c00, 0xc000};
    n = make_npy(buf, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n", h2, 4);
    t = load_bytes("f2.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_FLOAT16);
    if (t)
        CHECK(oq_tensor_get_f64(t, 0) == 1.0 && oq_tensor_get_f64(t, 1) == -2.0);
    oq_tensor_destroy(t);
    /* empty arrays need no data */
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }\n", NULL, 0);
    t = load_bytes("empty.npy", buf, n, &st);
    CHECK(st == OQ_OK && t && t->dtype == OQ_DOUBLE && t->dims[0] == 0 && t->dims[1] == 4);
    oq_tensor_destroy(t);
}

/* Loads bytes that must be rejected; the message must name the file. */
static void expect_bad(const char *name, const unsigned char *b, size_t n, oq_status want)
{
    oq_status st;
    oq_tensor *t = load_bytes(name, b, n, &st);
    CHECK(t == NULL);
    CHECK(st == want);
    if (st != want)
        fprintf(stderr, "  %s: got %s (%s)\n", name, oq_status_str(st), oq_last_error());
    CHECK(strstr(oq_last_error(), name) != NULL);
    oq_tensor_destroy(t);
}

static void test_corrupt(void)
{
    unsigned char buf[1024] = {0};
    float f6[6] = {0};
    size_t n;
    expect_bad("empty_file.npy", buf, 0, OQ_E_PARSE);
    expect_bad("magic.npy", (const unsigned char *)"\x93NUMPX\x01\x00\x10\x00", 10, OQ_E_PARSE);
    expect_bad("short_magic.npy", (const unsigned char *)"\x93NUM", 4, OQ_E_PARSE);
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n", f6, sizeof f6);
    expect_bad("no_len.npy", buf, 9, OQ_E_PARSE);
    buf[8] = 0xff;
    buf[9] = 0x7f;
    expect_bad("header_past_end.npy", buf, n, OQ_E_PARSE);
    n = make_npy(buf, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n", f6, sizeof f6);
    buf[11] = 0x40;
    expect_bad("header_past_end_v2.npy", buf, n, OQ_E_PARSE);
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }\n", f6, sizeof f6);
    expect_bad("data_short.npy", buf, n, OQ_E_PARSE);
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", f6, 5);
    expect_bad("data_short2.npy", buf, n, OQ_E_PARSE);
    n = make_npy(buf, 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n", f6, sizeof f6);
    expect_bad("version4.npy", buf, n, OQ_E_UNSUPPORTED);

    static const char *bad_dicts[] = {
        "",
        "not a dict",
        "{'descr': '<f4', 'fortran_order': False}",
        "{'descr': '<f4', 'shape': (6,)}",
        "{'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [6]}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6 7)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}",
        "{'descr: '<f4', 'fortran_order': False, 'shape': (6,)}",
        "{'descr' '<f4', 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)",
    };
    for (size_t k = 0; k < sizeof bad_dicts / sizeof bad_dicts[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "bad_dict_%zu.npy", k);
        n = make_npy(buf, 1, bad_dicts[k], f6, sizeof f6);
        expect_bad(name, buf, n, OQ_E_PARSE);
    }
    /* a NUL inside the header */
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n", f6, sizeof f6);
    buf[15] = 0;
    expect_bad("nul_header.npy", buf, n, OQ_E_PARSE);

    static const char *bad_types[] = {"<U3", "|O", "<c32", "<f16", "<i3", "", "<", "f", "<V8", "<M8[s]"};
    for (size_t k = 0; k < sizeof bad_types / sizeof bad_types[0]; k++) {
        char name[64], header[128];
        snprintf(name, sizeof name, "bad_type_%zu.npy", k);
        snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (1,), }\n", bad_types[k]);
        n = make_npy(buf, 1, header, f6, sizeof f6);
        expect_bad(name, buf, n, OQ_E_UNSUPPORTED);
    }
    n = make_npy(buf, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", f6, sizeof f6);
    expect_bad("structured.npy", buf, n, OQ_E_UNSUPPORTED);
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", f6,
                 sizeof f6);
    expect_bad("rank9.npy", buf, n, OQ_E_UNSUPPORTED);
    /* a huge shape must not allocate or overflow */
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", f6,
                 sizeof f6);
    oq_status st;
    oq_tensor *t = load_bytes("huge.npy", buf, n, &st);
    CHECK(t == NULL && st != OQ_OK && strstr(oq_last_error(), "huge.npy"));
    oq_tensor_destroy(t);

    /* a shape that fits in memory arithmetic but not in the file fails before allocating */
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }\n", f6,
                 sizeof f6);
    expect_bad("big_shape.npy", buf, n, OQ_E_PARSE);
    t = NULL;
    CHECK(oq_npy_load(tmp_path("does_not_exist.npy"), &t) == OQ_E_IO);
    CHECK(strstr(oq_last_error(), "does_not_exist.npy") != NULL);
    CHECK(oq_npy_load(tmpdir, &t) != OQ_OK && t == NULL);
    CHECK(oq_npy_load(NULL, &t) == OQ_E_INVALID_ARG);
}

/* Files written by numpy itself, and numpy reading ours (only where numpy exists). */
static void test_numpy_interop(void)
{
    if (access("/usr/bin/python3", X_OK) != 0 || system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        printf("numpy not available: skipping numpy interop\n");
        return;
    }
    static const char *types[] = {"<f4", "<f8", "<f2", "<i1", "<u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "|b1"};
    char script[4096];
    snprintf(script, sizeof script,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np\n"
             "d='%s'\n"
             "types=['<f4','<f8','<f2','<i1','<u1','<i2','<u2','<i4','<u4','<i8','<u8','|b1']\n"
             "for k,t in enumerate(types):\n"
             "    a=(np.arange(24)%%7).reshape(2,3,4).astype(t)\n"
             "    np.save(d+'/np_%%d.npy'%%k, a)\n"
             "    np.save(d+'/npf_%%d.npy'%%k, np.asfortranarray(a))\n"
             "    np.save(d+'/npbe_%%d.npy'%%k, a.astype(np.dtype(t).newbyteorder('>')))\n"
             "np.save(d+'/np_scalar.npy', np.float32(2.5))\n"
             "np.lib.format.write_array(open(d+'/np_v2.npy','wb'), np.ones((3,),np.float32), version=(2,0))\n"
             "np.lib.format.write_array(open(d+'/np_v3.npy','wb'), np.ones((3,),np.float32), version=(3,0))\n"
             "\"",
             tmpdir);
    CHECK(system(script) == 0);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const char *prefixes[] = {"np", "npf", "npbe"};
        for (int p = 0; p < 3; p++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%zu.npy", prefixes[p], k);
            oq_tensor *t = NULL;
            CHECK_OK(oq_npy_load(tmp_path(name), &t));
            if (!t)
                continue;
            CHECK(t->ndim == 3 && t->dims[0] == 2 && t->dims[1] == 3 && t->dims[2] == 4);
            int bad = 0;
            for (int i = 0; i < 24; i++) {
                double want = (double)(i % 7);
                if (strcmp(types[k], "|b1") == 0)
                    want = want != 0;
                if (oq_tensor_get_f64(t, i) != want)
                    bad++;
            }
            CHECK(bad == 0);
            if (bad)
                fprintf(stderr, "  %s (%s): %d wrong values\n", name, types[k], bad);
            /* write it back for numpy to check below */
            snprintf(name, sizeof name, "ours_%s_%zu.npy", prefixes[p], k);
            CHECK_OK(oq_npy_save(tmp_path(name), t));
            oq_tensor_destroy(t);
        }
    }
    const char *more[] = {"np_scalar.npy", "np_v2.npy", "np_v3.npy"};
    for (int k = 0; k < 3; k++) {
        oq_tensor *t = NULL;
        CHECK_OK(oq_npy_load(tmp_path(more[k]), &t));
        if (t)
            CHECK(t->dtype == OQ_FLOAT && oq_tensor_get_f64(t, 0) == (k == 0 ? 2.5 : 1.0) && t->ndim == (k ? 1 : 0));
        oq_tensor_destroy(t);
    }
    snprintf(script, sizeof script,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np\n"
             "d='%s'\n"
             "types=['<f4','<f8','<f2','<i1','<u1','<i2','<u2','<i4','<u4','<i8','<u8','|b1']\n"
             "for k,t in enumerate(types):\n"
             "    for p in ['np','npf','npbe']:\n"
             "        a=np.load(d+'/ours_%%s_%%d.npy'%%(p,k))\n"
             "        w=(np.arange(24)%%7).reshape(2,3,4).astype(t)\n"
             "        assert a.dtype==w.dtype.newbyteorder('<') and a.shape==w.shape and (a==w).all(), (p,t)\n"
             "\"",
             tmpdir);
    CHECK(system(script) == 0);
}

static void cleanup(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_hand_written();
    test_corrupt();
    test_numpy_interop();
    cleanup();
    return test_summary("test_npy");
}
