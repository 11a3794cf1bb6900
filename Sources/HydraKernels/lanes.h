#ifndef HYDRA_LANES_H
#define HYDRA_LANES_H
/* 16 lanes between memory in f32, bf16 or u8 and a v16, as the reduced-precision kernels store
   tensors. Inline only: each caller's target clone lowers them (see vec.h). */
#include <stdint.h>
#include <string.h>

#include "vec.h"

typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

/* 16 values at `p` (f32, or bf16 widened). */
static inline __attribute__((always_inline)) void load16(const void *p, int bf16, v16 *v) {
    if (bf16) {
        u16x16 h;
        memcpy(&h, p, sizeof h);
        const u32x16 u = __builtin_convertvector(h, u32x16) << 16;
        memcpy(v, &u, sizeof *v);
    } else {
        memcpy(v, p, sizeof *v);
    }
}

/* 16 values to `p`, f32 or rounded to bf16 as hydra_bf16_from_float does (nearest even, denormals to
   signed zero; the values here are clamped sums, never NaN). */
static inline __attribute__((always_inline)) void store16(void *p, const v16 *v, int bf16) {
    if (!bf16) {
        memcpy(p, v, sizeof *v);
        return;
    }
    u32x16 u;
    memcpy(&u, v, sizeof u);
    const u32x16 rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const u32x16 tiny = (u32x16)((u & 0x7F800000u) == 0);
    const u32x16 r = (rounded & ~tiny) | ((u >> 16) & 0x8000u & tiny);
    const u16x16 h = __builtin_convertvector(r, u16x16);
    memcpy(p, &h, sizeof h);
}

/* 16 values to `p` as u8, as hydra_int8_quantize does: clamp(rint(v * inv) + zero, 0, 255) with
   inv = 1 / scale (the caller divides once, not per store). Clamped to [-zero, 255 - zero] before
   rounding (the same result: the bounds are integers), where adding and removing 1.5 x 2^23 rounds
   to nearest even. */
static inline __attribute__((always_inline)) void store16_u8(uint8_t *p, const v16 *v, float inv, int32_t zero) {
    typedef int32_t i32x16 __attribute__((vector_size(64)));
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    const v16 none = {0}, lo = none - (float)zero, hi = none + (float)(255 - zero), magic = none + 0x1.8p23f;
    v16 q = VCLAMP(*v * inv, lo, hi);
    q = (q + magic) - magic + (float)zero;
    const u8x16 b = __builtin_convertvector(__builtin_convertvector(q, i32x16), u8x16);
    memcpy(p, &b, sizeof b);
}
#endif
