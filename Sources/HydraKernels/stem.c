#include "hydra_kernels.h"
#include <string.h>

#include "dispatch.h"
#include "lanes.h"
#include "parallel.h"
#include "vec.h"

/* ---- the first layer, on 8-bit RGB ---- */

enum { STEM_TILE = 32 /* output columns normalised at a time */, TAPS = 27 };

typedef struct {
    const uint8_t *rgb;
    const float *w, *b;
    float *out;
    /* When set, the output goes here as bf16 instead (for a bf16 replica's first 1x1 layer), or as
       u8 in the quantization of the int8 layer after it. */
    uint16_t *out16;
    uint8_t *out8;
    float qinv;
    int32_t qzero;
    size_t h, wd, ow, oc;
    float lo, hi;
    float lut[3][256];
} stem_ctx;


/* 16 floats to bf16, as hydra_bf16_from_float rounds (nearest even, denormals to signed zero,
   NaN quiet), in plain vector code so that every clone computes the same bits. Vectors go by
   address: vector-typed arguments would change the ABI between clones (vec.h). */
static inline __attribute__((always_inline)) void store_bf16(uint16_t *dst, const v16 *v) {
    u32x16 u;
    memcpy(&u, v, sizeof u);
    const u32x16 rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const u32x16 nan = (u32x16)((u & 0x7FFFFFFFu) > 0x7F800000u), tiny = (u32x16)((u & 0x7F800000u) == 0);
    u32x16 r = (nan & ((u >> 16) | 0x40u)) | (~nan & rounded);
    r = (tiny & ((u >> 16) & 0x8000u)) | (~tiny & r);
    const u16x16 h = __builtin_convertvector(r, u16x16);
    memcpy(dst, &h, sizeof h);
}

static inline __attribute__((always_inline)) void store_out(const stem_ctx *k, size_t at, const v16 *v) {
    if (k->out8) {
        store16_u8(k->out8 + at, v, k->qinv, k->qzero);
    } else if (k->out16) {
        store_bf16(k->out16 + at, v);
    } else {
        memcpy(k->out + at, v, sizeof *v);
    }
}

/* One output row. The tile's three input rows are normalised into a small buffer (zeros where the
   3x3 window hangs over the border, as the reference pads the normalised image); then per block of
   16 outputs the 27 weight vectors stay in registers and each pixel costs 27 broadcast FMAs, in
   XNNPACK's order (bias first, then taps row by row, channels innermost). */
HYDRA_BODY void stem_row_body(void *vctx, size_t oy) {
    const stem_ctx *k = (const stem_ctx *)vctx;
    float in[3][2 * STEM_TILE + 1][3];
    for (size_t x0 = 0; x0 < k->ow; x0 += STEM_TILE) {
        const size_t n = k->ow - x0 < STEM_TILE ? k->ow - x0 : STEM_TILE;
        for (int ky = 0; ky < 3; ky++) {
            const long iy = 2 * (long)oy + ky - 1;
            for (size_t j = 0; j < 2 * n + 1; j++) {
                const long ix = 2 * (long)x0 - 1 + (long)j;
                if (iy < 0 || iy >= (long)k->h || ix < 0 || ix >= (long)k->wd) {
                    in[ky][j][0] = in[ky][j][1] = in[ky][j][2] = 0.0f;
                } else {
                    const uint8_t *px = k->rgb + ((size_t)iy * k->wd + (size_t)ix) * 3;
                    in[ky][j][0] = k->lut[0][px[0]];
                    in[ky][j][1] = k->lut[1][px[1]];
                    in[ky][j][2] = k->lut[2][px[2]];
                }
            }
        }
        for (size_t o0 = 0; o0 < k->oc; o0 += 16) {
            v16 wt[TAPS], bias = {0}, lo = {0}, hi = {0};
            for (int t = 0; t < TAPS; t++) LOAD16(wt[t], k->w + (size_t)t * k->oc + o0);
            if (k->b) LOAD16(bias, k->b + o0);
            lo += k->lo;
            hi += k->hi;
            const size_t dst = (oy * k->ow + x0) * k->oc + o0;
            /* Four pixels at a time: four independent FMA chains hide the FMA latency. */
            size_t p = 0;
            for (; p + 4 <= n; p += 4) {
                v16 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
                /* Fully unrolled, so each weight vector is a register, not a stack slot per tap. */
#pragma clang loop unroll(full)
                for (int ky = 0; ky < 3; ky++)
#pragma clang loop unroll(full)
                    for (int kx = 0; kx < 3; kx++)
#pragma clang loop unroll(full)
                        for (int c = 0; c < 3; c++) {
                            const v16 w = wt[(ky * 3 + kx) * 3 + c];
                            a0 += in[ky][2 * p + kx][c] * w;
                            a1 += in[ky][2 * p + 2 + kx][c] * w;
                            a2 += in[ky][2 * p + 4 + kx][c] * w;
                            a3 += in[ky][2 * p + 6 + kx][c] * w;
                        }
                a0 = VCLAMP(a0, lo, hi);
                a1 = VCLAMP(a1, lo, hi);
                a2 = VCLAMP(a2, lo, hi);
                a3 = VCLAMP(a3, lo, hi);
                store_out(k, dst + p * k->oc, &a0);
                store_out(k, dst + (p + 1) * k->oc, &a1);
                store_out(k, dst + (p + 2) * k->oc, &a2);
                store_out(k, dst + (p + 3) * k->oc, &a3);
            }
            for (; p < n; p++) {
                v16 acc = bias;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        for (int c = 0; c < 3; c++) acc += in[ky][2 * p + kx][c] * wt[(ky * 3 + kx) * 3 + c];
                acc = VCLAMP(acc, lo, hi);
                store_out(k, dst + p * k->oc, &acc);
            }
        }
    }
}
HYDRA_CLONES(stem_row, (void *vctx, size_t oy), (vctx, oy))

static int stem(const uint8_t *rgb, size_t height, size_t width, const float mean[3], const float std[3],
                const float *weights, const float *bias, size_t out_channels, float lo, float hi, float *out,
                uint16_t *out16, uint8_t *out8, float qscale, int32_t qzero, pthreadpool_t pool) {
    if (out_channels == 0 || out_channels % 16 != 0 || height == 0 || width == 0) return -1;
    if (out8 && (!(qscale > 0) || qzero < 0 || qzero > 255)) return -1;
    stem_ctx k = { rgb, weights, bias, out, out16, out8, out8 ? 1.0f / qscale : 0, qzero, height, width, (width + 1) / 2, out_channels, lo, hi, {{0}} };
    for (int c = 0; c < 3; c++) /* the reference's arithmetic, as in hydra_preprocess_rgb8 */
        for (int v = 0; v < 256; v++) k.lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    hydra_parallelize_1d(pool, stem_row_pick(), &k, (height + 1) / 2);
    return 0;
}

int hydra_stem_conv3x3s2_rgb8(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                              const float std[3], const float *weights, const float *bias,
                              size_t out_channels, float lo, float hi, float *out, pthreadpool_t pool) {
    return stem(rgb, height, width, mean, std, weights, bias, out_channels, lo, hi, out, NULL, NULL, 0, 0, pool);
}

int hydra_stem_conv3x3s2_rgb8_bf16(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                                   const float std[3], const float *weights, const float *bias,
                                   size_t out_channels, float lo, float hi, uint16_t *out, pthreadpool_t pool) {
    return stem(rgb, height, width, mean, std, weights, bias, out_channels, lo, hi, NULL, out, NULL, 0, 0, pool);
}

int hydra_stem_conv3x3s2_rgb8_u8(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                                 const float std[3], const float *weights, const float *bias,
                                 size_t out_channels, float lo, float hi, float scale, int32_t zero, uint8_t *out,
                                 pthreadpool_t pool) {
    return stem(rgb, height, width, mean, std, weights, bias, out_channels, lo, hi, NULL, NULL, out, scale, zero, pool);
}
