/*
 * fuzz.h - what every libFuzzer target in fuzz/ shares.
 *
 * A target is one fuzz/<name>.c defining LLVMFuzzerTestOneInput, built by
 * `make fuzz` / `make fuzz-smoke` with clang's -fsanitize=fuzzer plus ASan
 * and UBSan (Makefile, "fuzzing"). A target must stay deterministic and
 * bounded: the same input takes the same path, nothing it allocates is sized
 * by the input without a limit, and nothing leaks across inputs.
 *
 * A property broken is a crash: FUZZ_CHECK prints what and where and calls
 * abort(), which libFuzzer reports and saves like a sanitizer finding.
 */
#ifndef RUNNEL_FUZZ_H
#define RUNNEL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                   \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "%s:%d: property broken: %s: ", __FILE__, \
                                __LINE__, #cond);                               \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                        abort();                                                \
                }                                                               \
        } while (0)

/* A cursor over the input for picking choices: reads past the end give 0. */
struct fuzz_input {
        const uint8_t *p;
        size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_input *in)
{
        if (in->left == 0)
                return 0;
        in->left--;
        return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_input *in)
{
        uint16_t hi = fuzz_u8(in);
        return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* A heap copy of exactly len bytes, so ASan sees any read past them
 * (libFuzzer's own buffer is exact too, but a target that slices it wants
 * the same guarantee for the slice). Never NULL; free() it. */
static inline uint8_t *fuzz_dup(const void *src, size_t len)
{
        uint8_t *p = malloc(len ? len : 1);
        if (!p)
                abort();
        if (len)
                memcpy(p, src, len);
        return p;
}

#endif
