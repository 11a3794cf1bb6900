#ifndef HYDRA_RESIZE_H
#define HYDRA_RESIZE_H
#include <stddef.h>
#include <stdint.h>
#include <pthreadpool.h>

/* Resizing of planar float maps [planes][h][w] -> [planes][H][W].

   Cubic follows OpenCV's INTER_CUBIC exactly: a = -0.75, source x = (X + 0.5) * w / W - 0.5,
   four taps from floor(x) - 1, replicated border, separable (horizontal pass, then vertical).
   `tmp` must hold planes * h * W floats (the horizontal pass). */

void hydra_resize_cubic(const float *src, size_t planes, size_t h, size_t w,
                        float *dst, size_t H, size_t W, float *tmp, pthreadpool_t pool);

/* Cubic upsampling of each plane fused with the argmax over planes: labels[Y][X] is the index of
   the largest upsampled value (the first on ties), without materialising the upsampled planes. */
void hydra_argmax_cubic(const float *src, size_t planes, size_t h, size_t w,
                        uint8_t *labels, size_t H, size_t W, float *tmp, pthreadpool_t pool);

/* Argmax over planes at the source resolution. */
void hydra_argmax(const float *src, size_t planes, size_t pixels, uint8_t *labels);

/* Nearest neighbour with pixel centres aligned: source index floor((X + 0.5) * w / W). */
void hydra_resize_nearest_u8(const uint8_t *src, size_t h, size_t w, uint8_t *dst, size_t H, size_t W);

/* Bilinear with half-pixel centres and clamped borders (OpenCV INTER_LINEAR, PyTorch
   align_corners=False). `tmp` must hold planes * h * W floats. */
void hydra_resize_bilinear(const float *src, size_t planes, size_t h, size_t w,
                           float *dst, size_t H, size_t W, float *tmp, pthreadpool_t pool);

/* Downscaling of interleaved 8-bit RGB by area averaging (each output pixel is the mean of the
   source pixels its footprint covers, fractions weighted, as OpenCV's INTER_AREA): for frames too
   large for the network. H <= h and W <= w; returns 0, or -1 when out of memory or not shrinking. */
int hydra_resize_area_rgb8(const uint8_t *src, size_t h, size_t w, uint8_t *dst, size_t H, size_t W, pthreadpool_t pool);

#endif
