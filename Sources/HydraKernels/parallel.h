#ifndef HYDRA_PARALLEL_H
#define HYDRA_PARALLEL_H
/* The kernels' parallel regions. Debian's pthreadpool is not built for ThreadSanitizer, so TSan
   cannot see that a region's tasks start after the caller's writes and that the caller goes on
   only after every task has ended: it reports each such pair as a race. Under TSan these wrappers
   state exactly those two orderings (release/acquire on two separate objects, so tasks are NOT
   ordered among themselves and races between them are still reported); otherwise they are the
   plain pthreadpool calls. */
#include <pthreadpool.h>
#include "dispatch.h"

#ifdef HYDRA_TSAN
#include <sanitizer/tsan_interface.h>

typedef struct {
    void *task;
    void *context;
    char start, end; /* addresses used as TSan synchronisation objects */
} hydra_region;

static void hydra_region_1d(void *p, size_t i) {
    hydra_region *r = p;
    __tsan_acquire(&r->start);
    ((pthreadpool_task_1d_t)r->task)(r->context, i);
    __tsan_release(&r->end);
}

static void hydra_region_1d_tile_1d(void *p, size_t i, size_t tile) {
    hydra_region *r = p;
    __tsan_acquire(&r->start);
    ((pthreadpool_task_1d_tile_1d_t)r->task)(r->context, i, tile);
    __tsan_release(&r->end);
}

static inline void hydra_parallelize_1d(pthreadpool_t pool, pthreadpool_task_1d_t task, void *context, size_t range) {
    hydra_region r = {(void *)task, context, 0, 0};
    __tsan_release(&r.start);
    pthreadpool_parallelize_1d(pool, hydra_region_1d, &r, range, 0);
    __tsan_acquire(&r.end);
}

static inline void hydra_parallelize_1d_tile_1d(pthreadpool_t pool, pthreadpool_task_1d_tile_1d_t task, void *context,
                                                size_t range, size_t tile) {
    hydra_region r = {(void *)task, context, 0, 0};
    __tsan_release(&r.start);
    pthreadpool_parallelize_1d_tile_1d(pool, hydra_region_1d_tile_1d, &r, range, tile, 0);
    __tsan_acquire(&r.end);
}
#else
static inline void hydra_parallelize_1d(pthreadpool_t pool, pthreadpool_task_1d_t task, void *context, size_t range) {
    pthreadpool_parallelize_1d(pool, task, context, range, 0);
}

static inline void hydra_parallelize_1d_tile_1d(pthreadpool_t pool, pthreadpool_task_1d_tile_1d_t task, void *context,
                                                size_t range, size_t tile) {
    pthreadpool_parallelize_1d_tile_1d(pool, task, context, range, tile, 0);
}
#endif
#endif
