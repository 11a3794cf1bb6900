#ifndef HYDRA_DISPATCH_H
#define HYDRA_DISPATCH_H
/* Runtime ISA dispatch for the kernels: AVX-512, AVX2 or portable clones of a function, chosen by
   an ifunc resolver at load time. Off under ThreadSanitizer: the resolvers run before its runtime
   is up and crash in it. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HYDRA_NO_CLONES 1
#define HYDRA_TSAN 1
#endif
#endif
#if defined(__x86_64__) && defined(__clang__) && !defined(HYDRA_NO_CLONES)
#define HYDRA_DISPATCH __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HYDRA_DISPATCH
#endif
#endif
