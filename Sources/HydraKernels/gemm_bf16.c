#include "hydra_kernels.h"
#include <string.h>

#include "bf16.h"
#include "parallel.h"

/* ---- 1x1 convolution in bfloat16 with f32 accumulation (AVX512-BF16) ----

   out[m][n] = clamp(bias[n] + sum_k bf16(in[m][k]) * bf16(w[n][k]), lo, hi), the sum taken by
   VDPBF16PS: per output lane, the products of a pair of k (exact in f32) are added to the f32
   accumulator one after the other, odd k first, each addition rounded to nearest even, with results
   that are denormal flushed to zero. `hydra_conv1x1_bf16_reference` does exactly that in scalar
   code, so the two agree bit for bit. The input may be f32 (rounded to bf16 here) or bf16 already;
   the output f32, or bf16 (rounded to nearest even after the clamp), which halves what a layer
   writes when the next one reads bf16.

   Weights are packed once per model: blocks of NR = 32 output channels, in each block k in pairs:
   [N/32][K/2][32][2] bf16, zero-padded in k (to even) and in n (to 32). Each task turns a panel of
   MR rows (converted to bf16 pairs once, unless they are bf16 already) and runs every block of
   outputs over them, so each activation is read and converted once per layer. */

enum { MR = 8, NR = 32, KMAX = 4096, ROWS_PER_TASK = 64 };

static inline size_t even(size_t k) { return (k + 1) & ~(size_t)1; }
static inline size_t blocks(size_t n) { return (n + NR - 1) / NR; }

size_t hydra_bf16_packed_elements(size_t in_channels, size_t out_channels) {
    return blocks(out_channels) * even(in_channels) * NR;
}

/* f32 -> bf16 as VCVTNE2PS2BF16 does it: round to nearest even, denormals to (signed) zero, NaN quiet. */
uint16_t hydra_bf16_from_float(float f) {
    uint32_t u = hydra_bits(f);
    if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero or denormal */
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

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

/* Element k of row m of the input, as the bf16 value the kernel multiplies. */
static inline float input_at(const void *in, int layout, size_t m, size_t K, size_t k) {
    if (k >= K) return 0.0f;
    if (layout & HYDRA_BF16_INPUT) return hydra_bf16_to_float(((const uint16_t *)in)[m * K + k]);
    return hydra_bf16_to_float(hydra_bf16_from_float(((const float *)in)[m * K + k]));
}

void hydra_conv1x1_bf16_reference(const void *in, size_t pixels, size_t in_channels, const uint16_t *packed,
                                  const float *bias, size_t out_channels, float lo, float hi, void *out, int layout,
                                  const hydra_residual *residual) {
    const size_t K2 = even(in_channels) / 2;
    for (size_t m = 0; m < pixels; m++) {
        for (size_t n = 0; n < out_channels; n++) {
            const uint16_t *b = packed + (n / NR) * K2 * NR * 2 + (n % NR) * 2;
            float acc = 0;
            for (size_t k2 = 0; k2 < K2; k2++) {
                const float a0 = input_at(in, layout, m, in_channels, 2 * k2);
                const float a1 = input_at(in, layout, m, in_channels, 2 * k2 + 1);
                acc = hydra_ftz(acc + a1 * hydra_bf16_to_float(b[k2 * NR * 2 + 1]));
                acc = hydra_ftz(acc + a0 * hydra_bf16_to_float(b[k2 * NR * 2]));
            }
            const float v = hydra_clamp(acc + (bias ? bias[n] : 0.0f), lo, hi);
            hydra_reference_output(out, layout & HYDRA_BF16_OUTPUT, residual, m * out_channels + n, v);
        }
    }
}

#ifdef HYDRA_HAS_BF16_BUILD
typedef struct {
    const void *in;
    const uint16_t *w;
    const float *bias;
    void *out;
    size_t M, K, N;
    float lo, hi;
    int layout;
    const hydra_residual *residual;
} gemm_ctx;

/* The MR rows of A the microkernel reads, as words of bf16 pairs (row r's word k2 holds a[r][2 k2]
   and a[r][2 k2 + 1]): a bf16 input with K even is read where it lies; otherwise the rows are
   converted into `panel` (row-major, PANEL_STRIDE words a row, zeros past K). Rows past M repeat
   row 0; their results are never stored. */
enum { PANEL_STRIDE = KMAX / 2 };

BF16_TARGET
static void row_words(const gemm_ctx *c, size_t m, size_t rows, uint32_t *panel, const uint32_t *out[MR]) {
    const size_t K = c->K;
    for (size_t r = 0; r < rows; r++) {
        if ((c->layout & HYDRA_BF16_INPUT) && K % 2 == 0) {
            out[r] = (const uint32_t *)((const uint16_t *)c->in + (m + r) * K);
            continue;
        }
        uint32_t *dst = panel + r * PANEL_STRIDE;
        for (size_t k = 0; k < K; k += 32) {
            /* 32 values -> 16 words of bf16 pairs; past K the masked loads read zeros. */
            const size_t left = K - k;
            const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512i words;
            if (c->layout & HYDRA_BF16_INPUT) {
                const uint16_t *row = (const uint16_t *)c->in + (m + r) * K;
                const __mmask32 mask = left >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
                words = _mm512_maskz_loadu_epi16(mask, row + k);
            } else {
                const float *row = (const float *)c->in + (m + r) * K;
                /* cvtne2ps puts its second operand in the low half. */
                words = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + k + 16), _mm512_maskz_loadu_ps(m0, row + k));
            }
            _mm512_store_si512(dst + k / 2, words);
        }
        out[r] = dst;
    }
    for (size_t r = rows; r < MR; r++) out[r] = out[0];
}

/* MR x NR outputs: 16 accumulators, two weight vectors and one broadcast per row and k pair. */
BF16_TARGET
static void micro(const gemm_ctx *c, const uint32_t *const a_rows[MR], size_t nb, size_t m, size_t rows) {
    const size_t K2 = even(c->K) / 2, N = c->N, n0 = nb * NR;
    const uint16_t *w = c->w + nb * K2 * NR * 2;
    const size_t cols = N - n0 < NR ? N - n0 : NR;
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (cols > 16) {
        for (size_t k2 = 0; k2 < K2; k2++) {
            const __m512bh b0 = (__m512bh)_mm512_loadu_si512(w + k2 * NR * 2);
            const __m512bh b1 = (__m512bh)_mm512_loadu_si512(w + k2 * NR * 2 + 32);
            for (int r = 0; r < MR; r++) {
                const __m512bh a = (__m512bh)_mm512_set1_epi32((int)a_rows[r][k2]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
            }
        }
    } else {
        /* A last block of 16 outputs or fewer: the second half would be padding. */
        for (size_t k2 = 0; k2 < K2; k2++) {
            const __m512bh b0 = (__m512bh)_mm512_loadu_si512(w + k2 * NR * 2);
            for (int r = 0; r < MR; r++) acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)_mm512_set1_epi32((int)a_rows[r][k2]), b0);
        }
    }
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (c->bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, c->bias + n0);
        bias1 = _mm512_maskz_loadu_ps(m1, c->bias + n0 + 16);
    }
    const __m512 vlo = _mm512_set1_ps(c->lo), vhi = _mm512_set1_ps(c->hi);
    for (size_t r = 0; r < rows; r++) {
        const __m512 v0 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[r][0], bias0), vlo), vhi);
        const __m512 v1 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[r][1], bias1), vlo), vhi);
        hydra_gemm_store(c->out, c->layout & HYDRA_BF16_OUTPUT, c->residual, N, m + r, n0, cols, v0, v1);
    }
}

BF16_TARGET
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

int hydra_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

int hydra_conv1x1_bf16(const void *in, size_t pixels, size_t in_channels, const uint16_t *packed, const float *bias,
                       size_t out_channels, float lo, float hi, void *out, int layout, const hydra_residual *residual,
                       pthreadpool_t pool) {
    if (!hydra_bf16_supported() || in_channels == 0 || in_channels > KMAX) return -1;
    gemm_ctx c = {in, packed, bias, out, pixels, in_channels, out_channels, lo, hi, layout, residual};
    hydra_parallelize_1d_tile_1d(pool, gemm_rows, &c, pixels, ROWS_PER_TASK);
    return 0;
}
#else
int hydra_bf16_supported(void) { return 0; }

int hydra_conv1x1_bf16(const void *in, size_t pixels, size_t in_channels, const uint16_t *packed, const float *bias,
                       size_t out_channels, float lo, float hi, void *out, int layout, const hydra_residual *residual,
                       pthreadpool_t pool) {
    (void)residual;
    (void)in; (void)pixels; (void)in_channels; (void)packed; (void)bias; (void)out_channels; (void)lo; (void)hi; (void)out;
    (void)layout; (void)pool;
    return -1;
}
#endif
