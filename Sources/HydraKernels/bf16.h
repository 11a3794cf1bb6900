#ifndef HYDRA_BF16_H
#define HYDRA_BF16_H
/* What the bf16 kernels share: the scalar rounding rules of the AVX512-BF16 instructions, so that
   each kernel's reference states its arithmetic exactly, and the target attribute of their builds. */
#include <stdint.h>
#include <string.h>

static inline uint32_t hydra_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float hydra_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline float hydra_bf16_to_float(uint16_t h) { return hydra_from_bits((uint32_t)h << 16); }

/* A denormal f32 result flushed to signed zero (the FTZ of VDPBF16PS). */
static inline float hydra_ftz(float f) {
    const uint32_t u = hydra_bits(f);
    return (u & 0x7F800000u) == 0 ? hydra_from_bits(u & 0x80000000u) : f;
}

static inline float hydra_clamp(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

uint16_t hydra_bf16_from_float(float f);

/* The GEMM references' output of one value v (already clamped): with a residual, v is written to
   `raw` if asked, then clamp(v + residual) is the output; f32 or rounded to bf16 (`bf16`). */
static inline void hydra_store_value(void *out, int bf16, size_t i, float v) {
    if (bf16) ((uint16_t *)out)[i] = hydra_bf16_from_float(v);
    else ((float *)out)[i] = v;
}

#include "hydra_kernels.h"

/* The raw copy of v in the residual's raw_format (the output's layout by default). */
static inline void hydra_store_raw(const hydra_residual *res, int bf16, size_t i, float v) {
    switch (res->raw_format) {
    case HYDRA_RAW_F32: hydra_store_value(res->raw, 0, i, v); break;
    case HYDRA_RAW_BF16: hydra_store_value(res->raw, 1, i, v); break;
    case HYDRA_RAW_U8: ((uint8_t *)res->raw)[i] = hydra_int8_quantize(v, res->raw_scale, res->raw_zero); break;
    default: hydra_store_value(res->raw, bf16, i, v);
    }
}

static inline void hydra_reference_output(void *out, int bf16, const hydra_residual *res, size_t i, float v) {
    if (res) {
        if (res->raw) hydra_store_raw(res, bf16, i, v);
        const float r = res->bf16 ? hydra_bf16_to_float(((const uint16_t *)res->input)[i]) : ((const float *)res->input)[i];
        v = hydra_clamp(v + r, res->lo, res->hi);
    }
    hydra_store_value(out, bf16, i, v);
}

#if defined(__x86_64__) && defined(__clang__)
#define HYDRA_HAS_BF16_BUILD 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))

/* The GEMM kernels' store of one row's `cols` (<= 32) outputs from n0, v0 and v1 already clamped:
   the residual's add (and raw copy) as hydra_reference_output, then f32 or bf16. Plain stores for
   whole blocks, masks only for the tail (masked stores are slower). */
BF16_TARGET static inline __attribute__((always_inline))
void hydra_gemm_store(void *out, int bf16, const hydra_residual *res, size_t N, size_t row, size_t n0, size_t cols,
                      __m512 v0, __m512 v1) {
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
    const size_t at = row * N + n0;
    for (int pass = res && res->raw ? 0 : 1; pass < 2; pass++) {
        void *dst = pass == 0 ? res->raw : out;
        if (pass == 1 && res) {
            __m512 r0, r1;
            if (res->bf16) {
                const uint16_t *src = (const uint16_t *)res->input + at;
                r0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m0, src)), 16));
                r1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m1, src + 16)), 16));
            } else {
                const float *src = (const float *)res->input + at;
                r0 = _mm512_maskz_loadu_ps(m0, src);
                r1 = _mm512_maskz_loadu_ps(m1, src + 16);
            }
            const __m512 lo = _mm512_set1_ps(res->lo), hi = _mm512_set1_ps(res->hi);
            v0 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v0, r0), lo), hi);
            v1 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v1, r1), lo), hi);
        }
        const int format = pass == 0 && res->raw_format != HYDRA_RAW_AS_OUTPUT ? res->raw_format
                           : bf16 ? HYDRA_RAW_BF16 : HYDRA_RAW_F32;
        if (format == HYDRA_RAW_U8) {
            /* hydra_int8_quantize: rint(v * (1 / scale)) + zero, clamped to 0..255. */
            const __m512 inv = _mm512_set1_ps(1.0f / res->raw_scale), zero = _mm512_set1_ps((float)res->raw_zero);
            const __m512 top = _mm512_set1_ps(255.0f);
            __m512 q0 = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(v0, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
            __m512 q1 = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(v1, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
            q0 = _mm512_min_ps(_mm512_max_ps(q0, _mm512_setzero_ps()), top);
            q1 = _mm512_min_ps(_mm512_max_ps(q1, _mm512_setzero_ps()), top);
            uint8_t *d = (uint8_t *)dst + at;
            _mm_mask_storeu_epi8(d, m0, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q0)));
            _mm_mask_storeu_epi8(d + 16, m1, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q1)));
        } else if (format == HYDRA_RAW_BF16) {
            uint16_t *d = (uint16_t *)dst + at;
            const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            if (cols == 32) _mm512_storeu_si512(d, packed);
            else _mm512_mask_storeu_epi16(d, (__mmask32)((1ull << cols) - 1), packed);
        } else {
            float *d = (float *)dst + at;
            if (cols == 32) {
                _mm512_storeu_ps(d, v0);
                _mm512_storeu_ps(d + 16, v1);
            } else {
                _mm512_mask_storeu_ps(d, m0, v0);
                _mm512_mask_storeu_ps(d + 16, m1, v1);
            }
        }
    }
}
#endif
#endif
