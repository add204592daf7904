/* Image folders as calibration / evaluation data (src/data/image.c, reader.c):
 * PNG (gray, RGB, RGBA, 16-bit) and JPEG files written here with libpng/libjpeg,
 * class subfolders as labels, the preprocessing spec, and errors that name the file. */
#include "test.h"

#include "data/image.h"

#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_ROOT "/tmp/oq_test_images"

static void write_png(const char *path, int w, int h, png_uint_32 format, const void *px)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = format;
    CHECK(png_image_write_to_file(&img, path, 0, px, 0, NULL) != 0);
}

static void write_jpeg_gray(const char *path, int w, int h, uint8_t value)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[256];
    memset(row, value, sizeof row);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void test_spec(void)
{
    oq_image_spec s;
    CHECK_OK(oq_image_spec_parse("resize=256,crop=224,order=bgr,layout=nhwc,scale=1,mean=1:2:3,std=0.5", &s));
    CHECK(s.resize == 256 && s.crop_h == 224 && s.crop_w == 224 && s.bgr && s.layout == 2 && s.scale == 1.0f);
    CHECK(s.mean[2] == 3.0f && s.std[0] == 0.5f && s.std[2] == 0.5f);
    CHECK_OK(oq_image_spec_parse("crop=48x192", &s));
    CHECK(s.crop_h == 48 && s.crop_w == 192 && s.scale == 255.0f && s.std[1] == 1.0f);
    CHECK(oq_image_spec_parse("resize=-3", &s) == OQ_E_INVALID_ARG);
    CHECK(oq_image_spec_parse("mean=1:2", &s) == OQ_E_INVALID_ARG);
    CHECK(oq_image_spec_parse("colour=red", &s) == OQ_E_INVALID_ARG && strstr(oq_last_error(), "colour"));
}

/* 2x upscale of a 2x1 image: bilinear with pixel centers aligned, edges clamped */
static void test_resize(void)
{
    const uint8_t img[2] = {0, 200};
    oq_image_spec s;
    CHECK_OK(oq_image_spec_parse("resize=2,crop=2x4,scale=1", &s));
    float out[8];
    oq_image_preprocess(img, 2, 1, 1, &s, 2, 4, true, OQ_FLOAT, out);
    /* source x = (ox + 0.5) / 2 - 0.5: -0.25, 0.25, 0.75, 1.25 -> clamped 0, 50, 150, 200 */
    const float want[4] = {0, 50, 150, 200};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], want[i % 4], 1e-4);
}

static void test_folder(void)
{
    oq_model *m = NULL;
    CHECK_OK(oq_model_load("tests/fixtures/fmnist_cnn/model.onnx", NULL, &m)); /* input [N,1,28,28] float */
    if (!m)
        return;
    (void)!system("rm -rf " DIR_ROOT);
    mkdir(DIR_ROOT, 0755);
    mkdir(DIR_ROOT "/coat", 0755);
    mkdir(DIR_ROOT "/shirt", 0755);
    static uint8_t gray[28 * 28], rgba[28 * 28 * 4];
    static uint16_t gray16[28 * 28];
    for (int i = 0; i < 28 * 28; i++) {
        gray[i] = (uint8_t)(i * 7 % 256);
        gray16[i] = (uint16_t)(gray[i] * 257);
        rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = gray[i];
        rgba[4 * i + 3] = 255;
    }
    write_png(DIR_ROOT "/coat/a.png", 28, 28, PNG_FORMAT_GRAY, gray);
    write_png(DIR_ROOT "/coat/b.png", 28, 28, PNG_FORMAT_RGBA, rgba);
    write_png(DIR_ROOT "/shirt/c.png", 28, 28, PNG_FORMAT_LINEAR_Y, gray16); /* 16 bits per pixel */
    write_jpeg_gray(DIR_ROOT "/shirt/d.jpg", 56, 56, 100); /* downscaled to 28x28 */
    oq_reader_options ro = oq_reader_options_default();
    ro.batch_size = 3;
    oq_data_reader *r = NULL;
    CHECK_OK(oq_data_reader_open(DIR_ROOT, m, &ro, &r));
    if (!r) {
        oq_model_destroy(m);
        return;
    }
    CHECK(oq_data_reader_sample_count(r) == 4);
    CHECK(!strcmp(oq_data_reader_class_name(r, 0), "coat") && !strcmp(oq_data_reader_class_name(r, 1), "shirt"));
    CHECK(oq_data_reader_class_name(r, 2) == NULL);
    const oq_tensor *const *b = NULL;
    const int64_t *lab = NULL;
    size_t nl = 0;
    CHECK_OK(oq_data_reader_next(r, &b));
    CHECK(b && b[0]->dims[0] == 3 && b[0]->dims[1] == 1 && b[0]->dims[2] == 28 && b[0]->dims[3] == 28);
    CHECK_OK(oq_data_reader_labels(r, &lab, &nl));
    CHECK(nl == 3 && lab && lab[0] == 0 && lab[1] == 0 && lab[2] == 1);
    if (b) {
        const float *x = b[0]->data;
        int bad = 0;
        for (int i = 0; i < 28 * 28; i++) {
            float want = gray[i] / 255.0f;
            bad += fabsf(x[i] - want) > 1e-6f;                 /* 8-bit gray: exact */
            bad += fabsf(x[784 + i] - want) > 1.5f / 255.0f;   /* RGBA -> gray */
            /* 16-bit gray written as linear light: libpng gamma-encodes it (1/2.2) on the way to 8 bits */
            bad += fabs(x[2 * 784 + i] - pow(gray[i] / 255.0, 1 / 2.2)) > 1.5 / 255.0;
        }
        CHECK(bad == 0);
    }
    CHECK_OK(oq_data_reader_next(r, &b));
    CHECK(b && b[0]->dims[0] == 1);
    if (b) {
        const float *x = b[0]->data;
        CHECK_NEAR(x[0], 100 / 255.0, 2.0 / 255);
        CHECK_NEAR(x[28 * 14 + 14], 100 / 255.0, 2.0 / 255);
    }
    CHECK_OK(oq_data_reader_labels(r, &lab, &nl));
    CHECK(nl == 1 && lab && lab[0] == 1);
    CHECK_OK(oq_data_reader_next(r, &b));
    CHECK(b == NULL);
    oq_data_reader_destroy(r);

    /* normalization from the spec */
    ro.image_spec = "mean=0.5,std=0.25";
    CHECK_OK(oq_data_reader_open(DIR_ROOT, m, &ro, &r));
    if (r && oq_data_reader_next(r, &b) == OQ_OK && b)
        CHECK_NEAR(((const float *)b[0]->data)[5], (gray[5] / 255.0 - 0.5) / 0.25, 1e-5);
    oq_data_reader_destroy(r);
    r = NULL;
    ro.image_spec = "crop=30";
    CHECK(oq_data_reader_open(DIR_ROOT, m, &ro, &r) == OQ_E_SHAPE);
    ro.image_spec = NULL;

    /* a corrupt image fails the batch and names the file */
    FILE *f = fopen(DIR_ROOT "/shirt/e.png", "wb");
    if (f) {
        fwrite("\x89PNG\r\n\x1a\n garbage", 1, 17, f);
        fclose(f);
    }
    CHECK_OK(oq_data_reader_open(DIR_ROOT, m, &ro, &r));
    oq_status st = OQ_OK;
    while (r && (st = oq_data_reader_next(r, &b)) == OQ_OK && b) {
    }
    CHECK(st == OQ_E_PARSE && strstr(oq_last_error(), "e.png"));
    oq_data_reader_destroy(r);
    (void)!system("rm -rf " DIR_ROOT);
    oq_model_destroy(m);
}

/* --uint8-input: the rewritten model on raw pixels equals the float model on normalized
 * pixels, in the model's layout and transposed (nhwc uint8 into an nchw model) */
static void test_uint8_input(void)
{
    const char *specs[2] = {"mean=0.2860,std=0.3530", "layout=nhwc,mean=0.2860,std=0.3530"};
    for (int v = 0; v < 2; v++) {
        oq_model *m = NULL, *u = NULL;
        CHECK_OK(oq_model_load("tests/fixtures/fmnist_cnn/model.onnx", NULL, &m));
        CHECK_OK(oq_model_load("tests/fixtures/fmnist_cnn/model.onnx", NULL, &u));
        if (!m || !u) {
            oq_model_destroy(m), oq_model_destroy(u);
            return;
        }
        CHECK_OK(oq_model_uint8_input(u, specs[v]));
        int64_t fd[4] = {2, 1, 28, 28}, ud[4] = {2, 1, 28, 28};
        if (v == 1)
            ud[1] = 28, ud[3] = 1;
        oq_tensor *xf = NULL, *xu = NULL, *yf = NULL, *yu = NULL;
        CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, fd, &xf));
        CHECK_OK(oq_tensor_create(OQ_UINT8, 4, ud, &xu));
        for (int i = 0; xf && xu && i < 2 * 784; i++) {
            uint8_t px = (uint8_t)((i * 37 + i / 97) % 256);
            ((uint8_t *)xu->data)[i] = px; /* [2,28,28,1] and [2,1,28,28] hold the same order */
            ((float *)xf->data)[i] = (px / 255.0f - 0.2860f) / 0.3530f;
        }
        oq_session *sf = NULL, *su = NULL;
        CHECK_OK(oq_session_create(m, NULL, &sf));
        CHECK_OK(oq_session_create(u, NULL, &su));
        CHECK(su && oq_session_input(su, 0)->dtype == OQ_UINT8 && oq_session_input(su, 0)->dims[3] == ud[3]);
        const oq_tensor *inf[1] = {xf}, *inu[1] = {xu};
        if (sf && su) {
            CHECK_OK(oq_session_run(sf, inf, 1, &yf, 1));
            CHECK_OK(oq_session_run(su, inu, 1, &yu, 1));
        }
        if (yf && yu) {
            double worst = 0;
            for (int64_t i = 0; i < oq_tensor_numel(yf); i++)
                worst = fmax(worst, fabs(((float *)yf->data)[i] - ((float *)yu->data)[i]));
            CHECK(worst < 1e-4);
        }
        oq_tensor_destroy(xf), oq_tensor_destroy(xu), oq_tensor_destroy(yf), oq_tensor_destroy(yu);
        oq_session_destroy(sf), oq_session_destroy(su);
        oq_model_destroy(m), oq_model_destroy(u);
    }
    oq_model *m = NULL;
    CHECK_OK(oq_model_load("tests/fixtures/fmnist_mlp/model.onnx", NULL, &m));
    if (m)
        CHECK_OK(oq_model_uint8_input(m, NULL)); /* [N,1,28,28]: an image too */
    oq_model_destroy(m);
    CHECK_OK(oq_model_load("tests/fixtures/lstm_small/model.onnx", NULL, &m));
    if (m)
        CHECK(oq_model_uint8_input(m, NULL) == OQ_E_INVALID_ARG && strstr(oq_last_error(), "rank 4"));
    oq_model_destroy(m);
}

/* --uint8-input on a model whose If branches read the image input (outer scope): both
 * branches read the normalized value, and the result equals the float model's */
static void test_uint8_input_subgraph(void)
{
    oq_model *m = NULL, *u = NULL;
    CHECK_OK(oq_model_load("tests/fixtures/if_image/model.onnx", NULL, &m));
    CHECK_OK(oq_model_load("tests/fixtures/if_image/model.onnx", NULL, &u));
    if (!m || !u) {
        oq_model_destroy(m), oq_model_destroy(u);
        return;
    }
    CHECK_OK(oq_model_uint8_input(u, "mean=0.5,std=0.25"));
    oq_session *sf = NULL, *su = NULL;
    CHECK_OK(oq_session_create(m, NULL, &sf));
    CHECK_OK(oq_session_create(u, NULL, &su));
    /* mostly bright pixels: mean > 0, the then-branch; mostly dark: the else-branch */
    for (int branch = 0; branch < 2 && sf && su; branch++) {
        int64_t d[4] = {1, 1, 4, 4};
        oq_tensor *xf = NULL, *xu = NULL, *yf = NULL, *yu = NULL;
        CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, d, &xf));
        CHECK_OK(oq_tensor_create(OQ_UINT8, 4, d, &xu));
        for (int i = 0; xf && xu && i < 16; i++) {
            uint8_t px = (uint8_t)(branch == 0 ? 100 + i * 9 : 150 - i * 9);
            ((uint8_t *)xu->data)[i] = px;
            ((float *)xf->data)[i] = (px / 255.0f - 0.5f) / 0.25f;
        }
        const oq_tensor *inf[1] = {xf}, *inu[1] = {xu};
        CHECK_OK(oq_session_run(sf, inf, 1, &yf, 1));
        CHECK_OK(oq_session_run(su, inu, 1, &yu, 1));
        if (yf && yu) {
            double worst = 0;
            int negative = 0;
            for (int64_t i = 0; i < 16; i++) {
                worst = fmax(worst, fabs(((float *)yf->data)[i] - ((float *)yu->data)[i]));
                negative += ((float *)yf->data)[i] < 0; /* x * x >= 0 in the else-branch, x * relu(x) >= 0 too */
            }
            CHECK(worst < 1e-5);
            CHECK(negative == 0);
        }
        oq_tensor_destroy(xf), oq_tensor_destroy(xu), oq_tensor_destroy(yf), oq_tensor_destroy(yu);
    }
    oq_session_destroy(sf), oq_session_destroy(su);
    oq_model_destroy(m), oq_model_destroy(u);
}

int main(void)
{
    test_uint8_input();
    test_uint8_input_subgraph();
    test_spec();
    test_resize();
    test_folder();
    return test_summary("test_image");
}
