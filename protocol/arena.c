/*
 * arena.c - bump allocator; see arena.h for the contract.
 *
 * Blocks form a singly linked list, newest first. The first block is kept
 * across arena_reset so that a connection reusing its arena for request after
 * request does not call malloc for small requests.
 */
#include "arena.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
        struct arena_block *next;
        size_t size_bytes;
        size_t used_bytes;
        _Alignas(16) unsigned char data[];
};

#define ARENA_ALIGN 16

void arena_init(struct arena *a, size_t limit_bytes)
{
        a->head = NULL;
        a->used_bytes = 0;
        a->limit_bytes = limit_bytes;
}

static struct arena_block *arena_add_block(struct arena *a, size_t min_bytes)
{
        size_t size = min_bytes > ARENA_BLOCK_BYTES ? min_bytes : ARENA_BLOCK_BYTES;
        if (a->used_bytes + size > a->limit_bytes || a->used_bytes + size < a->used_bytes)
                return NULL;
        /* With a limit near SIZE_MAX the header would wrap malloc's size. */
        if (size > SIZE_MAX - sizeof(struct arena_block))
                return NULL;
        struct arena_block *b = malloc(sizeof(*b) + size);
        if (!b)
                return NULL;
        b->size_bytes = size;
        b->used_bytes = 0;
        if (a->head && size > ARENA_BLOCK_BYTES) {
                /* A big one-off block goes behind the head so the head's free
                 * space stays usable for the small allocations that follow. */
                b->next = a->head->next;
                a->head->next = b;
        } else {
                b->next = a->head;
                a->head = b;
        }
        a->used_bytes += size;
        return b;
}

void *arena_alloc(struct arena *a, size_t size_bytes)
{
        size_t need = (size_bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        if (need < size_bytes)
                return NULL;
        if (need == 0)
                need = ARENA_ALIGN;
        struct arena_block *b = a->head;
        if (!b || b->size_bytes - b->used_bytes < need) {
                b = arena_add_block(a, need);
                if (!b)
                        return NULL;
                if (b != a->head) {
                        b->used_bytes = need;
                        return b->data;
                }
        }
        void *p = b->data + b->used_bytes;
        b->used_bytes += need;
        assert(b->used_bytes <= b->size_bytes);
        return p;
}

void *arena_calloc(struct arena *a, size_t nmemb, size_t size_bytes)
{
        if (size_bytes && nmemb > SIZE_MAX / size_bytes)
                return NULL;
        void *p = arena_alloc(a, nmemb * size_bytes);
        if (p)
                memset(p, 0, nmemb * size_bytes);
        return p;
}

void *arena_dup(struct arena *a, const void *src, size_t len)
{
        void *p = arena_alloc(a, len);
        if (p && len)
                memcpy(p, src, len);
        return p;
}

char *arena_strndup(struct arena *a, const char *src, size_t len)
{
        char *p = arena_alloc(a, len + 1);
        if (!p)
                return NULL;
        if (len)
                memcpy(p, src, len);
        p[len] = '\0';
        return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return NULL;
        char *p = arena_alloc(a, (size_t)n + 1);
        if (!p)
                return NULL;
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return p;
}

void arena_reset(struct arena *a)
{
        struct arena_block *keep = NULL;
        struct arena_block *b = a->head;
        while (b) {
                struct arena_block *next = b->next;
                if (!keep && b->size_bytes == ARENA_BLOCK_BYTES) {
                        keep = b;
                } else {
                        free(b);
                }
                b = next;
        }
        a->head = keep;
        a->used_bytes = 0;
        if (keep) {
                keep->next = NULL;
                keep->used_bytes = 0;
                a->used_bytes = keep->size_bytes;
        }
}

void arena_free(struct arena *a)
{
        struct arena_block *b = a->head;
        while (b) {
                struct arena_block *next = b->next;
                free(b);
                b = next;
        }
        a->head = NULL;
        a->used_bytes = 0;
}
