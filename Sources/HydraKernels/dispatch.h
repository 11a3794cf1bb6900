#ifndef HYDRA_DISPATCH_H
#define HYDRA_DISPATCH_H
/* Runtime ISA dispatch for the row workers: each is written once as an always-inline body and
   compiled three times, inside AVX-512, AVX2 and baseline wrappers; `NAME_pick()` returns the one
   for `hydra_isa_level()` (the CPU's, or what `hydra_kernels_set_isa` forced, so the tests can run
   every clone on one machine). Off under ThreadSanitizer (one baseline copy), as before. */
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HYDRA_NO_CLONES 1
#define HYDRA_TSAN 1
#endif
#endif

/* 2: AVX-512F, 1: AVX2, 0: baseline x86-64 (or not x86). */
int hydra_isa_level(void);

#define HYDRA_BODY static inline __attribute__((always_inline))

#if defined(__x86_64__) && defined(__clang__) && !defined(HYDRA_NO_CLONES)
#define HYDRA_CLONES(name, params, args)                                                            \
    __attribute__((target("avx512f"))) static void name##_avx512f params { name##_body args; }      \
    __attribute__((target("avx2"))) static void name##_avx2 params { name##_body args; }            \
    static void name##_generic params { name##_body args; }                                         \
    static void (*name##_pick(void)) params {                                                       \
        int level = hydra_isa_level();                                                              \
        return level >= 2 ? name##_avx512f : level == 1 ? name##_avx2 : name##_generic;             \
    }
#else
#define HYDRA_CLONES(name, params, args)                                                            \
    static void name##_generic params { name##_body args; }                                         \
    static void (*name##_pick(void)) params { return name##_generic; }
#endif
#endif
