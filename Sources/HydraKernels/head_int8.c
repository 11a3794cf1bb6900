#include "hydra_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "parallel.h"

/* ---- the 3x3 heads in int8 (AVX512-VNNI) ----

   The input is u8 with zero point 0 (a ReLU6 output: padding and zero are the same value), the
   weights s8 per output channel (s[o] = max |w[o][..]| / 127 over all taps and channels). Per output
   the kernel sums q * w8 over the taps inside the image and all channels in 32-bit integers (VPDPBUSD;
   exact, so in any order), then out = fmaf((float)sum, scale * s[o], bias[o]), as the reference.
   Weights: [out][ky][kx][channel] s8. */

void hydra_int8_pack_head(const float *w, size_t channels, size_t out_channels, int8_t *packed, float *scales) {
    const size_t n = 9 * channels;
    for (size_t o = 0; o < out_channels; o++) {
        float amax = 0;
        for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[o * n + i]));
        const double s = amax > 0 ? (double)amax / 127.0 : 1.0;
        scales[o] = (float)s;
        for (size_t i = 0; i < n; i++) {
            double q = nearbyint((double)w[o * n + i] / s);
            packed[o * n + i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
    }
}

void hydra_head3x3_int8_reference(const uint8_t *in, size_t height, size_t width, size_t channels, float scale,
                                  const int8_t *weights, const float *weight_scales, const float *bias, size_t out_channels,
                                  float *out) {
    for (size_t y = 0; y < height; y++) {
        for (size_t x = 0; x < width; x++) {
            for (size_t o = 0; o < out_channels; o++) {
                int32_t sum = 0;
                for (int ky = 0; ky < 3; ky++) {
                    const long yy = (long)y + ky - 1;
                    if (yy < 0 || yy >= (long)height) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const long xx = (long)x + kx - 1;
                        if (xx < 0 || xx >= (long)width) continue;
                        const uint8_t *src = in + ((size_t)yy * width + (size_t)xx) * channels;
                        const int8_t *w = weights + ((o * 3 + (size_t)ky) * 3 + (size_t)kx) * channels;
                        for (size_t c = 0; c < channels; c++) sum += (int32_t)src[c] * (int32_t)w[c];
                    }
                }
                out[(y * width + x) * out_channels + o] = fmaf((float)sum, scale * weight_scales[o], bias ? bias[o] : 0.0f);
            }
        }
    }
}

#ifdef HYDRA_HAS_BF16_BUILD
#define INT8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

typedef struct {
    const uint8_t *in, *zeros;
    const int8_t *w;
    const float *wscale, *b;
    float *out;
    float scale;
    size_t h, wd, c, o;
} head8_ctx;

/* A block of np <= PIX pixels x OUTS outputs of row y from output o0: each 64-channel input load
   feeds OUTS dot products and each weight load PIX. Taps outside the image read zeros. */
#define HEAD8_BLOCK(PIX, OUTS)                                                                          \
    INT8_TARGET static void head8_block_##PIX##_##OUTS(const head8_ctx *k, size_t y, size_t x0, size_t np, \
                                                       size_t o0) {                                     \
        const size_t W = k->wd, C = k->c;                                                               \
        __m512i acc[PIX][OUTS];                                                                         \
        for (int p = 0; p < PIX; p++)                                                                   \
            for (int j = 0; j < OUTS; j++) acc[p][j] = _mm512_setzero_si512();                          \
        for (int ky = 0; ky < 3; ky++) {                                                                \
            const long yy = (long)y + ky - 1;                                                           \
            if (yy < 0 || yy >= (long)k->h) continue;                                                   \
            for (int kx = 0; kx < 3; kx++) {                                                            \
                const uint8_t *src[PIX];                                                                \
                const int8_t *wt[OUTS];                                                                 \
                for (int p = 0; p < PIX; p++) {                                                         \
                    const long xx = (long)(x0 + (size_t)p) + kx - 1;                                    \
                    src[p] = ((size_t)p < np && xx >= 0 && xx < (long)W)                                \
                                 ? k->in + ((size_t)yy * W + (size_t)xx) * C : k->zeros;                \
                }                                                                                       \
                for (int j = 0; j < OUTS; j++)                                                          \
                    wt[j] = k->w + (((o0 + (size_t)j) * 3 + (size_t)ky) * 3 + (size_t)kx) * C;          \
                for (size_t i = 0; i < C; i += 64) {                                                    \
                    __m512i s[PIX];                                                                     \
                    for (int p = 0; p < PIX; p++) s[p] = _mm512_loadu_si512(src[p] + i);                \
                    for (int j = 0; j < OUTS; j++) {                                                    \
                        const __m512i wv = _mm512_loadu_si512(wt[j] + i);                               \
                        for (int p = 0; p < PIX; p++) acc[p][j] = _mm512_dpbusd_epi32(acc[p][j], s[p], wv); \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        for (size_t p = 0; p < np; p++) {                                                               \
            float *dst = k->out + (y * W + x0 + p) * k->o;                                              \
            for (int j = 0; j < OUTS; j++) {                                                            \
                const size_t o = o0 + (size_t)j;                                                        \
                const int32_t sum = _mm512_reduce_add_epi32(acc[p][j]);                                 \
                dst[o] = fmaf((float)sum, k->scale * k->wscale[o], k->b ? k->b[o] : 0.0f);              \
            }                                                                                           \
        }                                                                                               \
    }

/* Blocks that keep at most 24 accumulators: up to 3 outputs 8 pixels at a time, 4-6 outputs 4. */
HEAD8_BLOCK(8, 1)
HEAD8_BLOCK(8, 2)
HEAD8_BLOCK(8, 3)
HEAD8_BLOCK(4, 4)
HEAD8_BLOCK(4, 5)
HEAD8_BLOCK(4, 6)

INT8_TARGET
static void head8_row(void *vctx, size_t y) {
    const head8_ctx *k = (const head8_ctx *)vctx;
    for (size_t o0 = 0; o0 < k->o; o0 += 6) {
        const size_t n = k->o - o0 < 6 ? k->o - o0 : 6;
        const size_t pix = n <= 3 ? 8 : 4;
        for (size_t x0 = 0; x0 < k->wd; x0 += pix) {
            const size_t np = k->wd - x0 < pix ? k->wd - x0 : pix;
            switch (n) {
            case 1: head8_block_8_1(k, y, x0, np, o0); break;
            case 2: head8_block_8_2(k, y, x0, np, o0); break;
            case 3: head8_block_8_3(k, y, x0, np, o0); break;
            case 4: head8_block_4_4(k, y, x0, np, o0); break;
            case 5: head8_block_4_5(k, y, x0, np, o0); break;
            default: head8_block_4_6(k, y, x0, np, o0); break;
            }
        }
    }
}

int hydra_head3x3_int8(const uint8_t *in, size_t height, size_t width, size_t channels, float scale, const int8_t *weights,
                       const float *weight_scales, const float *bias, size_t out_channels, float *out, pthreadpool_t pool) {
    if (!hydra_int8_supported() || channels == 0 || channels % 64 != 0 || !(scale > 0)) return -1;
    uint8_t *zeros = (uint8_t *)calloc(channels, 1);
    if (!zeros) abort();
    head8_ctx k = {in, zeros, weights, weight_scales, bias, out, scale, height, width, channels, out_channels};
    hydra_parallelize_1d(pool, head8_row, &k, height);
    free(zeros);
    return 0;
}
#else
int hydra_head3x3_int8(const uint8_t *in, size_t height, size_t width, size_t channels, float scale, const int8_t *weights,
                       const float *weight_scales, const float *bias, size_t out_channels, float *out, pthreadpool_t pool) {
    (void)in; (void)height; (void)width; (void)channels; (void)scale; (void)weights; (void)weight_scales; (void)bias;
    (void)out_channels; (void)out; (void)pool;
    return -1;
}
#endif
