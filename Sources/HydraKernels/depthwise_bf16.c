#include "hydra_kernels.h"
#include <math.h>

#include "bf16.h"
#include "parallel.h"

/* ---- depthwise 3x3 on bf16 tensors ----

   The MobileNetV2 blocks expand to six times their width, run the depthwise layer there and
   project back: with bf16 tensors on both sides of it, the widest tensors of the network are read
   and written at half the bytes. The arithmetic stays f32 (one FMA per tap, as the f32 kernel). */

/* Both references: the clamped f32 sum of each output, rounded to bf16 (out16) or quantized (out8). */
static void reference(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride, const float *weights,
                      const float *bias, float lo, float hi, uint16_t *out16, uint8_t *out8, float scale, int32_t zero) {
    const size_t oh = (height - 1) / stride + 1, ow = (width - 1) / stride + 1;
    for (size_t oy = 0; oy < oh; oy++) {
        for (size_t ox = 0; ox < ow; ox++) {
            for (size_t c = 0; c < channels; c++) {
                float a = bias ? bias[c] : 0.0f;
                for (int ky = 0; ky < 3; ky++) {
                    const long iy = (long)(oy * stride) + ky - 1;
                    if (iy < 0 || iy >= (long)height) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const long ix = (long)(ox * stride) + kx - 1;
                        if (ix < 0 || ix >= (long)width) continue;
                        const float x = hydra_bf16_to_float(in[((size_t)iy * width + (size_t)ix) * channels + c]);
                        a = fmaf(x, weights[(size_t)(ky * 3 + kx) * channels + c], a);
                    }
                }
                const size_t at = (oy * ow + ox) * channels + c;
                if (out8) out8[at] = hydra_int8_quantize(hydra_clamp(a, lo, hi), scale, zero);
                else out16[at] = hydra_bf16_from_float(hydra_clamp(a, lo, hi));
            }
        }
    }
}

void hydra_depthwise3x3_bf16_reference(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                                       const float *weights, const float *bias, float lo, float hi, uint16_t *out) {
    reference(in, height, width, channels, stride, weights, bias, lo, hi, out, NULL, 0, 0);
}

void hydra_depthwise3x3_bf16_u8_reference(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                                          const float *weights, const float *bias, float lo, float hi, float scale,
                                          int32_t zero, uint8_t *out) {
    reference(in, height, width, channels, stride, weights, bias, lo, hi, NULL, out, scale, zero);
}

#ifdef HYDRA_HAS_BF16_BUILD
typedef struct {
    const uint16_t *in;
    const float *w, *b;
    uint16_t *out;
    size_t h, wd, c, stride, oh, ow;
    float lo, hi;
    /* Instead of `out`: u8, quantized with 1 / scale and the zero point. */
    uint8_t *out8;
    float inv, zero;
} dw16_ctx;

BF16_TARGET
static inline __m512 load16(const uint16_t *p) { return _mm512_cvtpbh_ps((__m256bh)_mm256_loadu_si256((const __m256i *)p)); }

/* 16 clamped outputs at element `at`: bf16, or u8 as hydra_int8_quantize (the multiply, rint, the
   zero point, then 0..255; the same instructions as gemm_int8.c's quantization). */
BF16_TARGET
static inline void store16(const dw16_ctx *k, size_t at, __m512 v) {
    if (k->out8) {
        __m512 q = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(k->inv)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                 _mm512_set1_ps(k->zero));
        q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
        _mm_storeu_si128((__m128i *)(k->out8 + at), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
    } else {
        _mm256_storeu_si256((__m256i *)(k->out + at), (__m256i)_mm512_cvtneps_pbh(v));
    }
}

/* One output row, as hydra_depthwise3x3 walks it: per block of 16 channels the nine weight vectors
   stay in registers; interior pixels four at a time (four independent FMA chains), border pixels
   one at a time skipping the taps outside the image. */
BF16_TARGET
static void dw16_row(void *vctx, size_t oy) {
    const dw16_ctx *k = (const dw16_ctx *)vctx;
    const size_t C = k->c, W = k->wd, S = k->stride, OW = k->ow;
    const uint16_t *rows[3];
    int valid[3];
    for (int ky = 0; ky < 3; ky++) {
        const long iy = (long)(oy * S) + ky - 1;
        valid[ky] = iy >= 0 && iy < (long)k->h;
        rows[ky] = valid[ky] ? k->in + (size_t)iy * W * C : k->in;
    }
    const size_t first = 1, last = W >= 2 ? (W - 2) / S : 0; /* interior: 1 <= ox, S ox + 1 <= W - 1 */
    const size_t tile = S == 1 ? 4 : 16;
    const __m512 lo = _mm512_set1_ps(k->lo), hi = _mm512_set1_ps(k->hi);
    for (size_t t0 = 0; t0 < OW; t0 += tile) {
        const size_t t1 = OW - t0 < tile ? OW : t0 + tile;
        for (size_t c0 = 0; c0 < C; c0 += 16) {
            __m512 wt[9];
            for (int t = 0; t < 9; t++) wt[t] = _mm512_loadu_ps(k->w + (size_t)t * C + c0);
            const __m512 bias = k->b ? _mm512_loadu_ps(k->b + c0) : _mm512_setzero_ps();
            const size_t dst = oy * OW * C + c0;
            size_t ox = t0;
            while (ox < t1) {
                if (ox >= first && ox + 3 <= last && ox + 3 < t1) {
                    __m512 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
                    for (int ky = 0; ky < 3; ky++) {
                        if (!valid[ky]) continue;
                        const uint16_t *r = rows[ky] + (S * ox - 1) * C + c0;
                        for (int kx = 0; kx < 3; kx++) {
                            const __m512 w = wt[ky * 3 + kx];
                            a0 = _mm512_fmadd_ps(load16(r + (size_t)kx * C), w, a0);
                            a1 = _mm512_fmadd_ps(load16(r + (S + (size_t)kx) * C), w, a1);
                            a2 = _mm512_fmadd_ps(load16(r + (2 * S + (size_t)kx) * C), w, a2);
                            a3 = _mm512_fmadd_ps(load16(r + (3 * S + (size_t)kx) * C), w, a3);
                        }
                    }
                    store16(k, dst + ox * C, _mm512_min_ps(_mm512_max_ps(a0, lo), hi));
                    store16(k, dst + (ox + 1) * C, _mm512_min_ps(_mm512_max_ps(a1, lo), hi));
                    store16(k, dst + (ox + 2) * C, _mm512_min_ps(_mm512_max_ps(a2, lo), hi));
                    store16(k, dst + (ox + 3) * C, _mm512_min_ps(_mm512_max_ps(a3, lo), hi));
                    ox += 4;
                    continue;
                }
                __m512 a = bias;
                for (int ky = 0; ky < 3; ky++) {
                    if (!valid[ky]) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const long ix = (long)(ox * S) + kx - 1;
                        if (ix < 0 || ix >= (long)W) continue;
                        a = _mm512_fmadd_ps(load16(rows[ky] + (size_t)ix * C + c0), wt[ky * 3 + kx], a);
                    }
                }
                store16(k, dst + ox * C, _mm512_min_ps(_mm512_max_ps(a, lo), hi));
                ox++;
            }
        }
    }
}

static int run(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride, const float *weights,
               const float *bias, float lo, float hi, uint16_t *out, uint8_t *out8, float scale, int32_t zero, pthreadpool_t pool) {
    if (!hydra_bf16_supported() || channels == 0 || channels % 16 != 0 || height == 0 || width == 0 ||
        (stride != 1 && stride != 2)) return -1;
    if (out8 && (!(scale > 0) || zero < 0 || zero > 255)) return -1;
    dw16_ctx k = {in, weights, bias, out, height, width, channels, stride,
                  (height - 1) / stride + 1, (width - 1) / stride + 1, lo, hi, out8, out8 ? 1.0f / scale : 0, (float)zero};
    hydra_parallelize_1d(pool, dw16_row, &k, k.oh);
    return 0;
}

int hydra_depthwise3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                            const float *weights, const float *bias, float lo, float hi, uint16_t *out,
                            pthreadpool_t pool) {
    return run(in, height, width, channels, stride, weights, bias, lo, hi, out, NULL, 0, 0, pool);
}

int hydra_depthwise3x3_bf16_u8(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                               const float *weights, const float *bias, float lo, float hi, float scale, int32_t zero,
                               uint8_t *out, pthreadpool_t pool) {
    return run(in, height, width, channels, stride, weights, bias, lo, hi, NULL, out, scale, zero, pool);
}
#else
int hydra_depthwise3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                            const float *weights, const float *bias, float lo, float hi, uint16_t *out,
                            pthreadpool_t pool) {
    (void)in; (void)height; (void)width; (void)channels; (void)stride; (void)weights; (void)bias; (void)lo; (void)hi;
    (void)out; (void)pool;
    return -1;
}

int hydra_depthwise3x3_bf16_u8(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                               const float *weights, const float *bias, float lo, float hi, float scale, int32_t zero,
                               uint8_t *out, pthreadpool_t pool) {
    (void)in; (void)height; (void)width; (void)channels; (void)stride; (void)weights; (void)bias; (void)lo; (void)hi;
    (void)scale; (void)zero; (void)out; (void)pool;
    return -1;
}
#endif
