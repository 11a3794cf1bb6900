#include "hydra_kernels.h"
#include <math.h>
#include <string.h>

#include "bf16.h"
#include "parallel.h"

/* ---- 1x1 convolution in int8 (AVX512-VNNI) ----

   The input (f32, or bf16 widened to f32) is quantized per tensor as it is read (or is u8 already,
   HYDRA_U8_INPUT: written in this quantization by a pool or a convolution before):
       q = clamp(rint(x * (1 / scale)) + zero, 0, 255)          (the product in f32, rint to nearest even)
   the weights per output channel, symmetrically, when they are packed (s[n] = max |w[n][k]| / 127).
   VPDPBUSD adds four u8 x s8 products at a time to 32-bit sums, which is exact, so the kernel and
   `hydra_conv1x1_int8_reference` agree bit for bit:
       acc = sum_k q[k] w8[n][k] - zero * colsum[n]             (integers)
       v   = clamp(fmaf((float)acc, scale * s[n], bias[n]), lo, hi)
   and v is written as f32 or rounded to bf16 (nearest even, denormals to zero: hydra_bf16_from_float).

   Weights are packed once per model: blocks of NR = 32 outputs, in each block k in fours:
   [N/32][K/4][32][4] int8, zero-padded in k and n, so padding contributes nothing whatever the
   input's zero point. As in gemm_bf16.c, each task quantizes a panel of MR rows once per layer (or
   reads u8 rows where they lie) and runs every block of outputs over it. */

enum { MR = 8, NR = 32, KMAX = 4096, ROWS_PER_TASK = 64 };

static inline size_t quad(size_t k) { return (k + 3) & ~(size_t)3; }
static inline size_t blocks(size_t n) { return (n + NR - 1) / NR; }

size_t hydra_int8_packed_bytes(size_t in_channels, size_t out_channels) {
    return blocks(out_channels) * quad(in_channels) * NR;
}

void hydra_int8_pack_weights(const float *w, size_t in_channels, size_t out_channels, int8_t *packed, float *scales,
                             int32_t *colsums) {
    const size_t K4 = quad(in_channels) / 4;
    memset(packed, 0, hydra_int8_packed_bytes(in_channels, out_channels));
    for (size_t n = 0; n < out_channels; n++) {
        const float *row = w + n * in_channels;
        float amax = 0;
        for (size_t k = 0; k < in_channels; k++) amax = fmaxf(amax, fabsf(row[k]));
        /* An all-zero channel keeps scale 1: its products are zero either way. */
        const double s = amax > 0 ? (double)amax / 127.0 : 1.0;
        scales[n] = (float)s;
        int8_t *block = packed + (n / NR) * K4 * NR * 4;
        int32_t sum = 0;
        for (size_t k = 0; k < in_channels; k++) {
            double q = nearbyint((double)row[k] / s);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            block[(k / 4) * NR * 4 + (n % NR) * 4 + (k & 3)] = (int8_t)q;
            sum += (int32_t)q;
        }
        colsums[n] = sum;
    }
}

static inline float input_value(const void *in, int layout, size_t i) {
    return (layout & HYDRA_BF16_INPUT) ? hydra_bf16_to_float(((const uint16_t *)in)[i]) : ((const float *)in)[i];
}

uint8_t hydra_int8_quantize(float x, float scale, int32_t zero) {
    const float inv = 1.0f / scale;
    const float q = rintf(x * inv);
    const float shifted = q + (float)zero;
    return (uint8_t)(shifted > 255 ? 255 : shifted > 0 ? shifted : 0); /* NaN -> 0, as the kernel's max */
}

void hydra_conv1x1_int8_reference(const void *in, size_t pixels, size_t in_channels, float scale, int32_t zero,
                                  const int8_t *packed, const float *weight_scales, const int32_t *colsums, const float *bias,
                                  size_t out_channels, float lo, float hi, void *out, int layout, const hydra_residual *residual) {
    const size_t K4 = quad(in_channels) / 4;
    for (size_t m = 0; m < pixels; m++) {
        for (size_t n = 0; n < out_channels; n++) {
            const int8_t *b = packed + (n / NR) * K4 * NR * 4 + (n % NR) * 4;
            int32_t acc = 0;
            for (size_t k = 0; k < in_channels; k++) {
                const size_t at = m * in_channels + k;
                const int32_t q = (layout & HYDRA_U8_INPUT) ? ((const uint8_t *)in)[at]
                                                            : hydra_int8_quantize(input_value(in, layout, at), scale, zero);
                acc += q * (int32_t)b[(k / 4) * NR * 4 + (k & 3)];
            }
            acc -= zero * colsums[n];
            const float v = hydra_clamp(fmaf((float)acc, scale * weight_scales[n], bias ? bias[n] : 0.0f), lo, hi);
            hydra_reference_output(out, layout & HYDRA_BF16_OUTPUT, residual, m * out_channels + n, v);
        }
    }
}

#ifdef HYDRA_HAS_BF16_BUILD
/* int8 replicas need AVX512-BF16 as well (their other layers run in bf16), so the kernel may use
   VCVTNE2PS2BF16 for bf16 outputs. */
#define INT8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma")))

typedef struct {
    const void *in;
    const int8_t *w;
    const float *wscale;
    const int32_t *colsum;
    const float *bias;
    void *out;
    size_t M, K, N;
    float scale, lo, hi;
    int32_t zero;
    int layout;
    const hydra_residual *residual;
} gemm_ctx;

/* 16 inputs from k (masked past K, where the weights are zero), quantized to 16 bytes. */
INT8_TARGET
static inline __m128i quantize16(const gemm_ctx *c, size_t row, size_t k, __m512 inv, __m512 zero) {
    const size_t left = c->K - k;
    const __mmask16 mask = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
    if (c->layout & HYDRA_U8_INPUT) return _mm_maskz_loadu_epi8(mask, (const uint8_t *)c->in + row * c->K + k);
    __m512 x;
    if (c->layout & HYDRA_BF16_INPUT) {
        const __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)c->in + row * c->K + k);
        x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        x = _mm512_maskz_loadu_ps(mask, (const float *)c->in + row * c->K + k);
    }
    /* rint: the default rounding mode (nearest even), as rintf in the reference. */
    __m512 q = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q));
}

/* The MR rows of A the microkernel reads, as words of four u8 (row r's word k4 holds q[r][4 k4 ..
   4 k4 + 3]): a u8 input with K a multiple of 4 is read where it lies; otherwise the rows are
   quantized into `panel` (row-major, PANEL_STRIDE words a row; past K the weights are zero, so the
   bytes there do not matter). Rows past M repeat row 0; their results are never stored. */
enum { PANEL_STRIDE = KMAX / 4 };

INT8_TARGET
static void row_words(const gemm_ctx *c, size_t m, size_t rows, uint32_t *panel, const uint32_t *out[MR]) {
    const __m512 inv = _mm512_set1_ps(1.0f / c->scale), zero = _mm512_set1_ps((float)c->zero);
    for (size_t r = 0; r < rows; r++) {
        if ((c->layout & HYDRA_U8_INPUT) && c->K % 4 == 0) {
            out[r] = (const uint32_t *)((const uint8_t *)c->in + (m + r) * c->K);
            continue;
        }
        uint32_t *dst = panel + r * PANEL_STRIDE;
        for (size_t k = 0; k < c->K; k += 16) _mm_store_si128((__m128i *)(dst + k / 4), quantize16(c, m + r, k, inv, zero));
        out[r] = dst;
    }
    for (size_t r = rows; r < MR; r++) out[r] = out[0];
}

/* MR x NR outputs: 16 accumulators, two weight vectors and one broadcast per row and k quad. The
   sums start at -zero * colsum (the same integers as subtracting it after), so the epilogue is a
   conversion, one FMA, the clamp and the store. */
INT8_TARGET
static void micro(const gemm_ctx *c, const uint32_t *const a_rows[MR], size_t nb, size_t m, size_t rows) {
    const size_t K4 = quad(c->K) / 4, n0 = nb * NR, N = c->N;
    const int8_t *w = c->w + nb * K4 * NR * 4;
    const size_t cols = N - n0 < NR ? N - n0 : NR;
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512i zero = _mm512_set1_epi32(-c->zero);
    const __m512i z0 = _mm512_mullo_epi32(zero, _mm512_maskz_loadu_epi32(m0, c->colsum + n0));
    const __m512i z1 = _mm512_mullo_epi32(zero, _mm512_maskz_loadu_epi32(m1, c->colsum + n0 + 16));
    __m512i acc[MR][2];
    for (int r = 0; r < MR; r++) {
        acc[r][0] = z0;
        acc[r][1] = z1;
    }
    if (cols > 16) {
        for (size_t k4 = 0; k4 < K4; k4++) {
            const __m512i b0 = _mm512_loadu_si512(w + k4 * NR * 4);
            const __m512i b1 = _mm512_loadu_si512(w + k4 * NR * 4 + 64);
            for (int r = 0; r < MR; r++) {
                const __m512i a = _mm512_set1_epi32((int)a_rows[r][k4]);
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
            }
        }
    } else {
        for (size_t k4 = 0; k4 < K4; k4++) {
            const __m512i b0 = _mm512_loadu_si512(w + k4 * NR * 4);
            for (int r = 0; r < MR; r++) acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], _mm512_set1_epi32((int)a_rows[r][k4]), b0);
        }
    }
    const __m512 scale = _mm512_set1_ps(c->scale);
    const __m512 s0 = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m0, c->wscale + n0));
    const __m512 s1 = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m1, c->wscale + n0 + 16));
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (c->bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, c->bias + n0);
        bias1 = _mm512_maskz_loadu_ps(m1, c->bias + n0 + 16);
    }
    const int clamped = c->lo > -INFINITY || c->hi < INFINITY;
    const __m512 vlo = _mm512_set1_ps(c->lo), vhi = _mm512_set1_ps(c->hi);
    for (size_t r = 0; r < rows; r++) {
        __m512 v0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][0]), s0, bias0);
        __m512 v1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][1]), s1, bias1);
        if (clamped) {
            v0 = _mm512_min_ps(_mm512_max_ps(v0, vlo), vhi);
            v1 = _mm512_min_ps(_mm512_max_ps(v1, vlo), vhi);
        }
        hydra_gemm_store(c->out, c->layout & HYDRA_BF16_OUTPUT, c->residual, N, m + r, n0, cols, v0, v1);
    }
}

INT8_TARGET
static void gemm_rows(void *vctx, size_t m0, size_t count) {
    const gemm_ctx *c = (const gemm_ctx *)vctx;
    uint32_t panel[PANEL_STRIDE * MR] __attribute__((aligned(64)));
    const uint32_t *a_rows[MR];
    for (size_t m = m0; m < m0 + count; m += MR) {
        const size_t rows = m0 + count - m < MR ? m0 + count - m : MR;
        row_words(c, m, rows, panel, a_rows);
        for (size_t nb = 0; nb < blocks(c->N); nb++) micro(c, a_rows, nb, m, rows);
    }
}

int hydra_int8_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl");
}

int hydra_conv1x1_int8(const void *in, size_t pixels, size_t in_channels, float scale, int32_t zero, const int8_t *packed,
                       const float *weight_scales, const int32_t *colsums, const float *bias, size_t out_channels, float lo,
                       float hi, void *out, int layout, const hydra_residual *residual, pthreadpool_t pool) {
    if (!hydra_int8_supported() || in_channels == 0 || in_channels > KMAX || !(scale > 0) || zero < 0 || zero > 255) return -1;
    gemm_ctx c = {in, packed, weight_scales, colsums, bias, out, pixels, in_channels, out_channels, scale, lo, hi, zero, layout,
                  residual};
    hydra_parallelize_1d_tile_1d(pool, gemm_rows, &c, pixels, ROWS_PER_TASK);
    return 0;
}
#else
int hydra_int8_supported(void) { return 0; }

int hydra_conv1x1_int8(const void *in, size_t pixels, size_t in_channels, float scale, int32_t zero, const int8_t *packed,
                       const float *weight_scales, const int32_t *colsums, const float *bias, size_t out_channels, float lo,
                       float hi, void *out, int layout, const hydra_residual *residual, pthreadpool_t pool) {
    (void)residual;
    (void)in; (void)pixels; (void)in_channels; (void)scale; (void)zero; (void)packed; (void)weight_scales; (void)colsums;
    (void)bias; (void)out_channels; (void)lo; (void)hi; (void)out; (void)layout; (void)pool;
    return -1;
}
#endif
