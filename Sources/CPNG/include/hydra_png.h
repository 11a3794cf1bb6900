#ifndef HYDRA_PNG_H
#define HYDRA_PNG_H
#include <stddef.h>
#include <stdint.h>

/* libpng reports errors with longjmp. Every setjmp lives in hydra_png.c, so a
   longjmp only ever unwinds C frames and never crosses Swift code. */

typedef struct {
    uint32_t width, height;
    int bit_depth;    /* as stored: 1, 2, 4, 8 or 16 */
    int color_type;   /* PNG_COLOR_TYPE_* */
    int interlaced;
} hydra_png_info;

/* Reads only the header. Returns 0, or -1 with a message in err. */
int hydra_png_probe(const uint8_t *data, size_t size, hydra_png_info *info,
                    char *err, size_t err_size);

/* Decodes to 8-bit RGB (grey, palette, 16-bit, alpha all converted; alpha is
   dropped). rgb must hold width*height*3 bytes. Returns 0 or -1 with err. */
int hydra_png_decode_rgb8(const uint8_t *data, size_t size, uint8_t *rgb,
                          uint32_t width, uint32_t height, char *err, size_t err_size);

/* Encodes rows of 8-bit samples. color_type is PNG_COLOR_TYPE_GRAY (1 channel),
   _RGB (3), _RGBA (4) or _PALETTE (1, with palette of palette_len RGB entries).
   bit_depth 8 or 16 (16: samples are big-endian byte pairs, as PNG stores them).
   filters: PNG_FILTER_* bits libpng may choose from per row; 0 leaves libpng's default
   (none for palette images, adaptive over all five otherwise).
   On success *out is malloc'd (free with hydra_png_free) and *out_size set. */
int hydra_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                     int color_type, int bit_depth,
                     const uint8_t *palette, int palette_len,
                     int compression_level, int filters,
                     uint8_t **out, size_t *out_size, char *err, size_t err_size);

/* Decodes without colour conversion: 1, 3 or 4 samples per pixel as stored (palette indices
   for palette images, bit depths below 8 expanded to 8, 16-bit samples big-endian). out must
   hold height * rowbytes, where rowbytes = width * channels * (bit_depth > 8 ? 2 : 1) and
   channels is reported through *channels. palette (768 bytes) receives PLTE, *palette_len its
   entry count (0 if none). Returns 0 or -1 with err. */
int hydra_png_decode_raw(const uint8_t *data, size_t size, uint8_t *out, size_t out_size,
                         int *channels, uint8_t *palette, int *palette_len, char *err, size_t err_size);

void hydra_png_free(void *p);

#endif
