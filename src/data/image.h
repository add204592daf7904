/* data/image: JPEG/PNG decoding and the preprocessing of image folders
 * (resize the shorter side, center crop, channel order, layout, scale, mean/std). */
#ifndef OQ_DATA_IMAGE_H
#define OQ_DATA_IMAGE_H

#include "core/core.h"

#include <stdbool.h>

typedef struct oq_image_spec {
    int64_t resize;       /* shorter side after resizing; 0: the crop's larger side */
    int64_t crop_h, crop_w; /* center crop; 0: the model's input size */
    bool bgr;             /* channel order */
    int layout;           /* 0: from the model, 1: nchw, 2: nhwc */
    float scale;          /* pixel / scale before mean/std (255: pixels in [0,1]) */
    float mean[3], std[3];
} oq_image_spec;

/* Parses "resize=256,crop=224,order=rgb,layout=nchw,scale=255,mean=a:b:c,std=a:b:c";
 * NULL or "" gives the defaults. */
oq_status oq_image_spec_parse(const char *text, oq_image_spec *out);

bool oq_is_image_file(const char *name);

/* Decodes a JPEG or PNG file into 8-bit interleaved pixels with `channels` channels
 * (1: gray, 3: RGB); *pixels is malloc'ed. Errors name the file. */
oq_status oq_image_load(const char *path, int channels, uint8_t **pixels, int *width, int *height);

/* Resizes (bilinear, shorter side to spec->resize) and center-crops img (w x h x c
 * interleaved) to out_h x out_w, writing float or uint8 values in nchw or nhwc order. */
void oq_image_preprocess(const uint8_t *img, int w, int h, int c, const oq_image_spec *spec, int64_t out_h,
                         int64_t out_w, bool nchw, oq_dtype dtype, void *dst);

#endif
