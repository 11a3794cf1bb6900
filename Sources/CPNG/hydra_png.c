#include "hydra_png.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    /* Stopping at the last row (see read_rows). */
    int final_pass;             /* the last interlace pass that has pixels; 0 when not interlaced */
    png_uint_32 final_pass_row; /* its last row */
    uint8_t *final_copy;        /* that row as transformed, kept by on_last_row */
    size_t final_bytes;
    int have_final, stopped;
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
    /* Every pixel is decoded: what libpng wants to read now is whatever compressed data follows the
     * image, which it would inflate just to check its end (a 64x48 image can carry gigabytes). */
    if (rs->have_final) { rs->stopped = 1; png_error(png, "stopped after the last row"); }
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
    memset(rs, 0, sizeof *rs);
    rs->data = data; rs->size = size; rs->pos = 0;
    png_set_read_fn(*png, rs, on_read);
    /* Dimensions are policed by the caller's pixel limit; lift libpng's own 1M cap. */
    png_set_user_limits(*png, 0x7fffffff, 0x7fffffff);
    png_set_crc_action(*png, PNG_CRC_DEFAULT, PNG_CRC_DEFAULT);
    /* Work is bounded by the pixels, not by what a file says: ancillary chunks that libpng would
     * inflate or keep (iCCP, zTXt, iTXt profiles and text, sPLT ...) are skipped unread, and no
     * chunk may make libpng allocate more than 1 MiB. */
    static const png_byte ignored[] =
        "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt\0";
    png_set_keep_unknown_chunks(*png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(*png, PNG_HANDLE_CHUNK_NEVER, ignored, (int)(sizeof ignored / 5));
    png_set_chunk_malloc_max(*png, 1 << 20);
    png_set_chunk_cache_max(*png, 64);
    return 0;
}

/* The image's last row, once libpng has transformed it: kept aside, since libpng only copies it
 * out after it has finished the compressed stream (see on_read). */
static void on_row_transformed(png_structp png, png_row_infop row, png_bytep data) {
    reader_state *rs = (reader_state *)png_get_io_ptr(png);
    if (png_get_current_pass_number(png) != rs->final_pass || png_get_current_row_number(png) != rs->final_pass_row) return;
    if (row->rowbytes > rs->final_bytes) png_error(png, "unexpected row size");
    memcpy(rs->final_copy, data, row->rowbytes);
    rs->have_final = 1;
}

/* Reads every row into rows[] (bpp bytes per output pixel) and stops after the last one. The last
 * row is copied out by on_row_transformed, so that reading can stop before libpng goes through the
 * rest of the compressed stream. Call after png_read_update_info, within the caller's setjmp. */
static void read_rows(png_structp png, png_infop info, reader_state *rs, png_bytep *rows, size_t bpp) {
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int passes = png_get_interlace_type(png, info) == PNG_INTERLACE_NONE ? 1 : 7;
    rs->final_pass = -1;
    for (int p = passes - 1; p >= 0 && rs->final_pass < 0; p--) {
        png_uint_32 r = passes == 1 ? height : PNG_PASS_ROWS(height, p);
        png_uint_32 c = passes == 1 ? width : PNG_PASS_COLS(width, p);
        if (r > 0 && c > 0) { rs->final_pass = p; rs->final_pass_row = r - 1; }
    }
    rs->final_bytes = (size_t)width * bpp;
    rs->final_copy = (uint8_t *)malloc(rs->final_bytes ? rs->final_bytes : 1);
    if (!rs->final_copy) png_error(png, "out of memory");
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < height; y++) png_read_row(png, rows[y], NULL);
}

/* After png_error: 1 when the image was complete and reading was stopped on purpose; the last row
 * (saved before libpng could place it) is then placed here. */
static int finish_stopped(png_structp png, png_infop info, reader_state *rs, png_bytep *rows, size_t bpp) {
    if (!rs->stopped || !rs->have_final) return 0;
    png_uint_32 width = png_get_image_width(png, info);
    int p = rs->final_pass;
    int interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    png_uint_32 y = interlaced ? PNG_ROW_FROM_PASS_ROW(rs->final_pass_row, p) : rs->final_pass_row;
    png_uint_32 cols = interlaced ? PNG_PASS_COLS(width, p) : width;
    for (png_uint_32 i = 0; i < cols; i++) {
        png_uint_32 x = interlaced ? PNG_COL_FROM_PASS_COL(i, p) : i;
        memcpy(rows[y] + (size_t)x * bpp, rs->final_copy + (size_t)i * bpp, bpp);
    }
    return 1;
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
        int ok = rows && finish_stopped(png, info, &rs, rows, 3);
        free(rows);
        free(rs.final_copy);
        png_destroy_read_struct(&png, &info, NULL);
        if (ok && err && err_size) err[0] = 0;
        return ok ? 0 : -1;
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
    png_set_read_user_transform_fn(png, on_row_transformed);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3)
        png_error(png, "unsupported PNG pixel layout");
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = rgb + (size_t)y * width * 3;
    read_rows(png, info, &rs, rows, 3);
    /* No png_read_end: the image ends at its last row. */
    free(rows);
    free(rs.final_copy);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int hydra_png_decode_raw(const uint8_t *data, size_t size, uint8_t *out, size_t out_size,
                         int *channels, uint8_t *palette, int *palette_len, char *err, size_t err_size) {
    png_structp png = NULL; png_infop info = NULL;
    reader_state rs; error_state es = { err, err_size };
    png_bytep *volatile rows = NULL;
    volatile size_t bpp = 0;
    if (open_reader(data, size, &png, &info, &rs, &es) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        int ok = rows && bpp && finish_stopped(png, info, &rs, rows, bpp);
        free(rows);
        free(rs.final_copy);
        png_destroy_read_struct(&png, &info, NULL);
        if (ok && err && err_size) err[0] = 0;
        return ok ? 0 : -1;
    }
    png_read_info(png, info);
    uint32_t height = png_get_image_height(png, info);
    int ct = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) < 8) png_set_packing(png);
    png_set_interlace_handling(png);
    png_set_read_user_transform_fn(png, on_row_transformed);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    bpp = rowbytes / png_get_image_width(png, info);
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
    read_rows(png, info, &rs, rows, bpp);
    /* No png_read_end: the image ends at its last row. */
    free(rows);
    free(rs.final_copy);
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
