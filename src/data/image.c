/* data/image: JPEG (libjpeg) and PNG (libpng's simplified API) decoding into
 * 8-bit gray or RGB, and the preprocessing of image folders: resize so the
 * shorter side has a given length (bilinear, pixel centers aligned), center
 * crop, channel order, nchw/nhwc layout, (pixel / scale - mean) / std. libjpeg
 * reports errors through longjmp (its default handler would exit). */
#include "data/image.h"

#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* A calibration image is decoded whole: 2^28 pixels (16384 x 16384, 768 MiB as RGB) at most. A corrupt
 * JPEG of a few bytes can declare 65535 x 65535 (12 GiB), and PNG's size macro wraps past 2^32 bytes. */
#define MAX_PIXELS ((uint64_t)1 << 28)

static bool has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n < e)
        return false;
    for (size_t i = 0; i < e; i++)
        if (tolower((unsigned char)name[n - e + i]) != ext[i])
            return false;
    return true;
}

bool oq_is_image_file(const char *name)
{
    return has_ext(name, ".jpg") || has_ext(name, ".jpeg") || has_ext(name, ".png");
}

/* ---- spec ---- */

static bool parse_floats(const char *v, float *out, int n)
{
    char *end;
    for (int i = 0; i < n; i++) {
        out[i] = strtof(v, &end);
        if (end == v || !isfinite(out[i]))
            return false;
        if (*end == ':' && i + 1 < n)
            v = end + 1;
        else if (*end == 0 || *end == ',') {
            for (int k = i + 1; k < n; k++) /* one value: every channel */
                out[k] = out[i];
            return i == 0 || i == n - 1;
        } else
            return false;
    }
    return *end == 0 || *end == ',';
}

oq_status oq_image_spec_parse(const char *text, oq_image_spec *s)
{
    memset(s, 0, sizeof *s);
    s->scale = 255.0f;
    for (int c = 0; c < 3; c++)
        s->std[c] = 1.0f;
    if (!text || !*text)
        return OQ_OK;
    char *copy = oq_strdup(text), *save = NULL;
    if (!copy)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    for (char *kv = strtok_r(copy, ",", &save); kv && st == OQ_OK; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v) {
            st = oq_error(OQ_E_INVALID_ARG, "image spec: '%s' is not key=value", kv);
            break;
        }
        *v++ = 0;
        char *end = NULL;
        if (!strcmp(kv, "resize")) {
            s->resize = strtoll(v, &end, 10);
            if (end == v || *end || s->resize <= 0 || s->resize > 65536)
                st = oq_error(OQ_E_INVALID_ARG, "image spec: resize=%s is not a size in pixels", v);
        } else if (!strcmp(kv, "crop")) {
            s->crop_h = strtoll(v, &end, 10);
            s->crop_w = s->crop_h;
            if (end != v && *end == 'x')
                s->crop_w = strtoll(end + 1, &end, 10);
            if (!end || *end || s->crop_h <= 0 || s->crop_w <= 0 || s->crop_h > 65536 || s->crop_w > 65536)
                st = oq_error(OQ_E_INVALID_ARG, "image spec: crop=%s is not N or HxW", v);
        } else if (!strcmp(kv, "order")) {
            if (!strcmp(v, "rgb") || !strcmp(v, "bgr"))
                s->bgr = !strcmp(v, "bgr");
            else
                st = oq_error(OQ_E_INVALID_ARG, "image spec: order=%s (rgb or bgr)", v);
        } else if (!strcmp(kv, "layout")) {
            if (!strcmp(v, "nchw") || !strcmp(v, "nhwc"))
                s->layout = !strcmp(v, "nchw") ? 1 : 2;
            else
                st = oq_error(OQ_E_INVALID_ARG, "image spec: layout=%s (nchw or nhwc)", v);
        } else if (!strcmp(kv, "scale")) {
            s->scale = strtof(v, &end);
            if (end == v || *end || !(s->scale > 0))
                st = oq_error(OQ_E_INVALID_ARG, "image spec: scale=%s is not a positive number", v);
        } else if (!strcmp(kv, "mean") || !strcmp(kv, "std")) {
            float *dst = !strcmp(kv, "mean") ? s->mean : s->std;
            char *vv = oq_strdup(v);
            bool ok = vv && parse_floats(vv, dst, 3);
            free(vv);
            if (!ok)
                st = oq_error(OQ_E_INVALID_ARG, "image spec: %s=%s needs 1 or 3 numbers separated by ':'", kv, v);
            if (ok && dst == s->std && !(s->std[0] > 0 && s->std[1] > 0 && s->std[2] > 0))
                st = oq_error(OQ_E_INVALID_ARG, "image spec: std must be positive");
        } else {
            st = oq_error(OQ_E_INVALID_ARG,
                          "image spec: unknown key '%s' (resize, crop, order, layout, scale, mean, std)", kv);
        }
    }
    free(copy);
    return st;
}

/* ---- decoding ---- */

typedef struct jerr_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jerr_mgr;

static void jpeg_fail(j_common_ptr cinfo)
{
    jerr_mgr *e = (jerr_mgr *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level; /* warnings (corrupt data recovered) are not printed */
}

static oq_status load_jpeg(const char *path, FILE *f, int channels, uint8_t **out, int *w, int *h)
{
    struct jpeg_decompress_struct cinfo;
    jerr_mgr err;
    uint8_t *volatile pixels = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.emit_message = jpeg_quiet;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return oq_error(OQ_E_PARSE, "image '%s': %s", path, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if (cinfo.output_width == 0 || cinfo.output_height == 0 || cinfo.output_width > 65535 ||
        cinfo.output_height > 65535 || cinfo.output_components != channels) {
        jpeg_destroy_decompress(&cinfo);
        return oq_error(OQ_E_PARSE, "image '%s': unsupported JPEG size or color layout", path);
    }
    if ((uint64_t)cinfo.output_width * cinfo.output_height > MAX_PIXELS) {
        jpeg_destroy_decompress(&cinfo);
        return oq_error(OQ_E_PARSE, "image '%s' is %ux%u: more than %llu pixels", path, (unsigned)cinfo.output_width,
                        (unsigned)cinfo.output_height, (unsigned long long)MAX_PIXELS);
    }
    pixels = oq_malloc(stride * cinfo.output_height);
    if (!pixels) {
        jpeg_destroy_decompress(&cinfo);
        return oq_error(OQ_E_NOMEM, "out of memory decoding '%s'", path);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *w = (int)cinfo.output_width;
    *h = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    *out = pixels;
    return OQ_OK;
}

static oq_status load_png(const char *path, int channels, uint8_t **out, int *w, int *h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return oq_error(OQ_E_PARSE, "image '%s': %s", path, img.message);
    img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB; /* palette, 16-bit, alpha: converted */
    if (img.width == 0 || img.height == 0 || img.width > 65535 || img.height > 65535 ||
        (uint64_t)img.width * img.height > MAX_PIXELS) {
        png_image_free(&img);
        return oq_error(OQ_E_PARSE, "image '%s': unsupported size %ux%u (at most %llu pixels)", path, img.width,
                        img.height, (unsigned long long)MAX_PIXELS);
    }
    uint8_t *pixels = oq_malloc(PNG_IMAGE_SIZE(img));
    if (!pixels) {
        png_image_free(&img);
        return oq_error(OQ_E_NOMEM, "out of memory decoding '%s'", path);
    }
    png_color white = {255, 255, 255}; /* transparent pixels over white, like a viewer shows them */
    if (!png_image_finish_read(&img, &white, pixels, 0, NULL)) {
        free(pixels);
        oq_status st = oq_error(OQ_E_PARSE, "image '%s': %s", path, img.message);
        png_image_free(&img);
        return st;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    *out = pixels;
    return OQ_OK;
}

oq_status oq_image_load(const char *path, int channels, uint8_t **pixels, int *width, int *height)
{
    if (channels != 1 && channels != 3)
        return oq_error(OQ_E_UNSUPPORTED, "image '%s': models with %d channels cannot take images", path, channels);
    FILE *f = fopen(path, "rb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot open image '%s'", path);
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    oq_status st;
    if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff) {
        rewind(f);
        st = load_jpeg(path, f, channels, pixels, width, height);
        fclose(f);
    } else if (got == 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) {
        fclose(f);
        st = load_png(path, channels, pixels, width, height);
    } else {
        fclose(f);
        st = oq_error(OQ_E_PARSE, "image '%s' is neither JPEG nor PNG", path);
    }
    return st;
}

/* ---- preprocessing ---- */

void oq_image_preprocess(const uint8_t *img, int w, int h, int c, const oq_image_spec *spec, int64_t out_h,
                         int64_t out_w, bool nchw, oq_dtype dtype, void *dst)
{
    /* scale so the shorter side becomes `resize` (default: just covers the crop) */
    double target = spec->resize > 0 ? (double)spec->resize : fmax((double)out_h, (double)out_w);
    double f = target / (double)(w < h ? w : h);
    if (spec->resize <= 0)
        f = fmax((double)out_w / w, (double)out_h / h);
    double rw = w * f, rh = h * f;
    double x0 = (rw - (double)out_w) / 2, y0 = (rh - (double)out_h) / 2; /* crop origin in resized pixels */
    for (int64_t oy = 0; oy < out_h; oy++) {
        double sy = (oy + y0 + 0.5) / f - 0.5;
        sy = sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
        int iy = (int)sy;
        int iy1 = iy + 1 < h ? iy + 1 : iy;
        double fy = sy - iy;
        for (int64_t ox = 0; ox < out_w; ox++) {
            double sx = (ox + x0 + 0.5) / f - 0.5;
            sx = sx < 0 ? 0 : sx > w - 1 ? w - 1 : sx;
            int ix = (int)sx;
            int ix1 = ix + 1 < w ? ix + 1 : ix;
            double fx = sx - ix;
            for (int ch = 0; ch < c; ch++) {
                int src_ch = spec->bgr && c == 3 ? 2 - ch : ch;
                double a = img[((size_t)iy * w + ix) * c + src_ch], b = img[((size_t)iy * w + ix1) * c + src_ch];
                double cc = img[((size_t)iy1 * w + ix) * c + src_ch], d = img[((size_t)iy1 * w + ix1) * c + src_ch];
                double v = (a * (1 - fx) + b * fx) * (1 - fy) + (cc * (1 - fx) + d * fx) * fy;
                size_t at = nchw ? ((size_t)ch * out_h + oy) * out_w + ox : ((size_t)oy * out_w + ox) * c + ch;
                if (dtype == OQ_UINT8) {
                    long r = lround(v);
                    ((uint8_t *)dst)[at] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                } else {
                    ((float *)dst)[at] = (float)((v / spec->scale - spec->mean[ch]) / spec->std[ch]);
                }
            }
        }
    }
}
