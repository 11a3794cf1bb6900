#include "hydra_kernels.h"
#include <stdlib.h>

#include "bf16.h"
#include "parallel.h"

/* ---- the 3x3 heads on a bf16 input ----

   out[y][x][o] = bias[o] + sum over taps inside the image and channels of in * w, with in and w bf16.
   Per output the sum runs in 16 f32 lanes, lane l taking channel pairs 32 j + 2 l, 32 j + 2 l + 1 in
   VDPBF16PS's order (odd channel first), taps in the order (ky, kx) and 32-channel chunks within a
   tap; then bias + lane 0 + lane 1 + ... + lane 15. Weights: [out][ky][kx][channel] bf16. */

void hydra_head3x3_bf16_reference(const uint16_t *in, size_t height, size_t width, size_t channels,
                                  const uint16_t *weights, const float *bias, size_t out_channels, float *out) {
    for (size_t y = 0; y < height; y++) {
        for (size_t x = 0; x < width; x++) {
            for (size_t o = 0; o < out_channels; o++) {
                float lane[16] = {0};
                for (int ky = 0; ky < 3; ky++) {
                    const long yy = (long)y + ky - 1;
                    if (yy < 0 || yy >= (long)height) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const long xx = (long)x + kx - 1;
                        if (xx < 0 || xx >= (long)width) continue;
                        const uint16_t *src = in + ((size_t)yy * width + (size_t)xx) * channels;
                        const uint16_t *w = weights + ((o * 3 + (size_t)ky) * 3 + (size_t)kx) * channels;
                        for (size_t c = 0; c < channels; c += 32) {
                            for (int l = 0; l < 16; l++) {
                                const size_t i = c + 2 * (size_t)l;
                                lane[l] = hydra_ftz(lane[l] + hydra_bf16_to_float(src[i + 1]) * hydra_bf16_to_float(w[i + 1]));
                                lane[l] = hydra_ftz(lane[l] + hydra_bf16_to_float(src[i]) * hydra_bf16_to_float(w[i]));
                            }
                        }
                    }
                }
                float sum = bias ? bias[o] : 0.0f;
                for (int l = 0; l < 16; l++) sum += lane[l];
                out[(y * width + x) * out_channels + o] = sum;
            }
        }
    }
}

void hydra_channel_scale_bf16_reference(const float *in, const float *scale, uint16_t *out, size_t pixels,
                                        size_t channels, float lo, float hi) {
    for (size_t p = 0; p < pixels; p++) {
        for (size_t i = 0; i < channels; i++) {
            out[p * channels + i] = hydra_bf16_from_float(hydra_clamp(in[p * channels + i] * scale[i], lo, hi));
        }
    }
}

#ifdef HYDRA_HAS_BF16_BUILD
typedef struct {
    const uint16_t *in, *w, *zeros;
    const float *b;
    float *out;
    size_t h, wd, c, o;
} head16_ctx;

/* A block of np <= PIX pixels x OUTS outputs of row y from output o0: each input load feeds OUTS
   dot products and each weight load PIX. Taps outside the image read zeros (adding +0 changes no
   sum here: the lanes start at +0). */
#define HEAD_BLOCK(PIX, OUTS)                                                                          \
    BF16_TARGET static void head_block_##PIX##_##OUTS(const head16_ctx *k, size_t y, size_t x0, size_t np, \
                                                      size_t o0) {                                     \
        const size_t W = k->wd, C = k->c;                                                              \
        __m512 acc[PIX][OUTS];                                                                         \
        for (int p = 0; p < PIX; p++)                                                                  \
            for (int j = 0; j < OUTS; j++) acc[p][j] = _mm512_setzero_ps();                            \
        for (int ky = 0; ky < 3; ky++) {                                                               \
            const long yy = (long)y + ky - 1;                                                          \
            if (yy < 0 || yy >= (long)k->h) continue;                                                  \
            for (int kx = 0; kx < 3; kx++) {                                                           \
                const uint16_t *src[PIX], *wt[OUTS];                                                   \
                for (int p = 0; p < PIX; p++) {                                                        \
                    const long xx = (long)(x0 + (size_t)p) + kx - 1;                                   \
                    src[p] = ((size_t)p < np && xx >= 0 && xx < (long)W)                               \
                                 ? k->in + ((size_t)yy * W + (size_t)xx) * C : k->zeros;               \
                }                                                                                      \
                for (int j = 0; j < OUTS; j++)                                                         \
                    wt[j] = k->w + (((o0 + (size_t)j) * 3 + (size_t)ky) * 3 + (size_t)kx) * C;         \
                for (size_t i = 0; i < C; i += 32) {                                                   \
                    __m512bh s[PIX];                                                                   \
                    for (int p = 0; p < PIX; p++) s[p] = (__m512bh)_mm512_loadu_si512(src[p] + i);     \
                    for (int j = 0; j < OUTS; j++) {                                                   \
                        const __m512bh wv = (__m512bh)_mm512_loadu_si512(wt[j] + i);                   \
                        for (int p = 0; p < PIX; p++) acc[p][j] = _mm512_dpbf16_ps(acc[p][j], s[p], wv); \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        for (size_t p = 0; p < np; p++) {                                                              \
            float *dst = k->out + (y * W + x0 + p) * k->o;                                             \
            for (int j = 0; j < OUTS; j++) {                                                           \
                float lanes[16];                                                                       \
                _mm512_storeu_ps(lanes, acc[p][j]);                                                    \
                float sum = k->b ? k->b[o0 + (size_t)j] : 0.0f;                                        \
                for (int l = 0; l < 16; l++) sum += lanes[l];                                          \
                dst[o0 + (size_t)j] = sum;                                                             \
            }                                                                                          \
        }                                                                                              \
    }

/* Blocks that keep at most 24 accumulators: up to 3 outputs 8 pixels at a time, 4-6 outputs 4. */
HEAD_BLOCK(8, 1)
HEAD_BLOCK(8, 2)
HEAD_BLOCK(8, 3)
HEAD_BLOCK(4, 4)
HEAD_BLOCK(4, 5)
HEAD_BLOCK(4, 6)

BF16_TARGET
static void head16_row(void *vctx, size_t y) {
    const head16_ctx *k = (const head16_ctx *)vctx;
    for (size_t o0 = 0; o0 < k->o; o0 += 6) {
        const size_t n = k->o - o0 < 6 ? k->o - o0 : 6;
        const size_t pix = n <= 3 ? 8 : 4;
        for (size_t x0 = 0; x0 < k->wd; x0 += pix) {
            const size_t np = k->wd - x0 < pix ? k->wd - x0 : pix;
            switch (n) {
            case 1: head_block_8_1(k, y, x0, np, o0); break;
            case 2: head_block_8_2(k, y, x0, np, o0); break;
            case 3: head_block_8_3(k, y, x0, np, o0); break;
            case 4: head_block_4_4(k, y, x0, np, o0); break;
            case 5: head_block_4_5(k, y, x0, np, o0); break;
            default: head_block_4_6(k, y, x0, np, o0); break;
            }
        }
    }
}

int hydra_head3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, const uint16_t *weights,
                       const float *bias, size_t out_channels, float *out, pthreadpool_t pool) {
    if (!hydra_bf16_supported() || channels == 0 || channels % 32 != 0) return -1;
    uint16_t *zeros = (uint16_t *)calloc(channels, sizeof(uint16_t));
    if (!zeros) abort();
    head16_ctx k = {in, weights, zeros, bias, out, height, width, channels, out_channels};
    hydra_parallelize_1d(pool, head16_row, &k, height);
    free(zeros);
    return 0;
}

typedef struct {
    const float *in, *scale;
    uint16_t *out;
    size_t c;
    float lo, hi;
} scale16_ctx;

BF16_TARGET
static void scale16_tile(void *vctx, size_t start, size_t count) {
    const scale16_ctx *s = (const scale16_ctx *)vctx;
    const size_t C = s->c;
    const __m512 lo = _mm512_set1_ps(s->lo), hi = _mm512_set1_ps(s->hi);
    for (size_t p = start; p < start + count; p++) {
        const float *src = s->in + p * C;
        uint16_t *dst = s->out + p * C;
        for (size_t i = 0; i < C; i += 32) {
            const __m512 a = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(src + i), _mm512_loadu_ps(s->scale + i)), lo), hi);
            const __m512 b = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(s->scale + i + 16)), lo), hi);
            _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
    }
}

int hydra_channel_scale_bf16(const float *in, const float *scale, uint16_t *out, size_t pixels, size_t channels,
                             float lo, float hi, pthreadpool_t pool) {
    if (!hydra_bf16_supported() || channels % 32 != 0) return -1;
    scale16_ctx s = {in, scale, out, channels, lo, hi};
    hydra_parallelize_1d_tile_1d(pool, scale16_tile, &s, pixels, 64);
    return 0;
}
#else
int hydra_head3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, const uint16_t *weights,
                       const float *bias, size_t out_channels, float *out, pthreadpool_t pool) {
    (void)in; (void)height; (void)width; (void)channels; (void)weights; (void)bias; (void)out_channels; (void)out; (void)pool;
    return -1;
}

int hydra_channel_scale_bf16(const float *in, const float *scale, uint16_t *out, size_t pixels, size_t channels,
                             float lo, float hi, pthreadpool_t pool) {
    (void)in; (void)scale; (void)out; (void)pixels; (void)channels; (void)lo; (void)hi; (void)pool;
    return -1;
}
#endif
