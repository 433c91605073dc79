/*
 * arena.h - bump allocator for per-request memory.
 *
 * Every request owns one arena: its decoded strings, arrays and the encoded
 * response all come from it, and the whole arena is released at once when
 * the response has been sent. Nothing allocated from an arena is freed on
 * its own.
 *
 * An arena has a byte limit fixed at init. Allocation past the limit fails
 * (returns NULL) instead of growing, so a request whose decoded form would be
 * enormous (a count of a million empty structs, say) is refused, not served.
 *
 * Thread-confined: an arena is used by one thread at a time.
 */
#ifndef RUNNEL_ARENA_H
#define RUNNEL_ARENA_H

#include <stddef.h>
#include <stdint.h>

struct arena_block;

struct arena {
        struct arena_block *head;       /* newest block, allocations come from here */
        size_t used_bytes;              /* sum of block sizes, checked against the limit */
        size_t limit_bytes;
};

/* Memory from the first block is this large; bigger requests get their own block. */
#define ARENA_BLOCK_BYTES 16384

void arena_init(struct arena *a, size_t limit_bytes);

/* Returns 16-byte aligned memory, or NULL when the limit would be passed. */
void *arena_alloc(struct arena *a, size_t size_bytes);

/* Like arena_alloc, zero-filled; nmemb * size is checked for overflow. */
void *arena_calloc(struct arena *a, size_t nmemb, size_t size_bytes);

/* Copies len bytes into the arena. */
void *arena_dup(struct arena *a, const void *src, size_t len);

/* A NUL-terminated copy of a counted string. */
char *arena_strndup(struct arena *a, const char *src, size_t len);

/* printf into the arena; returns NULL on limit or format error. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees all blocks but the first, keeping the arena usable. */
void arena_reset(struct arena *a);

/* Frees everything; the arena must be initialised again before reuse. */
void arena_free(struct arena *a);

#endif
