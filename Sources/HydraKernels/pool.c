#include "hydra_kernels.h"
#include <string.h>

#include "dispatch.h"
#include "lanes.h"
#include "parallel.h"

/* ---- 5x5 max pool between the reduced-precision formats ----

   The crp2-4 pools of bf16 and int8 replicas read and write what their neighbours store: the raw
   output of the fused convolution before them and the input of the convolution after them. Each
   conversion here (bf16 rounding, u8 quantization) is monotone, so a max taken before it equals the
   max taken after: pooling bf16 or u8 values gives the bits the f32 pool would give once converted,
   and a u8 tensor is pooled as bytes (a quarter of the f32 traffic, 64 channels per vector).

   Same traversal as hydra_maxpool5 (kernels.c): a task is a pair of output rows, which share four of
   their five input rows; rows and columns past the border are clamped, which leaves a max unchanged. */

typedef uint8_t u8x64 __attribute__((vector_size(64)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

typedef struct {
    const void *in;
    void *out;
    int in_format, out_format;
    float scale, inv;
    int32_t zero;
    size_t h, w, c;
} pool_ctx;

static inline size_t clamp_row(long r, size_t h) { return r < 0 ? 0 : ((size_t)r >= h ? h - 1 : (size_t)r); }
static inline size_t element_bytes(int format) { return format == HYDRA_U8 ? 1 : format == HYDRA_BF16 ? 2 : 4; }

/* The vertical maxima of both output rows at pixel x: rows 1-4 are shared, row 0 is the top's
   alone and row 5 the bottom's. LOAD(dst, r, x) loads input row r at pixel x. */
#define VPAIR(VT, MAX, LOAD, x, top, bottom)                                                             \
    do {                                                                                            \
        VT r0_, r1_, r2_, r3_, r4_, r5_;                                                            \
        LOAD(r0_, 0, x); LOAD(r1_, 1, x); LOAD(r2_, 2, x); LOAD(r3_, 3, x); LOAD(r4_, 4, x); LOAD(r5_, 5, x); \
        const VT s_ = MAX(MAX(r1_, r2_), MAX(r3_, r4_));                                            \
        (top) = MAX(s_, r0_);                                                                       \
        (bottom) = MAX(s_, r5_);                                                                    \
    } while (0)

/* Output rows y and y + 1 (when `two`) of one block of lanes, VT vectors; STORE(r, x, value) writes
   output row y + r at pixel x. A window of five vertical maxima slides along the row. */
#define POOL_PAIR(VT, MAX, LOAD, STORE)                                                                  \
    do {                                                                                            \
        VT t[5], b[5];                                                                              \
        for (size_t i = 0; i < 5; i++) {                                                            \
            const size_t x_ = i < 2 ? 0 : (i - 2 < w ? i - 2 : w - 1);                              \
            VPAIR(VT, MAX, LOAD, x_, t[i], b[i]);                                                        \
        }                                                                                           \
        for (size_t x = 0; x < w; x++) {                                                            \
            STORE(0, x, MAX(MAX(MAX(t[0], t[1]), MAX(t[2], t[3])), t[4]));                          \
            if (two) STORE(1, x, MAX(MAX(MAX(b[0], b[1]), MAX(b[2], b[3])), b[4]));                 \
            for (int i = 0; i < 4; i++) { t[i] = t[i + 1]; b[i] = b[i + 1]; }                       \
            const size_t xn_ = x + 3 < w ? x + 3 : w - 1;                                           \
            VPAIR(VT, MAX, LOAD, xn_, t[4], b[4]);                                                       \
        }                                                                                           \
    } while (0)

HYDRA_BODY void pool_pair_body(void *vctx, size_t pair) {
    const pool_ctx *p = (const pool_ctx *)vctx;
    const size_t y = 2 * pair, w = p->w, c = p->c, eb = element_bytes(p->in_format), ob = element_bytes(p->out_format);
    const int two = y + 1 < p->h;
    const char *rows[6];
    for (int k = 0; k < 6; k++) rows[k] = (const char *)p->in + clamp_row((long)y + k - 2, p->h) * w * c * eb;
    char *out = (char *)p->out + y * w * c * ob;
    size_t c0 = 0;
    if (p->in_format == HYDRA_U8) {
#define LOADB(dst, r, x) memcpy(&(dst), rows[r] + (x) * c + c0, sizeof(dst))
#define STOREB(r, x, v) do { const __typeof__(v) v_ = (v); memcpy(out + (r) * w * c + (x) * c + c0, &v_, sizeof v_); } while (0)
#define UMAX(a, b) __builtin_elementwise_max((a), (b))
        for (; c0 + 64 <= c; c0 += 64) POOL_PAIR(u8x64, UMAX, LOADB, STOREB);
        for (; c0 < c; c0 += 16) POOL_PAIR(u8x16, UMAX, LOADB, STOREB);
        return;
    }
    const int in_bf16 = p->in_format == HYDRA_BF16;
#define LOADF(dst, r, x) load16(rows[r] + ((x) * c + c0) * eb, in_bf16, &(dst))
#define STOREF(r, x, v)                                                                             \
    do {                                                                                            \
        const v16 v_ = (v);                                                                         \
        char *d_ = out + ((r) * w * c + (x) * c + c0) * ob;                                         \
        if (p->out_format == HYDRA_U8) store16_u8((uint8_t *)d_, &v_, p->inv, p->zero);           \
        else store16(d_, &v_, p->out_format == HYDRA_BF16);                                         \
    } while (0)
    for (; c0 < c; c0 += 16) POOL_PAIR(v16, VMAX, LOADF, STOREF);
}
HYDRA_CLONES(pool_pair, (void *vctx, size_t pair), (vctx, pair))

int hydra_maxpool5_typed(const void *in, int in_format, void *out, int out_format, float scale, int32_t zero,
                         size_t height, size_t width, size_t channels, pthreadpool_t pool) {
    const int known = in_format >= HYDRA_F32 && in_format <= HYDRA_U8 && out_format >= HYDRA_F32 && out_format <= HYDRA_U8;
    if (!known || channels % 16 != 0 || height == 0 || width == 0 || (in_format == HYDRA_U8 && out_format != HYDRA_U8)) return -1;
    if (in_format != HYDRA_U8 && out_format == HYDRA_U8 && (!(scale > 0) || zero < 0 || zero > 255)) return -1;
    pool_ctx p = {in, out, in_format, out_format, scale, out_format == HYDRA_U8 ? 1.0f / scale : 0, zero, height, width, channels};
    hydra_parallelize_1d(pool, pool_pair_pick(), &p, (height + 1) / 2);
    return 0;
}
