#include "hydra_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "parallel.h"
#include "vec.h"

static int detected_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

/* -1: not yet known. Written once from the CPU (a benign race: every thread writes the same value)
   or by hydra_kernels_set_isa, which tests call before running kernels. */
static int isa_level = -1;

int hydra_isa_level(void) {
    int level = __atomic_load_n(&isa_level, __ATOMIC_RELAXED);
    if (level < 0) {
        level = detected_level();
        __atomic_store_n(&isa_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

int hydra_kernels_set_isa(const char *isa) {
    int want = !isa ? detected_level() : !strcmp(isa, "avx512f") ? 2 : !strcmp(isa, "avx2") ? 1 : !strcmp(isa, "generic") ? 0 : -1;
    if (want < 0 || want > detected_level()) return -1;
    __atomic_store_n(&isa_level, want, __ATOMIC_RELAXED);
    return 0;
}

const char *hydra_kernels_isa(void) {
    static const char *const names[] = {"generic", "avx2", "avx512f"};
    return names[hydra_isa_level()];
}

/* ---- preprocessing ---- */

typedef struct {
    const uint8_t *rgb;
    float *out;
    float lut[3][256];
} pre_ctx;

enum { PRE_TILE = 4096 };

static void pre_tile(void *vctx, size_t start, size_t count) {
    const pre_ctx *c = (const pre_ctx *)vctx;
    const uint8_t *src = c->rgb + start * 3;
    float *dst = c->out + start * 3;
    for (size_t i = 0; i < count; i++) {
        dst[3 * i + 0] = c->lut[0][src[3 * i + 0]];
        dst[3 * i + 1] = c->lut[1][src[3 * i + 1]];
        dst[3 * i + 2] = c->lut[2][src[3 * i + 2]];
    }
}

void hydra_preprocess_rgb8(const uint8_t *rgb, size_t pixels, const float mean[3],
                           const float std[3], float *out, pthreadpool_t pool) {
    /* A table per channel, computed with the reference's arithmetic ((x / 255 - mean) / std), so
       the result is bit-identical to computing it per pixel. */
    pre_ctx c;
    c.rgb = rgb;
    c.out = out;
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 256; v++) c.lut[ch][v] = ((float)v / 255.0f - mean[ch]) / std[ch];
    hydra_parallelize_1d_tile_1d(pool, pre_tile, &c, pixels, PRE_TILE);
}

/* ---- 5x5 max pool ---- */

typedef struct {
    const float *in;
    float *out;
    size_t h, w, c;
    /* Optional fused epilogue (crp1): out *= scale; x_out = x + out. */
    const float *scale, *x;
    float *x_out;
} pool_ctx;

/* One pass per pair of output rows and block of 16 channels: the vertical max of each row's five
   input rows is taken per pixel, and the last five of those stay in a sliding window whose max is
   the output, so every output line is written once. Rows and columns past the border are clamped:
   repeating an in-window value leaves a max unchanged, which is the same as padding with -inf. */
enum { PB = 16 };

static inline size_t clamp_row(long r, size_t h) { return r < 0 ? 0 : ((size_t)r >= h ? h - 1 : (size_t)r); }

/* Output rows y and y+1 share four of their five input rows (y-1..y+2): their max is taken once,
   so a pair costs six row loads per pixel instead of ten. */
static inline __attribute__((always_inline))
void vmax_pair(const float *const rows[6], size_t at, v16 *top, v16 *bottom) {
    v16 r0, r1, r2, r3, r4, r5;
    memcpy(&r0, rows[0] + at, sizeof r0); memcpy(&r1, rows[1] + at, sizeof r1); memcpy(&r2, rows[2] + at, sizeof r2);
    memcpy(&r3, rows[3] + at, sizeof r3); memcpy(&r4, rows[4] + at, sizeof r4); memcpy(&r5, rows[5] + at, sizeof r5);
    const v16 shared = VMAX(VMAX(r1, r2), VMAX(r3, r4));
    *top = VMAX(shared, r0);
    *bottom = VMAX(shared, r5);
}

/* The epilogue and store of one output pixel's 16 channels at offset o (vectors by address: vec.h). */
static inline __attribute__((always_inline)) void pool_store(const pool_ctx *p, size_t o, const v16 *pooled, const v16 *scale) {
    v16 v = *pooled;
    if (p->scale) {
        v16 xs;
        v *= *scale;
        memcpy(&xs, p->x + o, sizeof xs);
        xs += v;
        memcpy(p->x_out + o, &xs, sizeof xs);
    }
    memcpy(p->out + o, &v, sizeof v);
}

/* Channels c0..c0+15 of output rows y and y+1 (y+1 only when `two`). Each row keeps the vertical
   maxima of pixels x-2..x+2 in registers; the output is their max. */
static inline __attribute__((always_inline))
void pool_block(const pool_ctx *p, const float *const rows[6], size_t y, int two, size_t c0) {
    const size_t w = p->w, c = p->c;
    const size_t x1 = w > 1 ? 1 : 0, x2 = w > 2 ? 2 : w - 1;
    v16 t0, t1, t2, t3, t4, b0, b1, b2, b3, b4;
    vmax_pair(rows, c0, &t2, &b2);
    vmax_pair(rows, x1 * c + c0, &t3, &b3);
    vmax_pair(rows, x2 * c + c0, &t4, &b4);
    t0 = t1 = t2;
    b0 = b1 = b2;
    v16 scale = {0};
    if (p->scale) memcpy(&scale, p->scale + c0, sizeof scale);
    for (size_t x = 0; x < w; x++) {
        const size_t o = (y * w + x) * c + c0;
        const v16 top = VMAX(VMAX(VMAX(t0, t1), VMAX(t2, t3)), t4), bottom = VMAX(VMAX(VMAX(b0, b1), VMAX(b2, b3)), b4);
        pool_store(p, o, &top, &scale);
        if (two) pool_store(p, o + w * c, &bottom, &scale);
        t0 = t1; t1 = t2; t2 = t3; t3 = t4;
        b0 = b1; b1 = b2; b2 = b3; b3 = b4;
        vmax_pair(rows, (x + 3 < w ? x + 3 : w - 1) * c + c0, &t4, &b4);
    }
}

/* Channels past the last full block of 16, one at a time (the network's pools have 256). `rows`
   holds the five input rows of output row y. */
static void pool_tail(const pool_ctx *p, const float *const rows[5], size_t y, size_t c0) {
    const size_t w = p->w, c = p->c;
    for (size_t x = 0; x < w; x++) {
        const size_t o = (y * w + x) * c;
        for (size_t ch = c0; ch < c; ch++) {
            float v = -INFINITY;
            for (long dx = -2; dx <= 2; dx++) {
                const long xx = (long)x + dx;
                if (xx < 0 || xx >= (long)w) continue;
                for (int k = 0; k < 5; k++) {
                    const float s = rows[k][(size_t)xx * c + ch];
                    v = v > s ? v : s;
                }
            }
            if (p->scale) {
                v *= p->scale[ch];
                p->x_out[o + ch] = p->x[o + ch] + v;
            }
            p->out[o + ch] = v;
        }
    }
}

HYDRA_BODY void pool_row_body(void *vctx, size_t pair) {
    const pool_ctx *p = (const pool_ctx *)vctx;
    const size_t y = 2 * pair;
    const int two = y + 1 < p->h;
    const float *rows[6];
    for (int k = 0; k < 6; k++) rows[k] = p->in + clamp_row((long)y + k - 2, p->h) * p->w * p->c;
    size_t c0 = 0;
    for (; c0 + PB <= p->c; c0 += PB) pool_block(p, rows, y, two, c0);
    if (c0 < p->c) {
        pool_tail(p, rows, y, c0);
        if (two) pool_tail(p, rows + 1, y + 1, c0);
    }
}
HYDRA_CLONES(pool_row, (void *vctx, size_t pair), (vctx, pair))

void hydra_crp_scale_stage(const float *top, const float *x, const float *scale, float *top_out, float *x_out,
                           size_t height, size_t width, size_t channels, pthreadpool_t pool) {
    pool_ctx p = { top, top_out, height, width, channels, scale, x, x_out };
    hydra_parallelize_1d(pool, pool_row_pick(), &p, (height + 1) / 2);
}

void hydra_maxpool5(const float *in, float *out, size_t height, size_t width,
                    size_t channels, pthreadpool_t pool) {
    pool_ctx p = { in, out, height, width, channels, NULL, NULL, NULL };
    hydra_parallelize_1d(pool, pool_row_pick(), &p, (height + 1) / 2);
}

/* ---- per-channel scale ---- */

typedef struct {
    const float *in, *scale;
    float *out;
    size_t c;
    float lo, hi;
} scale_ctx;

enum { SCALE_TILE = 64 };

HYDRA_BODY void scale_tile_body(void *vctx, size_t start, size_t count) {
    const scale_ctx *s = (const scale_ctx *)vctx;
    const size_t c = s->c;
    const float lo = s->lo, hi = s->hi;
    for (size_t p = start; p < start + count; p++) {
        const float *src = s->in + p * c;
        float *dst = s->out + p * c;
        for (size_t i = 0; i < c; i++) {
            float v = src[i] * s->scale[i];
            v = v < lo ? lo : v;
            dst[i] = v > hi ? hi : v;
        }
    }
}
HYDRA_CLONES(scale_tile, (void *vctx, size_t start, size_t count), (vctx, start, count))

void hydra_channel_scale(const float *in, const float *scale, float *out, size_t pixels,
                         size_t channels, float lo, float hi, pthreadpool_t pool) {
    scale_ctx s = { in, scale, out, channels, lo, hi };
    hydra_parallelize_1d_tile_1d(pool, scale_tile_pick(), &s, pixels, SCALE_TILE);
}

/* ---- 3x3 heads ---- */

typedef struct {
    const float *in, *w, *b, *zeros;
    float *out;
    size_t h, wd, c, o;
} head_ctx;

/* Blocks of 4 pixels x 4 outputs: each 16-lane weight load feeds four FMAs (one per pixel) and
   each input load four (one per output), so the loop is bound by FMAs rather than by loads.
   Taps outside the image read a row of zeros. */
enum { PIX = 4, OUTS = 4, LANES = 16 };

HYDRA_BODY void head_row_body(void *vctx, size_t y) {
    const head_ctx *k = (const head_ctx *)vctx;
    const size_t W = k->wd, C = k->c, O = k->o;
    for (size_t x0 = 0; x0 < W; x0 += PIX) {
        const size_t np = W - x0 < PIX ? W - x0 : PIX;
        for (size_t o0 = 0; o0 < O; o0 += OUTS) {
            const size_t no = O - o0 < OUTS ? O - o0 : OUTS;
            v16 acc[PIX][OUTS];
            memset(acc, 0, sizeof(acc));
            for (int ky = 0; ky < 3; ky++) {
                const long yy = (long)y + ky - 1;
                if (yy < 0 || yy >= (long)k->h) continue;
                for (int kx = 0; kx < 3; kx++) {
                    const float *src[PIX], *wt[OUTS];
                    for (size_t p = 0; p < PIX; p++) {
                        const long xx = (long)(x0 + p) + kx - 1;
                        src[p] = (p < np && xx >= 0 && xx < (long)W) ? k->in + ((size_t)yy * W + (size_t)xx) * C : k->zeros;
                    }
                    for (size_t j = 0; j < OUTS; j++) /* missing outputs repeat the first; their sums are dropped */
                        wt[j] = k->w + (((o0 + (j < no ? j : 0)) * 3 + (size_t)ky) * 3 + (size_t)kx) * C;
                    for (size_t i = 0; i < C; i += LANES) {
                        v16 s0, s1, s2, s3, w;
                        LOAD16(s0, src[0] + i); LOAD16(s1, src[1] + i); LOAD16(s2, src[2] + i); LOAD16(s3, src[3] + i);
                        for (size_t j = 0; j < OUTS; j++) {
                            LOAD16(w, wt[j] + i);
                            acc[0][j] += s0 * w;
                            acc[1][j] += s1 * w;
                            acc[2][j] += s2 * w;
                            acc[3][j] += s3 * w;
                        }
                    }
                }
            }
            for (size_t p = 0; p < np; p++) {
                float *dst = k->out + (y * W + x0 + p) * O;
                for (size_t j = 0; j < no; j++) {
                    float sum = k->b ? k->b[o0 + j] : 0.0f;
                    for (int l = 0; l < LANES; l++) sum += acc[p][j][l];
                    dst[o0 + j] = sum;
                }
            }
        }
    }
}
HYDRA_CLONES(head_row, (void *vctx, size_t y), (vctx, y))

void hydra_conv3x3_small(const float *in, size_t height, size_t width, size_t channels,
                         const float *weights, const float *bias, size_t out_channels,
                         float *out, pthreadpool_t pool) {
    float *zeros = (float *)calloc(channels, sizeof(float));
    if (!zeros) abort();
    head_ctx k = { in, weights, bias, zeros, out, height, width, channels, out_channels };
    hydra_parallelize_1d(pool, head_row_pick(), &k, height);
    free(zeros);
}
