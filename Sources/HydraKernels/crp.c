#include "hydra_kernels.h"
#include <string.h>

#include "parallel.h"
#include "vec.h"

/* ---- the whole crp1 chain in one pass, with the layers around it ----

   x = input, or clamp(input + addend, lo, hi) (the add before crp1); four stages
   t_i = scale_i * maxpool5(t_(i-1)), t_0 = x; sum = x + t_1 + t_2 + t_3 + t_4 (added in that order,
   as the stage-by-stage version does); each output is the sum itself or clamp(sum * its scale) (the
   pre_* layers behind crp1), f32, rounded to bf16 or quantized to u8 (an int8 head's input). Every value is computed as the separate steps
   compute it, so the results are bit-identical to running them one after the other.

   Channels are independent, so each task takes 16 of them over the whole image and runs the stages
   as a wavefront down the rows: at step r it forms row r + 2 of x, pools row r of stage 1, r - 2 of
   stage 2, r - 4 of stage 3 and r - 6 of stage 4, and writes output row r - 6. The rows live in small
   rings (9, 7, 5 and 5 rows of 16 channels, one for stage 4: 27 x width x 64 bytes, in L2), so the
   full-size tensors are read once and the outputs written once: the sum and the add's result never
   reach memory. */

enum { PB = 16, RING0 = 9, RING1 = 7, RING2 = 5, RING3 = 5, RING_ROWS = RING0 + RING1 + RING2 + RING3 + 1 };

typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

typedef struct {
    const hydra_crp_chain_args *a;
    size_t h, w, c;
    float *rings; /* per task: RING_ROWS rows of w x 16 floats */
} chain_ctx;

static inline size_t clamp_row(long r, size_t h) { return r < 0 ? 0 : ((size_t)r >= h ? h - 1 : (size_t)r); }

/* The vertical max of five rows at one pixel (16 channels at `at`). */
static inline __attribute__((always_inline)) void vmax5(const float *const rows[5], size_t at, v16 *m) {
    v16 r;
    memcpy(m, rows[0] + at, sizeof *m);
    for (int k = 1; k < 5; k++) {
        memcpy(&r, rows[k] + at, sizeof r);
        *m = VMAX(*m, r);
    }
}

/* Pools one ring row: rows[k] point at pixel 0 of the five input rows (16 floats per pixel); writes
   w pixels of 16 channels, scaled. */
static inline __attribute__((always_inline)) void pool_row16(const float *const rows[5], size_t w, const v16 *scale, float *dst) {
    const size_t x1 = w > 1 ? 1 : 0, x2 = w > 2 ? 2 : w - 1;
    v16 a0, a1, a2, a3, a4;
    vmax5(rows, 0, &a2);
    a0 = a1 = a2;
    vmax5(rows, x1 * PB, &a3);
    vmax5(rows, x2 * PB, &a4);
    for (size_t x = 0; x < w; x++) {
        v16 v = VMAX(VMAX(VMAX(a0, a1), VMAX(a2, a3)), a4) * *scale;
        memcpy(dst + x * PB, &v, sizeof v);
        a0 = a1; a1 = a2; a2 = a3; a3 = a4;
        vmax5(rows, (x + 3 < w ? x + 3 : w - 1) * PB, &a4);
    }
}

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

/* 16 values to `p` as u8 with zero point 0, as hydra_int8_quantize does: clamp(rint(v * (1 / scale)), 0, 255).
   Clamped to [0, 255] before rounding (the same result), where adding and removing 1.5 x 2^23 rounds
   to nearest even. */
static inline __attribute__((always_inline)) void store16_u8(uint8_t *p, const v16 *v, float scale) {
    typedef int32_t i32x16 __attribute__((vector_size(64)));
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    const v16 zero = {0}, top = zero + 255.0f, magic = zero + 0x1.8p23f;
    v16 q = VCLAMP(*v * (1.0f / scale), zero, top);
    q = (q + magic) - magic;
    const u8x16 b = __builtin_convertvector(__builtin_convertvector(q, i32x16), u8x16);
    memcpy(p, &b, sizeof b);
}

/* Row y of x (16 channels from c0) into its ring row. */
static inline __attribute__((always_inline)) void form_x(const chain_ctx *k, size_t y, size_t c0, float *dst) {
    const hydra_crp_chain_args *a = k->a;
    const size_t esize = a->input_bf16 ? 2 : 4;
    const v16 lo = (v16){0} + a->lo, hi = (v16){0} + a->hi;
    for (size_t x = 0; x < k->w; x++) {
        const size_t o = (y * k->w + x) * k->c + c0;
        v16 v;
        load16((const char *)a->input + o * esize, a->input_bf16, &v);
        if (a->addend) {
            v16 b;
            memcpy(&b, a->addend + o, sizeof b);
            v = VCLAMP(v + b, lo, hi);
        }
        memcpy(dst + x * PB, &v, sizeof v);
    }
}

HYDRA_DISPATCH
static void chain_block(void *vctx, size_t block) {
    const chain_ctx *k = (const chain_ctx *)vctx;
    const hydra_crp_chain_args *a = k->a;
    const size_t h = k->h, w = k->w, c = k->c, c0 = block * PB, row = w * PB;
    float *t0 = k->rings + block * RING_ROWS * row, *t1 = t0 + RING0 * row, *t2 = t1 + RING1 * row, *t3 = t2 + RING2 * row,
          *t4 = t3 + RING3 * row;
    v16 s[4], os[3];
    for (int i = 0; i < 4; i++) memcpy(&s[i], a->scales + (size_t)i * c + c0, sizeof s[i]);
    for (size_t j = 0; j < a->outputs; j++) {
        if (a->output_scale[j]) memcpy(&os[j], a->output_scale[j] + c0, sizeof os[j]);
    }
    const v16 olo = (v16){0} + a->output_lo, ohi = (v16){0} + a->output_hi;
    for (size_t y = 0; y < 2 && y < h; y++) form_x(k, y, c0, t0 + (y % RING0) * row);
    for (long r = 0; r < (long)h + 6; r++) {
        const float *rows[5];
        if (r + 2 < (long)h) form_x(k, (size_t)r + 2, c0, t0 + (size_t)((r + 2) % RING0) * row);
        if (r < (long)h) {
            for (int j = 0; j < 5; j++) rows[j] = t0 + (clamp_row(r + j - 2, h) % RING0) * row;
            pool_row16(rows, w, &s[0], t1 + (size_t)(r % RING1) * row);
        }
        const long q2 = r - 2, q3 = r - 4, q4 = r - 6;
        if (q2 >= 0 && q2 < (long)h) {
            for (int j = 0; j < 5; j++) rows[j] = t1 + (clamp_row(q2 + j - 2, h) % RING1) * row;
            pool_row16(rows, w, &s[1], t2 + (size_t)(q2 % RING2) * row);
        }
        if (q3 >= 0 && q3 < (long)h) {
            for (int j = 0; j < 5; j++) rows[j] = t2 + (clamp_row(q3 + j - 2, h) % RING2) * row;
            pool_row16(rows, w, &s[2], t3 + (size_t)(q3 % RING3) * row);
        }
        if (q4 >= 0) {
            for (int j = 0; j < 5; j++) rows[j] = t3 + (clamp_row(q4 + j - 2, h) % RING3) * row;
            pool_row16(rows, w, &s[3], t4);
            const float *r0 = t0 + (size_t)(q4 % RING0) * row, *r1 = t1 + (size_t)(q4 % RING1) * row;
            const float *r2 = t2 + (size_t)(q4 % RING2) * row, *r3 = t3 + (size_t)(q4 % RING3) * row;
            for (size_t x = 0; x < w; x++) {
                const size_t o = ((size_t)q4 * w + x) * c + c0;
                v16 acc, u;
                memcpy(&acc, r0 + x * PB, sizeof acc);
                memcpy(&u, r1 + x * PB, sizeof u); acc += u;
                memcpy(&u, r2 + x * PB, sizeof u); acc += u;
                memcpy(&u, r3 + x * PB, sizeof u); acc += u;
                memcpy(&u, t4 + x * PB, sizeof u); acc += u;
                for (size_t j = 0; j < a->outputs; j++) {
                    const v16 v = a->output_scale[j] ? VCLAMP(acc * os[j], olo, ohi) : acc;
                    if (a->output_u8[j]) store16_u8((uint8_t *)a->output[j] + o, &v, a->output_qscale[j]);
                    else store16((char *)a->output[j] + o * (a->output_bf16[j] ? 2 : 4), &v, a->output_bf16[j]);
                }
            }
        }
    }
}

size_t hydra_crp_chain_scratch_floats(size_t width, size_t channels) {
    return (size_t)RING_ROWS * width * channels;
}

int hydra_crp_chain(const hydra_crp_chain_args *args, float *scratch, size_t height, size_t width, size_t channels,
                    pthreadpool_t pool) {
    if (channels % PB != 0 || height == 0 || width == 0 || args->outputs < 1 || args->outputs > 3) return -1;
    chain_ctx k = {args, height, width, channels, scratch};
    hydra_parallelize_1d(pool, chain_block, &k, channels / PB);
    return 0;
}
