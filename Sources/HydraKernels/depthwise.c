#include "hydra_kernels.h"
#include <string.h>

#include "dispatch.h"
#include "parallel.h"
#include "vec.h"

/* ---- depthwise 3x3 ---- */

enum { DW_TILE1 = 4, DW_TILE2 = 16 };

typedef struct {
    const float *in, *w, *b;
    float *out;
    size_t h, wd, c, stride, oh, ow;
    float lo, hi;
} dw_ctx;

/* One output row. Per block of 16 channels the nine weight vectors and the bias stay in registers;
   interior pixels (whose window lies inside the row) run four at a time, four independent FMA
   chains, and the border pixels skip the taps that fall outside, as zero padding would add 0. */
HYDRA_BODY void dw_row_body(void *vctx, size_t oy) {
    const dw_ctx *k = (const dw_ctx *)vctx;
    const size_t C = k->c, W = k->wd, S = k->stride, OW = k->ow;
    const float *rows[3];
    int valid[3];
    for (int ky = 0; ky < 3; ky++) {
        const long iy = (long)(oy * S) + ky - 1;
        valid[ky] = iy >= 0 && iy < (long)k->h;
        rows[ky] = valid[ky] ? k->in + (size_t)iy * W * C : k->in;
    }
    /* Interior: 1 <= ox and S * ox + 1 <= W - 1. */
    const size_t first = 1, last = W >= 2 ? (W - 2) / S : 0; /* inclusive */
    /* Tiles of a few output pixels (4 at stride 1, 16 at stride 2: the fastest measured); inside a
       tile, block after block of 16 channels, so the tile's input pixels (all their channels) are
       read while they are in L1 and each row is walked almost in order. */
    const size_t tile = S == 1 ? DW_TILE1 : DW_TILE2;
    for (size_t t0 = 0; t0 < OW; t0 += tile) {
        const size_t t1 = OW - t0 < tile ? OW : t0 + tile;
        for (size_t c0 = 0; c0 < C; c0 += 16) {
            v16 wt[9], bias = {0}, lo = {0}, hi = {0};
            for (int t = 0; t < 9; t++) LOAD16(wt[t], k->w + (size_t)t * C + c0);
            if (k->b) LOAD16(bias, k->b + c0);
            lo += k->lo;
            hi += k->hi;
            float *dst = k->out + oy * OW * C + c0;
            size_t ox = t0;
            while (ox < t1) {
                if (ox >= first && ox + 3 <= last && ox + 3 < t1) {
                    /* Four interior pixels: four independent FMA chains. */
                    v16 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
                    for (int ky = 0; ky < 3; ky++) {
                        if (!valid[ky]) continue;
                        const float *r = rows[ky] + (S * ox - 1) * C + c0;
                        for (int kx = 0; kx < 3; kx++) {
                            v16 x0, x1, x2, x3;
                            LOAD16(x0, r + (size_t)kx * C);
                            LOAD16(x1, r + (S + (size_t)kx) * C);
                            LOAD16(x2, r + (2 * S + (size_t)kx) * C);
                            LOAD16(x3, r + (3 * S + (size_t)kx) * C);
                            a0 += x0 * wt[ky * 3 + kx];
                            a1 += x1 * wt[ky * 3 + kx];
                            a2 += x2 * wt[ky * 3 + kx];
                            a3 += x3 * wt[ky * 3 + kx];
                        }
                    }
                    a0 = VCLAMP(a0, lo, hi);
                    a1 = VCLAMP(a1, lo, hi);
                    a2 = VCLAMP(a2, lo, hi);
                    a3 = VCLAMP(a3, lo, hi);
                    memcpy(dst + ox * C, &a0, sizeof a0);
                    memcpy(dst + (ox + 1) * C, &a1, sizeof a1);
                    memcpy(dst + (ox + 2) * C, &a2, sizeof a2);
                    memcpy(dst + (ox + 3) * C, &a3, sizeof a3);
                    ox += 4;
                    continue;
                }
                v16 a = bias;
                for (int ky = 0; ky < 3; ky++) {
                    if (!valid[ky]) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const long ix = (long)(ox * S) + kx - 1;
                        if (ix < 0 || ix >= (long)W) continue;
                        v16 x;
                        LOAD16(x, rows[ky] + (size_t)ix * C + c0);
                        a += x * wt[ky * 3 + kx];
                    }
                }
                a = VCLAMP(a, lo, hi);
                memcpy(dst + ox * C, &a, sizeof a);
                ox++;
            }
        }
    }
}
HYDRA_CLONES(dw_row, (void *vctx, size_t oy), (vctx, oy))

int hydra_depthwise3x3(const float *in, size_t height, size_t width, size_t channels, size_t stride,
                       const float *weights, const float *bias, float lo, float hi, float *out,
                       pthreadpool_t pool) {
    if (channels == 0 || channels % 16 != 0 || height == 0 || width == 0 || (stride != 1 && stride != 2)) return -1;
    dw_ctx k = { in, weights, bias, out, height, width, channels, stride,
                 (height - 1) / stride + 1, (width - 1) / stride + 1, lo, hi };
    hydra_parallelize_1d(pool, dw_row_pick(), &k, k.oh);
    return 0;
}
