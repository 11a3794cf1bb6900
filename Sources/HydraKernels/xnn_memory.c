#include "hydra_xnn_memory.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every SIMD-aligned block carries this header just before the pointer XNNPACK sees. */
typedef struct {
    void *base;            /* what posix_memalign returned */
    size_t size;           /* bytes XNNPACK asked for */
    atomic_size_t refs;
    uint64_t magic;
} block_header;

#define MAGIC UINT64_C(0x4879647261584e4e) /* "HydraXNN" */
#define RECORD_MAX 16

static atomic_size_t aligned_live, plain_live;

static _Thread_local struct {
    int on;
    size_t count;
    void *pointers[RECORD_MAX];
    size_t sizes[RECORD_MAX];
} record;

static block_header *header_of(const void *p) {
    if (!p) return NULL;
    block_header *h = (block_header *)((uintptr_t)p - sizeof(block_header));
    return h->magic == MAGIC ? h : NULL;
}

static void *plain_allocate(void *context, size_t size) {
    (void)context;
    void *p = malloc(size);
    if (p) atomic_fetch_add(&plain_live, malloc_usable_size(p));
    return p;
}

static void *plain_reallocate(void *context, void *pointer, size_t size) {
    (void)context;
    size_t old = pointer ? malloc_usable_size(pointer) : 0;
    void *p = realloc(pointer, size);
    if (p) {
        atomic_fetch_add(&plain_live, malloc_usable_size(p));
        atomic_fetch_sub(&plain_live, old);
    } else if (size == 0) {
        atomic_fetch_sub(&plain_live, old);
    }
    return p;
}

static void plain_deallocate(void *context, void *pointer) {
    (void)context;
    if (!pointer) return;
    atomic_fetch_sub(&plain_live, malloc_usable_size(pointer));
    free(pointer);
}

static void *aligned_allocate(void *context, size_t alignment, size_t size) {
    (void)context;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (alignment & (alignment - 1)) return NULL;
    /* The header sits in the gap before the aligned pointer. */
    const size_t gap = (sizeof(block_header) + alignment - 1) / alignment * alignment;
    if (size > SIZE_MAX - gap) return NULL;
    void *base = NULL;
    if (posix_memalign(&base, alignment, gap + size) != 0) return NULL;
    void *p = (char *)base + gap;
    block_header *h = (block_header *)((uintptr_t)p - sizeof(block_header));
    h->base = base;
    h->size = size;
    atomic_init(&h->refs, 1);
    h->magic = MAGIC;
    atomic_fetch_add(&aligned_live, size);
    if (record.on) {
        if (record.count < RECORD_MAX) {
            record.pointers[record.count] = p;
            record.sizes[record.count] = size;
        }
        record.count++;
    }
    return p;
}

static void aligned_deallocate(void *context, void *pointer) {
    (void)context;
    block_header *h = header_of(pointer);
    if (!h) return; /* not ours: cannot happen for pointers XNNPACK got from aligned_allocate */
    if (atomic_fetch_sub(&h->refs, 1) != 1) return;
    atomic_fetch_sub(&aligned_live, h->size);
    h->magic = 0;
    free(h->base);
}

static const struct xnn_allocator allocator = {
    .context = NULL,
    .allocate = plain_allocate,
    .reallocate = plain_reallocate,
    .deallocate = plain_deallocate,
    .aligned_allocate = aligned_allocate,
    .aligned_deallocate = aligned_deallocate,
};

const struct xnn_allocator *hydra_xnn_allocator(void) { return &allocator; }

size_t hydra_xnn_aligned_bytes(void) { return atomic_load(&aligned_live); }
size_t hydra_xnn_plain_bytes(void) { return atomic_load(&plain_live); }

void hydra_xnn_record_begin(void) {
    record.on = 1;
    record.count = 0;
}

size_t hydra_xnn_record_end(void **pointers, size_t *sizes, size_t capacity) {
    record.on = 0;
    const size_t kept = record.count < RECORD_MAX ? record.count : RECORD_MAX;
    for (size_t i = 0; i < kept && i < capacity; i++) {
        pointers[i] = record.pointers[i];
        sizes[i] = record.sizes[i];
    }
    return record.count;
}

int hydra_xnn_share(void *op, void *fresh, void *shared) {
    block_header *ho = header_of(op), *hf = header_of(fresh), *hs = header_of(shared);
    if (!ho || !hf || !hs || fresh == shared || op == fresh) return -5;
    if (hf->size != hs->size) return -1;
    if (memcmp(fresh, shared, hf->size) != 0) return -2;
    /* The operator is an opaque struct: find the one field that holds `fresh`. A pointer into the
       middle of the buffer would be a field this does not know how to move, so nothing is shared. */
    const uintptr_t lo = (uintptr_t)fresh, hi = lo + hf->size;
    uintptr_t *words = (uintptr_t *)op;
    const size_t n = ho->size / sizeof(uintptr_t);
    size_t found = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t w;
        memcpy(&w, &words[i], sizeof w);
        if (w == lo) { found++; at = i; }
        else if (w > lo && w <= hi) return -4;
    }
    if (found != 1) return -3;
    const uintptr_t s = (uintptr_t)shared;
    atomic_fetch_add(&hs->refs, 1);
    memcpy(&words[at], &s, sizeof s);
    aligned_deallocate(NULL, fresh);
    return 0;
}

void hydra_xnn_retain(void *pointer) {
    block_header *h = header_of(pointer);
    if (h) atomic_fetch_add(&h->refs, 1);
}

void hydra_xnn_release(void *pointer) { aligned_deallocate(NULL, pointer); }
