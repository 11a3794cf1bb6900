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

#if defined(__x86_64__) && defined(__clang__)
#define HYDRA_HAS_BF16_BUILD 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#endif
#endif
