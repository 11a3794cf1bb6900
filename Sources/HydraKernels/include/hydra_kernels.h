#ifndef HYDRA_KERNELS_H
#define HYDRA_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include <pthreadpool.h>

/* Small kernels for what the 2022 XNNPACK snapshot does slowly or not at all.
   All tensors are NHWC float32 with batch 1. Each function dispatches at run
   time to an AVX-512, AVX2 or portable build of its loop. */

/* uint8 RGB -> float (x / 255 - mean[c]) / std[c]. */
void hydra_preprocess_rgb8(const uint8_t *rgb, size_t pixels, const float mean[3],
                           const float std[3], float *out, pthreadpool_t pool);

/* The network's first layer straight from 8-bit RGB: normalise as hydra_preprocess_rgb8 does, then
   a 3x3 convolution with stride 2 and padding 1 (zeros in normalised space), bias (may be NULL) and
   clamp to [lo, hi]. weights: [ky][kx][in][out], 27 x out_channels; out: NHWC, ((height + 1) / 2) x
   ((width + 1) / 2) x out_channels. out_channels must be a multiple of 16 (returns -1 otherwise).
   It replaces preprocessing plus XNNPACK's convolution, whose setup keeps 72 bytes of indirection
   pointers per output pixel (8 MiB per replica at 1226x370) and which needs the float image. */
int hydra_stem_conv3x3s2_rgb8(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                              const float std[3], const float *weights, const float *bias,
                              size_t out_channels, float lo, float hi, float *out, pthreadpool_t pool);

/* The same first layer with its output rounded to bf16 (nearest even, as hydra_bf16_from_float):
   the same f32 sums, so the result is exactly hydra_bf16_from_float of hydra_stem_conv3x3s2_rgb8's. */
int hydra_stem_conv3x3s2_rgb8_bf16(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                                   const float std[3], const float *weights, const float *bias,
                                   size_t out_channels, float lo, float hi, uint16_t *out, pthreadpool_t pool);

/* And quantized to u8 (scale, zero point: as hydra_int8_quantize) for the int8 layer that reads it,
   which would quantize it so anyway: exactly hydra_int8_quantize of hydra_stem_conv3x3s2_rgb8's. */
int hydra_stem_conv3x3s2_rgb8_u8(const uint8_t *rgb, size_t height, size_t width, const float mean[3],
                                 const float std[3], const float *weights, const float *bias,
                                 size_t out_channels, float lo, float hi, float scale, int32_t zero, uint8_t *out,
                                 pthreadpool_t pool);

/* Depthwise 3x3 convolution, padding 1, stride 1 or 2, bias (may be NULL), clamp to [lo, hi].
   weights: [ky][kx][channel], 9 x channels; out: ((height - 1) / stride + 1) x ((width - 1) / stride + 1)
   x channels. Channels must be a multiple of 16 (returns -1 otherwise, or for another stride).
   XNNPACK's depthwise keeps an indirection buffer per operator (2.7 MB for the first block at
   1226x370), so every replica paid for them again; this needs none. */
int hydra_depthwise3x3(const float *in, size_t height, size_t width, size_t channels, size_t stride,
                       const float *weights, const float *bias, float lo, float hi, float *out,
                       pthreadpool_t pool);

/* 5x5 max pool, stride 1, padding 2 where padded cells never win (PyTorch's
   MaxPool2d(5, 1, 2)). One pass per pair of output rows: their shared vertical maxima, then a 5-wide window. */
void hydra_maxpool5(const float *in, float *out, size_t height, size_t width,
                    size_t channels, pthreadpool_t pool);

/* Element formats of the reduced-precision tensors: f32, bf16, or u8 quantized per tensor (scale and
   zero point, as hydra_int8_quantize). */
enum { HYDRA_F32 = 0, HYDRA_BF16 = 1, HYDRA_U8 = 2 };

/* hydra_maxpool5 between formats (pool.c): f32 or bf16 in, f32, bf16 or u8 (quantized with scale and
   zero) out; or u8 in and u8 out in the same quantization (scale and zero unused). Bit-identical to
   pooling in f32 and converting after (every conversion is monotone). Channels a multiple of 16;
   returns -1 otherwise, for u8 in with another format out, or an invalid quantization. */
int hydra_maxpool5_typed(const void *in, int in_format, void *out, int out_format, float scale, int32_t zero,
                         size_t height, size_t width, size_t channels, pthreadpool_t pool);

/* One stage of chained residual pooling whose convolution is a per-channel scale (crp1), in one
   pass: top_out = scale * maxpool5(top); x_out = x + top_out. */
void hydra_crp_scale_stage(const float *top, const float *x, const float *scale, float *top_out, float *x_out,
                           size_t height, size_t width, size_t channels, pthreadpool_t pool);

/* The four crp1 stages at once, with the add before them and the channel scales after them:
   x = input (f32, or bf16 when input_bf16), or clamp(input + addend, lo, hi) when addend is given;
   t_0 = x, t_i = scales_i * maxpool5(t_(i-1)) (scales: 4 x channels), sum = x + t_1 + ... + t_4;
   output j = sum when output_scale[j] is NULL, else clamp(sum * output_scale[j], output_lo,
   output_hi); f32, or rounded to bf16 when output_bf16[j]. Bit-identical to running the add, four
   hydra_crp_scale_stage calls and hydra_channel_scale(_bf16) one after the other, but reading the
   input once and writing only the outputs (a wavefront over rows per block of 16 channels, crp.c). */
typedef struct {
    const void *input;
    int input_bf16;
    const float *addend;
    /* When non-zero: the addend is this size and is upsampled to the input's as it is read (bilinear,
       half-pixel centres, PyTorch's align_corners=False arithmetic), instead of a resize step before. */
    size_t addend_height, addend_width;
    float lo, hi;
    const float *scales;
    size_t outputs; /* 1 to 3 */
    const float *output_scale[3];
    float output_lo, output_hi;
    void *output[3];
    int output_bf16[3];
    /* Instead: u8 with this scale and zero point 0, hydra_int8_quantize's arithmetic (an int8 head's input). */
    int output_u8[3];
    float output_qscale[3];
} hydra_crp_chain_args;

/* Channels must be a multiple of 16 and 1-3 outputs (returns -1 otherwise). An output may be the input's
   or the addend's memory when its elements are the same size: each block of 16 channels is one thread's,
   and it reads a row before writing the rows at or above it. */
int hydra_crp_chain(const hydra_crp_chain_args *args, float *scratch, size_t height, size_t width, size_t channels,
                    pthreadpool_t pool);
/* Floats of `scratch` the chain needs (rows of each stage's window, per block of channels). The
   runner keeps them in the activation arena, where the planner overlaps them with dead tensors. */
size_t hydra_crp_chain_scratch_floats(size_t width, size_t channels);

/* out[p][c] = clamp(in[p][c] * scale[c], lo, hi): a depthwise 1x1 convolution. */
void hydra_channel_scale(const float *in, const float *scale, float *out, size_t pixels,
                         size_t channels, float lo, float hi, pthreadpool_t pool);

/* 3x3 convolution, stride 1, padding 1, for few output channels (the heads): out[y][x][o] =
   bias[o] + sum over taps and input channels. weights are [out][ky][kx][in] (XNNPACK's order);
   channels must be a multiple of 16. XNNPACK pads output channels to 16, which wastes up to 16x
   on a 256 -> 1 head; this does only the work there is. */
void hydra_conv3x3_small(const float *in, size_t height, size_t width, size_t channels,
                         const float *weights, const float *bias, size_t out_channels,
                         float *out, pthreadpool_t pool);

/* ---- bfloat16 (gemm_bf16.c) ---- */

/* Whether this CPU has AVX512-BF16 (VDPBF16PS, VCVTNE2PS2BF16); without it the bf16 kernels return -1. */
int hydra_bf16_supported(void);

/* f32 -> bf16 bits, as the conversion instruction rounds: nearest even, denormals to zero. */
uint16_t hydra_bf16_from_float(float f);

/* bf16 elements that hydra_bf16_pack_weights writes for a 1x1 convolution. */
size_t hydra_bf16_packed_elements(size_t in_channels, size_t out_channels);

/* Packs f32 weights [out][in] for hydra_conv1x1_bf16 (once per model; replicas share the result). */
void hydra_bf16_pack_weights(const float *w, size_t in_channels, size_t out_channels, uint16_t *packed);

/* Layouts of hydra_conv1x1_bf16's input and output: f32 unless these bits say bf16. HYDRA_U8_INPUT
   (hydra_conv1x1_int8 only): the input is already quantized with the layer's scale and zero point. */
enum { HYDRA_BF16_INPUT = 1, HYDRA_BF16_OUTPUT = 2, HYDRA_U8_INPUT = 4 };

/* A residual add fused into a 1x1 convolution's epilogue: out = clamp(v + input, lo, hi), v being the
   convolution's clamped f32 result (not rounded), `input` shaped like the output (f32, or bf16 when
   `bf16`); when `raw` is given, v is also written there in the output's layout. */
typedef struct {
    const void *input;
    int bf16;
    float lo, hi;
    void *raw;
    int raw_format; /* HYDRA_RAW_*: the raw copy's format */
    float raw_scale;
    int32_t raw_zero;
} hydra_residual;

/* hydra_residual.raw_format: the output's layout (0), or f32, bf16, or u8 quantized with raw_scale
   and raw_zero (as hydra_int8_quantize: a pool before an int8 convolution reads it). */
enum { HYDRA_RAW_AS_OUTPUT = 0, HYDRA_RAW_F32, HYDRA_RAW_BF16, HYDRA_RAW_U8 };

/* 1x1 convolution, NHWC: out[p][o] = clamp(bias[o] + sum_i bf16(in[p][i]) * w[o][i], lo, hi), the sum
   in f32 as VDPBF16PS forms it (gemm_bf16.c says exactly how); in and out f32 or bf16 (`layout`).
   bias may be NULL; residual (NULL for none) adds a tensor after the clamp. Returns -1 without
   AVX512-BF16 or for more than 4096 input channels. */
int hydra_conv1x1_bf16(const void *in, size_t pixels, size_t in_channels, const uint16_t *packed,
                       const float *bias, size_t out_channels, float lo, float hi, void *out, int layout,
                       const hydra_residual *residual, pthreadpool_t pool);

/* The same arithmetic in scalar code, for tests: bit-identical to hydra_conv1x1_bf16. */
void hydra_conv1x1_bf16_reference(const void *in, size_t pixels, size_t in_channels, const uint16_t *packed,
                                  const float *bias, size_t out_channels, float lo, float hi, void *out, int layout,
                                  const hydra_residual *residual);

/* Depthwise 3x3 (padding 1, stride 1 or 2) from bf16 to bf16: each tap a fused multiply-add in f32
   in the order (ky, kx) from the bias, taps outside the image skipped, then the clamp and rounding
   to bf16. Weights [ky][kx][channel] f32. Channels a multiple of 16 (returns -1 otherwise, for
   another stride, or without AVX512-BF16). */
int hydra_depthwise3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                            const float *weights, const float *bias, float lo, float hi, uint16_t *out,
                            pthreadpool_t pool);
void hydra_depthwise3x3_bf16_reference(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                                       const float *weights, const float *bias, float lo, float hi, uint16_t *out);

/* The same with the output quantized to u8 (as hydra_int8_quantize, after the clamp) for the int8
   projection that reads it, instead of rounded to bf16 and quantized there. */
int hydra_depthwise3x3_bf16_u8(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                               const float *weights, const float *bias, float lo, float hi, float scale, int32_t zero,
                               uint8_t *out, pthreadpool_t pool);
void hydra_depthwise3x3_bf16_u8_reference(const uint16_t *in, size_t height, size_t width, size_t channels, size_t stride,
                                          const float *weights, const float *bias, float lo, float hi, float scale,
                                          int32_t zero, uint8_t *out);

/* A channel scale (depthwise 1x1, clamp to [lo, hi]) that writes bf16: the input of a bf16 head.
   Channels must be a multiple of 32 (returns -1 otherwise or without AVX512-BF16). */
int hydra_channel_scale_bf16(const float *in, const float *scale, uint16_t *out, size_t pixels, size_t channels,
                             float lo, float hi, pthreadpool_t pool);
void hydra_channel_scale_bf16_reference(const float *in, const float *scale, uint16_t *out, size_t pixels,
                                        size_t channels, float lo, float hi);

/* A 3x3 head (stride 1, padding 1, few outputs) on a bf16 input with bf16 weights [out][ky][kx][in],
   f32 sums in VDPBF16PS's order (gemm_bf16.c). Channels must be a multiple of 32 (returns -1
   otherwise or without AVX512-BF16). */
int hydra_head3x3_bf16(const uint16_t *in, size_t height, size_t width, size_t channels, const uint16_t *weights,
                       const float *bias, size_t out_channels, float *out, pthreadpool_t pool);
void hydra_head3x3_bf16_reference(const uint16_t *in, size_t height, size_t width, size_t channels,
                                  const uint16_t *weights, const float *bias, size_t out_channels, float *out);

/* ---- int8 (gemm_int8.c) ---- */

/* Whether this CPU has AVX512-VNNI (VPDPBUSD) and AVX512-BF16 (int8 replicas run their other layers in
   bf16); without them the int8 kernels return -1. */
int hydra_int8_supported(void);

/* Bytes hydra_int8_pack_weights writes for a 1x1 convolution. */
size_t hydra_int8_packed_bytes(size_t in_channels, size_t out_channels);

/* Quantizes f32 weights [out][in] per output channel, symmetrically (scales[o] = max |w[o][:]| / 127,
   values in -127..127), and packs them for hydra_conv1x1_int8; colsums[o] = the sum of row o's int8
   values. Once per model; replicas share the result. */
void hydra_int8_pack_weights(const float *w, size_t in_channels, size_t out_channels, int8_t *packed, float *scales,
                             int32_t *colsums);

/* An activation as the kernel quantizes it: clamp(rint(x * (1 / scale)) + zero, 0, 255). */
uint8_t hydra_int8_quantize(float x, float scale, int32_t zero);

/* 1x1 convolution, NHWC, with the input quantized to u8 (scale, zero point: per tensor) and the
   weights to s8 per output channel; integer sums (VPDPBUSD), then
   out = clamp(fmaf(sum - zero * colsum[o], scale * weight_scales[o], bias[o]), lo, hi) as f32 or bf16
   (`layout`, the HYDRA_BF16_* bits; gemm_int8.c states the arithmetic). bias may be NULL. Returns -1
   without AVX512-VNNI, for more than 4096 input channels, a scale that is not positive or a zero
   point outside 0..255. The output's lo and hi may be infinite (no clamp); residual as for
   hydra_conv1x1_bf16. */
int hydra_conv1x1_int8(const void *in, size_t pixels, size_t in_channels, float scale, int32_t zero, const int8_t *packed,
                       const float *weight_scales, const int32_t *colsums, const float *bias, size_t out_channels, float lo,
                       float hi, void *out, int layout, const hydra_residual *residual, pthreadpool_t pool);

/* The same arithmetic in scalar code, for tests: bit-identical to hydra_conv1x1_int8. */
void hydra_conv1x1_int8_reference(const void *in, size_t pixels, size_t in_channels, float scale, int32_t zero,
                                  const int8_t *packed, const float *weight_scales, const int32_t *colsums, const float *bias,
                                  size_t out_channels, float lo, float hi, void *out, int layout, const hydra_residual *residual);

/* Quantizes a 3x3 head's f32 weights ([out][ky][kx][channel]) per output channel, symmetrically
   (scales[o] = max |w[o][..]| / 127), for hydra_head3x3_int8. */
void hydra_int8_pack_head(const float *w, size_t channels, size_t out_channels, int8_t *packed, float *scales);

/* A 3x3 head (stride 1, padding 1, few outputs) on a u8 input with zero point 0 and `scale`, int8
   weights from hydra_int8_pack_head: integer sums (VPDPBUSD), then
   out = fmaf(sum, scale * weight_scales[o], bias[o]). Channels must be a multiple of 64 (returns -1
   otherwise, for a scale that is not positive, or without AVX512-VNNI). */
int hydra_head3x3_int8(const uint8_t *in, size_t height, size_t width, size_t channels, float scale, const int8_t *weights,
                       const float *weight_scales, const float *bias, size_t out_channels, float *out, pthreadpool_t pool);
void hydra_head3x3_int8_reference(const uint8_t *in, size_t height, size_t width, size_t channels, float scale,
                                  const int8_t *weights, const float *weight_scales, const float *bias, size_t out_channels,
                                  float *out);

/* The instruction set the cloned kernels run as ("avx512f", "avx2", "generic"): the CPU's best unless forced. */
const char *hydra_kernels_isa(void);

/* Runs the cloned kernels as "avx512f", "avx2" or "generic" from now on (NULL: the CPU's best);
   0 on success, -1 for an unknown name or one the CPU cannot run. For tests and benchmarks: call
   it while no kernel runs. */
int hydra_kernels_set_isa(const char *isa);

#endif
