#include "hydra_png.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} reader_state;

typedef struct {
    char *err;
    size_t err_size;
} error_state;

static void on_error(png_structp png, png_const_charp msg) {
    error_state *es = (error_state *)png_get_error_ptr(png);
    if (es && es->err && es->err_size) snprintf(es->err, es->err_size, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void on_read(png_structp png, png_bytep out, png_size_t n) {
    reader_state *rs = (reader_state *)png_get_io_ptr(png);
    if (rs->size - rs->pos < n) png_error(png, "truncated PNG data");
    memcpy(out, rs->data + rs->pos, n);
    rs->pos += n;
}

static void set_err(char *err, size_t err_size, const char *msg) {
    if (err && err_size) snprintf(err, err_size, "%s", msg);
}

static int open_reader(const uint8_t *data, size_t size, png_structp *png, png_infop *info,
                       reader_state *rs, error_state *es) {
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_err(es->err, es->err_size, "not a PNG file (bad signature)");
        return -1;
    }
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, es, on_error, on_warning);
    if (!*png) { set_err(es->err, es->err_size, "out of memory"); return -1; }
    *info = png_create_info_struct(*png);
    if (!*info) {
        png_destroy_read_struct(png, NULL, NULL);
        set_err(es->err, es->err_size, "out of memory");
        return -1;
    }
    rs->data = data; rs->size = size; rs->pos = 0;
    png_set_read_fn(*png, rs, on_read);
    /* Dimensions are policed by the caller's pixel limit; lift libpng's own 1M cap. */
    png_set_user_limits(*png, 0x7fffffff, 0x7fffffff);
    png_set_crc_action(*png, PNG_CRC_DEFAULT, PNG_CRC_DEFAULT);
    return 0;
}

int hydra_png_probe(const uint8_t *data, size_t size, hydra_png_info *out,
                    char *err, size_t err_size) {
    png_structp png = NULL; png_infop info = NULL;
    reader_state rs; error_state es = { err, err_size };
    if (open_reader(data, size, &png, &info, &rs, &es) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_read_info(png, info);
    out->width = png_get_image_width(png, info);
    out->height = png_get_image_height(png, info);
    out->bit_depth = png_get_bit_depth(png, info);
    out->color_type = png_get_color_type(png, info);
    out->interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int hydra_png_decode_rgb8(const uint8_t *data, size_t size, uint8_t *rgb,
                          uint32_t width, uint32_t height, char *err, size_t err_size) {
    png_structp png = NULL; png_infop info = NULL;
    reader_state rs; error_state es = { err, err_size };
    png_bytep *volatile rows = NULL;
    if (open_reader(data, size, &png, &info, &rs, &es) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_read_info(png, info);
    if (png_get_image_width(png, info) != width || png_get_image_height(png, info) != height)
        png_error(png, "image size changed between probe and decode");
    int ct = png_get_color_type(png, info);
    int bd = png_get_bit_depth(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bd == 16) png_set_scale_16(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    /* Alpha (and tRNS) is dropped: the network sees the colour samples as stored. */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3)
        png_error(png, "unsupported PNG pixel layout");
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = rgb + (size_t)y * width * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int hydra_png_decode_raw(const uint8_t *data, size_t size, uint8_t *out, size_t out_size,
                         int *channels, uint8_t *palette, int *palette_len, char *err, size_t err_size) {
    png_structp png = NULL; png_infop info = NULL;
    reader_state rs; error_state es = { err, err_size };
    png_bytep *volatile rows = NULL;
    if (open_reader(data, size, &png, &info, &rs, &es) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_read_info(png, info);
    uint32_t height = png_get_image_height(png, info);
    int ct = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) < 8) png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes * height > out_size) png_error(png, "output buffer too small");
    *channels = png_get_channels(png, info);
    *palette_len = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal; int n = 0;
        if (png_get_PLTE(png, info, &pal, &n) & PNG_INFO_PLTE) {
            for (int i = 0; i < n && i < 256; i++) {
                palette[3 * i] = pal[i].red; palette[3 * i + 1] = pal[i].green; palette[3 * i + 2] = pal[i].blue;
            }
            *palette_len = n;
        }
    }
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = out + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

typedef struct {
    uint8_t *buf;
    size_t size, cap;
    int failed;
} writer_state;

static void on_write(png_structp png, png_bytep in, png_size_t n) {
    writer_state *ws = (writer_state *)png_get_io_ptr(png);
    if (ws->size + n > ws->cap) {
        size_t cap = ws->cap ? ws->cap : 4096;
        while (cap < ws->size + n) cap *= 2;
        uint8_t *nb = (uint8_t *)realloc(ws->buf, cap);
        if (!nb) { ws->failed = 1; png_error(png, "out of memory"); }
        ws->buf = nb; ws->cap = cap;
    }
    memcpy(ws->buf + ws->size, in, n);
    ws->size += n;
}

static void on_flush(png_structp png) { (void)png; }

int hydra_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                     int color_type, int bit_depth,
                     const uint8_t *palette, int palette_len,
                     int compression_level, int filters,
                     uint8_t **out, size_t *out_size, char *err, size_t err_size) {
    int channels;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: channels = 1; break;
    case PNG_COLOR_TYPE_RGB: channels = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    case PNG_COLOR_TYPE_PALETTE: channels = 1; break;
    default: set_err(err, err_size, "unsupported colour type"); return -1;
    }
    if (bit_depth != 8 && bit_depth != 16) { set_err(err, err_size, "bit depth must be 8 or 16"); return -1; }
    if (color_type == PNG_COLOR_TYPE_PALETTE && (bit_depth != 8 || palette_len < 1 || palette_len > 256)) {
        set_err(err, err_size, "palette PNG needs bit depth 8 and 1...256 colours");
        return -1;
    }
    error_state es = { err, err_size };
    writer_state ws = { NULL, 0, 0, 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &es, on_error, on_warning);
    if (!png) { set_err(err, err_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_write_struct(&png, NULL); set_err(err, err_size, "out of memory"); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(ws.buf);
        return -1;
    }
    png_set_write_fn(png, &ws, on_write, on_flush);
    png_set_compression_level(png, compression_level);
    if (filters) png_set_filter(png, PNG_FILTER_TYPE_BASE, filters & PNG_ALL_FILTERS);
    png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < palette_len; i++) {
            pal[i].red = palette[3 * i]; pal[i].green = palette[3 * i + 1]; pal[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, pal, palette_len);
    }
    png_write_info(png, info);
    size_t stride = (size_t)width * channels * (bit_depth / 8);
    for (uint32_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + stride * y));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = ws.buf;
    *out_size = ws.size;
    return 0;
}

void hydra_png_free(void *p) { free(p); }
