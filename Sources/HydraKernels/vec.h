#ifndef HYDRA_VEC_H
#define HYDRA_VEC_H
/* 16 floats as one value. Each target clone (dispatch.h) lowers it to its registers: 1 zmm, 2 ymm
   or 4 xmm. Kernels keep these inside cloned functions (vector-typed arguments would change the ABI
   between clones). */
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));

/* Unaligned load of 16 floats into a vector variable. */
#define LOAD16(v, p) memcpy(&(v), (p), sizeof(v16))
#define VMAX(a, b) __builtin_elementwise_max((a), (b))
#define VMIN(a, b) __builtin_elementwise_min((a), (b))
#define VCLAMP(a, lo, hi) VMIN(VMAX((a), (lo)), (hi))
#endif
