#include "hydra_kernels.h"
/* No fused multiply-adds the source does not write: the upsampling's arithmetic is stated exactly
   (KernelTests checks it against the same formula in Swift). */
#pragma STDC FP_CONTRACT OFF
#include <stdlib.h>
#include <string.h>

#include "lanes.h"
#include "parallel.h"
#include "vec.h"

/* ---- the whole crp1 chain in one pass, with the layers around it ----

   x = input, or clamp(input + addend, lo, hi) (the add before crp1); four stages
   t_i = scale_i * maxpool5(t_(i-1)), t_0 = x; sum = x + t_1 + t_2 + t_3 + t_4 (added in that order,
   as the stage-by-stage version does); each output is the sum itself or clamp(sum * its scale) (the
   pre_* layers behind crp1), f32, rounded to bf16 or quantized to u8 (an int8 head's input). Every value is computed as the separate steps
   compute it, so the results are bit-identical to running them one after the other.

   Channels are independent, so each task takes 16 of them over the whole image and runs the stages
   as a wavefront down the rows, two rows at a time: at step p it forms rows 2p + 2 and 2p + 3 of x,
   pools rows 2p and 2p + 1 of stage 1, 2p - 2 and 2p - 1 of stage 2, 2p - 4 and 2p - 3 of stage 3,
   2p - 6 and 2p - 5 of stage 4, and writes those two output rows. A pair of rows shares four of its
   five input rows (six loads and five maxima per pixel for both instead of ten and eight), and a
   window of five is three maxima per pixel (the pairwise maxima are reused). The rows live in small
   rings (10, 8, 6 and 6 rows of 16 channels, two for stage 4: 32 x width x 64 bytes, in L2), so the
   full-size tensors are read once and the outputs written once: the sum and the add's result never
   reach memory. */

enum { PB = 16, RING0 = 10, RING1 = 8, RING2 = 6, RING3 = 6, RING_ROWS = RING0 + RING1 + RING2 + RING3 + 2 /* stage 4's pair */ };

/* Where an output pixel's bilinear sample lies in the smaller addend: the two source indices and
   the weights of each (PyTorch's lambdas). */
typedef struct {
    size_t i0, i1;
    float l0, l1;
} tap;

typedef struct {
    const hydra_crp_chain_args *a;
    size_t h, w, c;
    float *rings; /* per task: RING_ROWS rows of w x 16 floats */
    const tap *rows, *cols; /* an upsampled addend's taps, else NULL */
} chain_ctx;

static inline size_t clamp_row(long r, size_t h) { return r < 0 ? 0 : ((size_t)r >= h ? h - 1 : (size_t)r); }

/* The vertical maxima of a pair of output rows at one pixel (16 channels at `at`): rows[0..5] are
   input rows q - 2 .. q + 3; the top row's window is rows 0-4, the bottom's 1-5. */
static inline __attribute__((always_inline)) void vmax_pair16(const float *const rows[6], size_t at, v16 *top, v16 *bottom) {
    v16 r0, r1, r2, r3, r4, r5;
    memcpy(&r0, rows[0] + at, sizeof r0); memcpy(&r1, rows[1] + at, sizeof r1); memcpy(&r2, rows[2] + at, sizeof r2);
    memcpy(&r3, rows[3] + at, sizeof r3); memcpy(&r4, rows[4] + at, sizeof r4); memcpy(&r5, rows[5] + at, sizeof r5);
    const v16 shared = VMAX(VMAX(r1, r2), VMAX(r3, r4));
    *top = VMAX(shared, r0);
    *bottom = VMAX(shared, r5);
}

/* Pools a pair of ring rows (w pixels of 16 channels each) and scales them: dst0 gets row q, dst1
   (when not NULL) row q + 1. Columns past the border repeat the edge (a repeated value leaves a max
   unchanged). The window max at x is max(m[x - 2], m[x], v[x + 2]) with m[x] = max(v[x], v[x + 1]). */
static inline __attribute__((always_inline))
void pool_pair16(const float *const rows[6], size_t w, const v16 *scale, float *dst0, float *dst1) {
    v16 t[5], b[5]; /* vertical maxima of pixels x - 2 .. x + 2 */
    vmax_pair16(rows, 0, &t[2], &b[2]);
    t[0] = t[1] = t[2];
    b[0] = b[1] = b[2];
    vmax_pair16(rows, (w > 1 ? 1 : 0) * PB, &t[3], &b[3]);
    v16 tm0 = t[0], bm0 = b[0]; /* m[x - 2] = max(v[x - 2], v[x - 1]) */
    v16 tm1 = VMAX(t[1], t[2]), bm1 = VMAX(b[1], b[2]); /* m[x - 1] */
    for (size_t x = 0; x < w; x++) {
        vmax_pair16(rows, (x + 2 < w ? x + 2 : w - 1) * PB, &t[4], &b[4]);
        const v16 tm2 = VMAX(t[2], t[3]), bm2 = VMAX(b[2], b[3]); /* m[x] */
        const v16 tv = VMAX(VMAX(tm0, tm2), t[4]) * *scale;
        memcpy(dst0 + x * PB, &tv, sizeof tv);
        if (dst1) {
            const v16 bv = VMAX(VMAX(bm0, bm2), b[4]) * *scale;
            memcpy(dst1 + x * PB, &bv, sizeof bv);
        }
        tm0 = tm1; tm1 = tm2; bm0 = bm1; bm1 = bm2;
        t[2] = t[3]; t[3] = t[4];
        b[2] = b[3]; b[3] = b[4];
    }
}

/* Row y of x (16 channels from c0) into its ring row. */
static inline __attribute__((always_inline)) void form_x(const chain_ctx *k, size_t y, size_t c0, float *dst) {
    const hydra_crp_chain_args *a = k->a;
    const size_t esize = a->input_bf16 ? 2 : 4;
    const v16 lo = (v16){0} + a->lo, hi = (v16){0} + a->hi;
    /* Each pixel's 16 channels lie a whole pixel (c values) from the last: the loads miss and stall
       the wavefront. The rows the next step forms (two below) are fetched meanwhile. */
    const size_t ahead = y + 2 < k->h ? 2 * k->w * k->c : 0;
    for (size_t x = 0; x < k->w; x++) {
        const size_t o = (y * k->w + x) * k->c + c0;
        __builtin_prefetch((const char *)a->input + (o + ahead) * esize);
        if (a->addend && !k->rows) __builtin_prefetch(a->addend + o + ahead);
        v16 v;
        load16((const char *)a->input + o * esize, a->input_bf16, &v);
        if (k->rows) {
            const tap ty = k->rows[y], tx = k->cols[x];
            const size_t aw = a->addend_width;
            const float *r0 = a->addend + (ty.i0 * aw) * k->c + c0, *r1 = a->addend + (ty.i1 * aw) * k->c + c0;
            if (ahead) { /* the small rows the next step reads */
                const tap tn = k->rows[y + 2];
                __builtin_prefetch(a->addend + (tn.i0 * aw + tx.i1) * k->c + c0);
                __builtin_prefetch(a->addend + (tn.i1 * aw + tx.i1) * k->c + c0);
            }
            v16 p00, p01, p10, p11;
            memcpy(&p00, r0 + tx.i0 * k->c, sizeof p00); memcpy(&p01, r0 + tx.i1 * k->c, sizeof p01);
            memcpy(&p10, r1 + tx.i0 * k->c, sizeof p10); memcpy(&p11, r1 + tx.i1 * k->c, sizeof p11);
            const v16 b = ty.l0 * (tx.l0 * p00 + tx.l1 * p01) + ty.l1 * (tx.l0 * p10 + tx.l1 * p11);
            v = VCLAMP(v + b, lo, hi);
        } else if (a->addend) {
            v16 b;
            memcpy(&b, a->addend + o, sizeof b);
            v = VCLAMP(v + b, lo, hi);
        }
        memcpy(dst + x * PB, &v, sizeof v);
    }
}

/* Pools rows q and q + 1 (if inside the image) of a stage from the ring `src` of the previous one into `dst`. */
static inline __attribute__((always_inline))
void pool_stage(const float *src, size_t ring_src, float *dst, size_t ring_dst, long q, size_t h, size_t w, const v16 *scale) {
    if (q < 0 || q >= (long)h) return;
    const size_t row = w * PB;
    const float *rows[6];
    for (int j = 0; j < 6; j++) rows[j] = src + (clamp_row(q + j - 2, h) % ring_src) * row;
    pool_pair16(rows, w, scale, dst + (size_t)(q % (long)ring_dst) * row,
                q + 1 < (long)h ? dst + (size_t)((q + 1) % (long)ring_dst) * row : NULL);
}

HYDRA_BODY void chain_block_body(void *vctx, size_t block) {
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
    float inv[3] = {0, 0, 0};
    for (size_t j = 0; j < a->outputs; j++) inv[j] = a->output_u8[j] ? 1.0f / a->output_qscale[j] : 0;
    for (size_t y = 0; y < 2 && y < h; y++) form_x(k, y, c0, t0 + (y % RING0) * row);
    for (long p = 0; 2 * p - 6 < (long)h; p++) {
        for (long y = 2 * p + 2; y <= 2 * p + 3; y++) {
            if (y < (long)h) form_x(k, (size_t)y, c0, t0 + (size_t)(y % RING0) * row);
        }
        pool_stage(t0, RING0, t1, RING1, 2 * p, h, w, &s[0]);
        pool_stage(t1, RING1, t2, RING2, 2 * p - 2, h, w, &s[1]);
        pool_stage(t2, RING2, t3, RING3, 2 * p - 4, h, w, &s[2]);
        const long q4 = 2 * p - 6;
        if (q4 < 0) continue;
        pool_stage(t3, RING3, t4, 2, q4, h, w, &s[3]);
        for (long q = q4; q <= q4 + 1 && q < (long)h; q++) {
            const float *r0 = t0 + (size_t)(q % RING0) * row, *r1 = t1 + (size_t)(q % RING1) * row;
            const float *r2 = t2 + (size_t)(q % RING2) * row, *r3 = t3 + (size_t)(q % RING3) * row, *r4 = t4 + (size_t)(q % 2) * row;
            for (size_t x = 0; x < w; x++) {
                const size_t o = ((size_t)q * w + x) * c + c0;
                v16 acc, u;
                memcpy(&acc, r0 + x * PB, sizeof acc);
                memcpy(&u, r1 + x * PB, sizeof u); acc += u;
                memcpy(&u, r2 + x * PB, sizeof u); acc += u;
                memcpy(&u, r3 + x * PB, sizeof u); acc += u;
                memcpy(&u, r4 + x * PB, sizeof u); acc += u;
                for (size_t j = 0; j < a->outputs; j++) {
                    const v16 v = a->output_scale[j] ? VCLAMP(acc * os[j], olo, ohi) : acc;
                    if (a->output_u8[j]) store16_u8((uint8_t *)a->output[j] + o, &v, inv[j], 0);
                    else store16((char *)a->output[j] + o * (a->output_bf16[j] ? 2 : 4), &v, a->output_bf16[j]);
                }
            }
        }
    }
}
HYDRA_CLONES(chain_block, (void *vctx, size_t block), (vctx, block))

/* PyTorch's upsample_bilinear2d (align_corners=False, output size given): source = (i + 0.5) x
   (in / out) - 0.5, clamped at 0; the upper index clamped to the last. */
static void bilinear_taps(size_t in, size_t out, tap *t) {
    const float scale = (float)in / (float)out;
    for (size_t i = 0; i < out; i++) {
        float src = scale * ((float)i + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        size_t i0 = (size_t)src;
        if (i0 > in - 1) i0 = in - 1;
        const size_t i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        const float l1 = src - (float)i0;
        t[i] = (tap){i0, i1, 1.0f - l1, l1};
    }
}

size_t hydra_crp_chain_scratch_floats(size_t width, size_t channels) {
    return (size_t)RING_ROWS * width * channels;
}

int hydra_crp_chain(const hydra_crp_chain_args *args, float *scratch, size_t height, size_t width, size_t channels,
                    pthreadpool_t pool) {
    if (channels % PB != 0 || height == 0 || width == 0 || args->outputs < 1 || args->outputs > 3) return -1;
    chain_ctx k = {args, height, width, channels, scratch, NULL, NULL};
    tap *taps = NULL;
    if (args->addend && args->addend_height && args->addend_width) {
        taps = malloc((height + width) * sizeof *taps);
        if (!taps) return -1;
        bilinear_taps(args->addend_height, height, taps);
        bilinear_taps(args->addend_width, width, taps + height);
        k.rows = taps;
        k.cols = taps + height;
    }
    hydra_parallelize_1d(pool, chain_block_pick(), &k, channels / PB);
    free(taps);
    return 0;
}
