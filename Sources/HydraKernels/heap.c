#include "hydra_heap.h"
#include <malloc.h>

int hydra_heap_map_large(size_t bytes) {
    return mallopt(M_MMAP_THRESHOLD, (int)bytes);
}

int hydra_heap_trim(void) {
    return malloc_trim(0);
}
