#ifndef HYDRA_VEC_H
#define HYDRA_VEC_H
/* 16 floats as one value. Each target clone (dispatch.h) lowers it to its registers: 1 zmm, 2 ymm
   or 4 xmm. Kernels keep these inside cloned functions (vector-typed arguments would change the ABI
   between clones). */
#include <stdint.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));

/* Unaligned load of 16 floats into a vector variable. */
#define LOAD16(v, p) memcpy(&(v), (p), sizeof(v16))
typedef int32_t vmask16 __attribute__((vector_size(64)));

/* max and min of float vectors as one VMAXPS / VMINPS each: (a < b) ? b : a is that instruction with
   its operands swapped (a when equal or unordered). __builtin_elementwise_max has IEEE maxNum's NaN
   rule, which costs a compare and a blend per use on x86 (a third of the pools' instructions). */
#define VSELECT_(m, x, y) ((v16)(((vmask16)(x) & (m)) | ((vmask16)(y) & ~(m))))
#define VMAX(a, b) ({ const v16 a_ = (a), b_ = (b); VSELECT_(a_ < b_, b_, a_); })
#define VMIN(a, b) ({ const v16 a_ = (a), b_ = (b); VSELECT_(b_ < a_, b_, a_); })
#define VCLAMP(a, lo, hi) VMIN(VMAX((a), (lo)), (hi))
#endif
