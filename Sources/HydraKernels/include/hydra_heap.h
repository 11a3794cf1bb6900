#ifndef HYDRA_HEAP_H
#define HYDRA_HEAP_H
#include <stddef.h>

/* glibc's malloc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so after
   one large request later frames, bodies and outputs come from the heap and stay resident at the
   largest size seen. Fixing the threshold keeps every allocation of `bytes` or more in a mapping of
   its own that goes back to the system when freed. Returns 0 when glibc refused. */
int hydra_heap_map_large(size_t bytes);

/* Returns free heap memory to the system (glibc's malloc_trim); 1 when some was released. */
int hydra_heap_trim(void);

#endif
