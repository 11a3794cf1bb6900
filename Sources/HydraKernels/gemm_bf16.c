#include "hydra_kernels.h"
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* ---- 1x1 convolution in bfloat16 with f32 accumulation (AVX512-BF16) ----

   out[m][n] = clamp(bias[n] + sum_k bf16(in[m][k]) * bf16(w[n][k]), lo, hi), the sum taken by
   VDPBF16PS: per output lane, the products of a pair of k (exact in f32) are added to the f32
   accumulator one after the other, odd k first, each addition rounded to nearest even, with inputs
   and results that are denormal flushed to zero. `hydra_conv1x1_bf16_reference` does exactly that
   in scalar code, so the two agree bit for bit.

   Weights are packed once per model: blocks of NR = 32 output channels, in each block k in pairs:
   [N/32][K/2][32][2] bf16, zero-padded in k (to even) and in n (to 32). The activations stay f32:
   each task converts a panel of MR rows to bf16 pairs (RNE) and runs every block of outputs over
   it, so each activation is converted once per layer. */

enum { MR = 8, NR = 32, KMAX = 4096, ROWS_PER_TASK = 64 };

static inline size_t even(size_t k) { return (k + 1) & ~(size_t)1; }
static inline size_t blocks(size_t n) { return (n + NR - 1) / NR; }

size_t hydra_bf16_packed_elements(size_t in_channels, size_t out_channels) {
    return blocks(out_channels) * even(in_channels) * NR;
}

static inline uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* f32 -> bf16 as VCVTNE2PS2BF16 does it: round to nearest even, denormals to (signed) zero, NaN quiet. */
uint16_t hydra_bf16_from_float(float f) {
    uint32_t u = bits(f);
    if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero or denormal */
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_to_float(uint16_t h) { return from_bits((uint32_t)h << 16); }

void hydra_bf16_pack_weights(const float *w, size_t in_channels, size_t out_channels, uint16_t *packed) {
    const size_t K2 = even(in_channels) / 2;
    memset(packed, 0, hydra_bf16_packed_elements(in_channels, out_channels) * sizeof(uint16_t));
    for (size_t n = 0; n < out_channels; n++) {
        uint16_t *block = packed + (n / NR) * K2 * NR * 2;
        for (size_t k = 0; k < in_channels; k++) {
            block[(k / 2) * NR * 2 + (n % NR) * 2 + (k & 1)] = hydra_bf16_from_float(w[n * in_channels + k]);
        }
    }
}

/* Flush a denormal f32 result to signed zero (the FTZ of VDPBF16PS). */
static inline float ftz(float f) {
    uint32_t u = bits(f);
    return (u & 0x7F800000u) == 0 ? from_bits(u & 0x80000000u) : f;
}

void hydra_conv1x1_bf16_reference(const float *in, size_t pixels, size_t in_channels, const uint16_t *packed,
                                  const float *bias, size_t out_channels, float lo, float hi, float *out) {
    const size_t K2 = even(in_channels) / 2;
    for (size_t m = 0; m < pixels; m++) {
        for (size_t n = 0; n < out_channels; n++) {
            const uint16_t *b = packed + (n / NR) * K2 * NR * 2 + (n % NR) * 2;
            float acc = 0;
            for (size_t k2 = 0; k2 < K2; k2++) {
                const size_t k = 2 * k2;
                const float a0 = bf16_to_float(hydra_bf16_from_float(in[m * in_channels + k]));
                const float a1 = k + 1 < in_channels ? bf16_to_float(hydra_bf16_from_float(in[m * in_channels + k + 1])) : 0.0f;
                const float b0 = bf16_to_float(b[k2 * NR * 2]), b1 = bf16_to_float(b[k2 * NR * 2 + 1]);
                acc = ftz(acc + a1 * b1);
                acc = ftz(acc + a0 * b0);
            }
            float v = acc + (bias ? bias[n] : 0.0f);
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            out[m * out_channels + n] = v;
        }
    }
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

typedef struct {
    const float *in;
    const uint16_t *w;
    const float *bias;
    float *out;
    size_t M, K, N;
    float lo, hi;
} gemm_ctx;

/* MR rows of A as bf16 pairs: panel[k2][r] = (a[r][2 k2], a[r][2 k2 + 1]) as one 32-bit word, so the
   microkernel broadcasts one word per row and k pair. Rows past M and k past K are zero. */
BF16_TARGET
static void pack_panel(const float *a, size_t rows, size_t K, uint32_t *panel) {
    const size_t K2 = even(K) / 2;
    for (size_t r = 0; r < MR; r++) {
        if (r >= rows) {
            for (size_t k2 = 0; k2 < K2; k2++) panel[k2 * MR + r] = 0;
            continue;
        }
        const float *row = a + r * K;
        uint32_t words[16] __attribute__((aligned(64)));
        for (size_t k = 0; k < K; k += 32) {
            /* 32 floats -> 32 bf16 in order (cvtne2ps puts its second operand in the low half); past
               K the masked loads read zeros. */
            const size_t left = K - k;
            const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + k + 16), _mm512_maskz_loadu_ps(m0, row + k));
            _mm512_store_si512(words, (__m512i)h);
            const size_t pairs = left >= 32 ? 16 : (left + 1) / 2;
            for (size_t j = 0; j < pairs; j++) panel[(k / 2 + j) * MR + r] = words[j];
        }
    }
}

/* MR x NR outputs: 16 accumulators, two weight vectors and one broadcast per row and k pair. */
BF16_TARGET
static void micro(const uint32_t *panel, const uint16_t *w, size_t K2, const float *bias, size_t n0, size_t N,
                  float lo, float hi, float *out, size_t rows) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (size_t k2 = 0; k2 < K2; k2++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(w + k2 * NR * 2);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(w + k2 * NR * 2 + 32);
        const uint32_t *p = panel + k2 * MR;
        for (int r = 0; r < MR; r++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)p[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    const size_t cols = N - n0 < NR ? N - n0 : NR;
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias + n0);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + n0 + 16);
    }
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (size_t r = 0; r < rows; r++) {
        float *dst = out + r * N + n0;
        const __m512 v0 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[r][0], bias0), vlo), vhi);
        const __m512 v1 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[r][1], bias1), vlo), vhi);
        /* Masked stores are slow on Zen 4: plain ones for whole blocks, masks only for the tail. */
        if (cols == NR) {
            _mm512_storeu_ps(dst, v0);
            _mm512_storeu_ps(dst + 16, v1);
        } else {
            _mm512_mask_storeu_ps(dst, m0, v0);
            _mm512_mask_storeu_ps(dst + 16, m1, v1);
        }
    }
}

BF16_TARGET
static void gemm_rows(void *vctx, size_t m0, size_t count) {
    const gemm_ctx *c = (const gemm_ctx *)vctx;
    const size_t K2 = even(c->K) / 2;
    uint32_t panel[KMAX / 2 * MR] __attribute__((aligned(64)));
    for (size_t m = m0; m < m0 + count; m += MR) {
        const size_t rows = m0 + count - m < MR ? m0 + count - m : MR;
        pack_panel(c->in + m * c->K, rows, c->K, panel);
        for (size_t nb = 0; nb < blocks(c->N); nb++) {
            micro(panel, c->w + nb * K2 * NR * 2, K2, c->bias, nb * NR, c->N, c->lo, c->hi, c->out + m * c->N, rows);
        }
    }
}

int hydra_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

int hydra_conv1x1_bf16(const float *in, size_t pixels, size_t in_channels, const uint16_t *packed, const float *bias,
                       size_t out_channels, float lo, float hi, float *out, pthreadpool_t pool) {
    if (!hydra_bf16_supported() || in_channels == 0 || in_channels > KMAX) return -1;
    gemm_ctx c = {in, packed, bias, out, pixels, in_channels, out_channels, lo, hi};
    hydra_parallelize_1d_tile_1d(pool, gemm_rows, &c, pixels, ROWS_PER_TASK);
    return 0;
}
#else
int hydra_bf16_supported(void) { return 0; }

int hydra_conv1x1_bf16(const float *in, size_t pixels, size_t in_channels, const uint16_t *packed, const float *bias,
                       size_t out_channels, float lo, float hi, float *out, pthreadpool_t pool) {
    (void)in; (void)pixels; (void)in_channels; (void)packed; (void)bias; (void)out_channels; (void)lo; (void)hi; (void)out; (void)pool;
    return -1;
}
#endif

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
                                lane[l] = ftz(lane[l] + bf16_to_float(src[i + 1]) * bf16_to_float(w[i + 1]));
                                lane[l] = ftz(lane[l] + bf16_to_float(src[i]) * bf16_to_float(w[i]));
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
            float v = in[p * channels + i] * scale[i];
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            out[p * channels + i] = hydra_bf16_from_float(v);
        }
    }
}

#if defined(__x86_64__) && defined(__clang__)
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
