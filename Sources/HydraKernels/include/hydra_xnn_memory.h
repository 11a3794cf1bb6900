#ifndef HYDRA_XNN_MEMORY_H
#define HYDRA_XNN_MEMORY_H
#include <stddef.h>
#include <xnnpack.h>

/* The allocator Hydra gives xnn_initialize. It counts what XNNPACK holds and lets replicas of one
   model share packed weights: the 2022 snapshot has no weights cache, so every operator packs its
   own copy, and a second replica would otherwise pay for all the weights again.

   Sharing: while a thread records (record_begin .. record_end), the SIMD-aligned allocations it makes
   are listed. Creating an operator allocates the operator itself, its packed weights and perhaps a
   zero buffer. For a later replica, hydra_xnn_share swaps the operator's fresh copy for the first
   replica's buffer when the bytes are identical and the operator holds exactly one pointer to it;
   otherwise it changes nothing. Shared buffers are reference counted: each operator's release (and
   hydra_xnn_release for a holder's own reference) drops one, the last frees it. XNNPACK never writes
   packed weights or zero buffers after creating an operator. */

const struct xnn_allocator *hydra_xnn_allocator(void);

/* Bytes XNNPACK holds now through this allocator (all threads): SIMD-aligned (operators, packed
   weights, zero buffers) and plain (indirection buffers and other setup state). */
size_t hydra_xnn_aligned_bytes(void);
size_t hydra_xnn_plain_bytes(void);

/* Starts listing this thread's SIMD-aligned allocations (at most 16 are kept). */
void hydra_xnn_record_begin(void);
/* Stops listing; copies at most `capacity` entries and returns how many there were (more than
   `capacity`, or than 16, means the list is incomplete: do not share from it). */
size_t hydra_xnn_record_end(void **pointers, size_t *sizes, size_t capacity);

/* If `fresh` (owned by `op`) has the same size and bytes as `shared`, and `op`'s own allocation holds
   `fresh` exactly once and no pointer into its interior: points `op` at `shared` (one more reference)
   and frees `fresh`. Returns 0 when shared, a negative reason otherwise (-1 size, -2 bytes, -3 not
   held exactly once, -4 interior pointer, -5 not this allocator's). */
int hydra_xnn_share(void *op, void *fresh, void *shared);

/* One more / one less reference to a SIMD-aligned allocation of this allocator. */
void hydra_xnn_retain(void *pointer);
void hydra_xnn_release(void *pointer);

#endif
