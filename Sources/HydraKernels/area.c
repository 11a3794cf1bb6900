#include "hydra_resize.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "parallel.h"

/* Per output index: the first source index, how many follow, and their weights (coverage of the
   source pixel by the output pixel's footprint, divided by the footprint's width). */
typedef struct {
    size_t in, out, taps;
    int32_t *first, *count;
    float *wt;
} area_axis;

static int area_axis_init(area_axis *a, size_t in, size_t out) {
    const double scale = (double)in / (double)out;
    a->in = in; a->out = out;
    a->taps = (size_t)ceil(scale) + 1;
    a->first = malloc(out * sizeof(int32_t));
    a->count = malloc(out * sizeof(int32_t));
    a->wt = malloc(out * a->taps * sizeof(float));
    if (!a->first || !a->count || !a->wt) return -1;
    for (size_t i = 0; i < out; i++) {
        double lo = i * scale, hi = (i + 1) * scale;
        size_t j0 = (size_t)floor(lo), j1 = (size_t)ceil(hi);
        if (j1 > in) j1 = in;
        int32_t n = 0;
        for (size_t j = j0; j < j1 && (size_t)n < a->taps; j++) {
            double cover = fmin(hi, (double)j + 1) - fmax(lo, (double)j);
            if (cover <= 0) continue;
            if (n == 0) a->first[i] = (int32_t)j;
            a->wt[i * a->taps + n++] = (float)(cover / scale);
        }
        a->count[i] = n;
    }
    return 0;
}

static void area_axis_free(area_axis *a) { free(a->first); free(a->count); free(a->wt); }

typedef struct {
    const uint8_t *src;
    uint8_t *dst;
    size_t w, W;
    area_axis *ax, *ay;
} area_ctx;

/* Output rows [Y, Y + n): each source row they cover is reduced horizontally once, then weighted in. */
HYDRA_BODY void area_rows_body(void *p, size_t Y0, size_t n) {
    const area_ctx *c = p;
    const size_t W = c->W, taps = c->ax->taps;
    float *row = malloc(W * 3 * sizeof(float)), *acc = malloc(W * 3 * sizeof(float));
    if (!row || !acc) { free(row); free(acc); return; }
    for (size_t Y = Y0; Y < Y0 + n; Y++) {
        memset(acc, 0, W * 3 * sizeof(float));
        for (int32_t k = 0; k < c->ay->count[Y]; k++) {
            const uint8_t *s = c->src + (size_t)(c->ay->first[Y] + k) * c->w * 3;
            const float wy = c->ay->wt[Y * c->ay->taps + k];
            for (size_t X = 0; X < W; X++) {
                float r = 0, g = 0, b = 0;
                const uint8_t *px = s + (size_t)c->ax->first[X] * 3;
                const float *wx = c->ax->wt + X * taps;
                for (int32_t t = 0; t < c->ax->count[X]; t++) {
                    r += wx[t] * px[3 * t]; g += wx[t] * px[3 * t + 1]; b += wx[t] * px[3 * t + 2];
                }
                row[3 * X] = r; row[3 * X + 1] = g; row[3 * X + 2] = b;
            }
            for (size_t i = 0; i < W * 3; i++) acc[i] += wy * row[i];
        }
        uint8_t *d = c->dst + Y * W * 3;
        for (size_t i = 0; i < W * 3; i++) {
            float v = acc[i] + 0.5f;
            d[i] = v >= 255.f ? 255 : (uint8_t)v;
        }
    }
    free(row);
    free(acc);
}
HYDRA_CLONES(area_rows, (void *p, size_t Y0, size_t n), (p, Y0, n))

int hydra_resize_area_rgb8(const uint8_t *src, size_t h, size_t w, uint8_t *dst, size_t H, size_t W, pthreadpool_t pool) {
    if (H == 0 || W == 0 || H > h || W > w) return -1;
    area_axis ax, ay;
    memset(&ax, 0, sizeof ax); memset(&ay, 0, sizeof ay);
    int rc = -1;
    if (area_axis_init(&ax, w, W) == 0 && area_axis_init(&ay, h, H) == 0) {
        area_ctx c = { src, dst, w, W, &ax, &ay };
        hydra_parallelize_1d_tile_1d(pool, area_rows_pick(), &c, H, 8);
        rc = 0;
    }
    area_axis_free(&ax);
    area_axis_free(&ay);
    return rc;
}
