#include "hydra_resize.h"
#include <math.h>
#include <stdlib.h>

#include "dispatch.h"
#include "parallel.h"

static size_t clampi(long v, size_t n) { return v < 0 ? 0 : ((size_t)v >= n ? n - 1 : (size_t)v); }

/* Taps for one axis: `taps` source indices (already clamped) and weights per output index. */
static void cubic_taps(size_t in, size_t out, int32_t *idx, float *wt) {
    const double scale = 1.0 / ((double)out / (double)in); /* as OpenCV: 1 / inv_scale */
    const float A = -0.75f;
    for (size_t X = 0; X < out; X++) {
        float fx = (float)((X + 0.5) * scale - 0.5);
        long sx = (long)floorf(fx);
        fx -= (float)sx;
        float c0 = ((A * (fx + 1) - 5 * A) * (fx + 1) + 8 * A) * (fx + 1) - 4 * A;
        float c1 = ((A + 2) * fx - (A + 3)) * fx * fx + 1;
        float c2 = ((A + 2) * (1 - fx) - (A + 3)) * (1 - fx) * (1 - fx) + 1;
        float c3 = 1.f - c0 - c1 - c2;
        float c[4] = { c0, c1, c2, c3 };
        for (int k = 0; k < 4; k++) {
            idx[4 * X + k] = (int32_t)clampi(sx - 1 + k, in);
            wt[4 * X + k] = c[k];
        }
    }
}

static void linear_taps(size_t in, size_t out, int32_t *idx, float *wt) {
    const double scale = 1.0 / ((double)out / (double)in);
    for (size_t X = 0; X < out; X++) {
        float fx = (float)((X + 0.5) * scale - 0.5);
        long sx = (long)floorf(fx);
        fx -= (float)sx;
        if (sx < 0) { sx = 0; fx = 0; }
        if ((size_t)sx >= in - 1) { sx = (long)in - 1; fx = 0; }
        idx[2 * X] = (int32_t)sx;
        idx[2 * X + 1] = (int32_t)clampi(sx + 1, in);
        wt[2 * X] = 1.f - fx;
        wt[2 * X + 1] = fx;
    }
}

typedef struct {
    const float *src;
    float *tmp;
    float *dst;
    uint8_t *labels;
    size_t planes, h, w, H, W, taps;
    const int32_t *xi, *yi;
    const float *xw, *yw;
} resize_ctx;

/* Horizontal pass over one source row of one plane (row index = plane * h + y). */
HYDRA_BODY void h_pass_body(void *vctx, size_t row) {
    const resize_ctx *c = (const resize_ctx *)vctx;
    const float *s = c->src + row * c->w;
    float *d = c->tmp + row * c->W;
    const size_t n = c->taps;
    for (size_t X = 0; X < c->W; X++) {
        const int32_t *i = c->xi + n * X;
        const float *a = c->xw + n * X;
        float v = s[i[0]] * a[0];
        for (size_t k = 1; k < n; k++) v += s[i[k]] * a[k];
        d[X] = v;
    }
}
HYDRA_CLONES(h_pass, (void *vctx, size_t row), (vctx, row))

/* Vertical pass for one output row of one plane (row index = plane * H + Y). */
HYDRA_BODY void v_pass_body(void *vctx, size_t row) {
    const resize_ctx *c = (const resize_ctx *)vctx;
    const size_t p = row / c->H, Y = row % c->H, n = c->taps, W = c->W;
    const float *base = c->tmp + p * c->h * W;
    const int32_t *i = c->yi + n * Y;
    const float *b = c->yw + n * Y;
    float *d = c->dst + row * W;
    if (n == 4) {
        const float *r0 = base + i[0] * W, *r1 = base + i[1] * W, *r2 = base + i[2] * W, *r3 = base + i[3] * W;
        const float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        for (size_t X = 0; X < W; X++) d[X] = b0 * r0[X] + b1 * r1[X] + b2 * r2[X] + b3 * r3[X];
    } else {
        const float *r0 = base + i[0] * W, *r1 = base + i[1] * W;
        const float b0 = b[0], b1 = b[1];
        for (size_t X = 0; X < W; X++) d[X] = b0 * r0[X] + b1 * r1[X];
    }
}
HYDRA_CLONES(v_pass, (void *vctx, size_t row), (vctx, row))

/* Vertical cubic pass for one output row, all planes, keeping the running argmax. */
HYDRA_BODY void v_argmax_body(void *vctx, size_t Y) {
    const resize_ctx *c = (const resize_ctx *)vctx;
    const size_t W = c->W;
    const int32_t *i = c->yi + 4 * Y;
    const float b0 = c->yw[4 * Y], b1 = c->yw[4 * Y + 1], b2 = c->yw[4 * Y + 2], b3 = c->yw[4 * Y + 3];
    float *best = (float *)malloc(W * sizeof(float));
    if (!best) abort();
    uint8_t *lab = c->labels + Y * W;
    for (size_t p = 0; p < c->planes; p++) {
        const float *base = c->tmp + p * c->h * W;
        const float *r0 = base + i[0] * W, *r1 = base + i[1] * W, *r2 = base + i[2] * W, *r3 = base + i[3] * W;
        if (p == 0) {
            for (size_t X = 0; X < W; X++) {
                best[X] = b0 * r0[X] + b1 * r1[X] + b2 * r2[X] + b3 * r3[X];
                lab[X] = 0;
            }
        } else {
            const uint8_t id = (uint8_t)p;
            for (size_t X = 0; X < W; X++) {
                float v = b0 * r0[X] + b1 * r1[X] + b2 * r2[X] + b3 * r3[X];
                int gt = v > best[X];
                best[X] = gt ? v : best[X];
                lab[X] = gt ? id : lab[X];
            }
        }
    }
    free(best);
}
HYDRA_CLONES(v_argmax, (void *vctx, size_t Y), (vctx, Y))

static int make_tables(resize_ctx *c, int cubic) {
    const size_t n = cubic ? 4 : 2;
    c->taps = n;
    int32_t *xi = (int32_t *)malloc(n * c->W * sizeof(int32_t));
    int32_t *yi = (int32_t *)malloc(n * c->H * sizeof(int32_t));
    float *xw = (float *)malloc(n * c->W * sizeof(float));
    float *yw = (float *)malloc(n * c->H * sizeof(float));
    if (!xi || !yi || !xw || !yw) { free(xi); free(yi); free(xw); free(yw); return -1; }
    if (cubic) { cubic_taps(c->w, c->W, xi, xw); cubic_taps(c->h, c->H, yi, yw); }
    else { linear_taps(c->w, c->W, xi, xw); linear_taps(c->h, c->H, yi, yw); }
    c->xi = xi; c->yi = yi; c->xw = xw; c->yw = yw;
    return 0;
}

static void free_tables(resize_ctx *c) {
    free((void *)c->xi); free((void *)c->yi); free((void *)c->xw); free((void *)c->yw);
}

static void resize(const float *src, size_t planes, size_t h, size_t w, float *dst, size_t H, size_t W,
                   float *tmp, pthreadpool_t pool, int cubic) {
    resize_ctx c = { src, tmp, dst, NULL, planes, h, w, H, W, 0, NULL, NULL, NULL, NULL };
    if (make_tables(&c, cubic) != 0) abort();
    hydra_parallelize_1d(pool, h_pass_pick(), &c, planes * h);
    hydra_parallelize_1d(pool, v_pass_pick(), &c, planes * H);
    free_tables(&c);
}

void hydra_resize_cubic(const float *src, size_t planes, size_t h, size_t w,
                        float *dst, size_t H, size_t W, float *tmp, pthreadpool_t pool) {
    resize(src, planes, h, w, dst, H, W, tmp, pool, 1);
}

void hydra_resize_bilinear(const float *src, size_t planes, size_t h, size_t w,
                           float *dst, size_t H, size_t W, float *tmp, pthreadpool_t pool) {
    resize(src, planes, h, w, dst, H, W, tmp, pool, 0);
}

void hydra_argmax_cubic(const float *src, size_t planes, size_t h, size_t w,
                        uint8_t *labels, size_t H, size_t W, float *tmp, pthreadpool_t pool) {
    resize_ctx c = { src, tmp, NULL, labels, planes, h, w, H, W, 0, NULL, NULL, NULL, NULL };
    if (make_tables(&c, 1) != 0) abort();
    hydra_parallelize_1d(pool, h_pass_pick(), &c, planes * h);
    hydra_parallelize_1d(pool, v_argmax_pick(), &c, H);
    free_tables(&c);
}

void hydra_argmax(const float *src, size_t planes, size_t pixels, uint8_t *labels) {
    for (size_t i = 0; i < pixels; i++) {
        float best = src[i];
        uint8_t id = 0;
        for (size_t p = 1; p < planes; p++) {
            float v = src[p * pixels + i];
            if (v > best) { best = v; id = (uint8_t)p; }
        }
        labels[i] = id;
    }
}

void hydra_resize_nearest_u8(const uint8_t *src, size_t h, size_t w, uint8_t *dst, size_t H, size_t W) {
    size_t *xs = (size_t *)malloc(W * sizeof(size_t));
    if (!xs) abort();
    for (size_t X = 0; X < W; X++) xs[X] = clampi((long)floor((X + 0.5) * (double)w / (double)W), w);
    for (size_t Y = 0; Y < H; Y++) {
        const uint8_t *s = src + clampi((long)floor((Y + 0.5) * (double)h / (double)H), h) * w;
        uint8_t *d = dst + Y * W;
        for (size_t X = 0; X < W; X++) d[X] = s[xs[X]];
    }
    free(xs);
}
