/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of magic-2 record batches.
 *
 * Kafka computes the batch CRC with CRC-32C: reflected polynomial 0x82F63B78,
 * initial value 0xFFFFFFFF, final xor 0xFFFFFFFF (the same CRC as iSCSI and
 * ext4). "123456789" checks to 0xE3069283.
 *
 * Owns: the checksum arithmetic and the choice of implementation. On x86-64
 * CPUs with SSE4.2 the crc32 instruction is used (three interleaved streams
 * over long buffers); everywhere else a slicing-by-8 table. Both give the
 * same answer for every input; the software one is exported so tests can
 * hold them against each other.
 *
 * Streaming: the value passed in and returned is the finished CRC, as with
 * zlib's crc32(), so
 *     crc32c_update(crc32c_update(0, a, n), b, m) == crc32c of a||b.
 * Start a new checksum with crc = 0.
 *
 * Reentrant and thread-safe; tables are built once, on first use.
 */
#ifndef RUNNEL_CRC32C_H
#define RUNNEL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extends crc over len bytes at buf with the fastest implementation. */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* The table-driven implementation; every CPU. */
uint32_t crc32c_update_sw(uint32_t crc, const void *buf, size_t len);

/* True when crc32c_update_hw may be called on this CPU. */
bool crc32c_has_hw(void);

/* The SSE4.2 implementation; only when crc32c_has_hw(). */
uint32_t crc32c_update_hw(uint32_t crc, const void *buf, size_t len);

/* One-shot convenience: crc32c_update(0, buf, len). */
static inline uint32_t crc32c(const void *buf, size_t len)
{
        return crc32c_update(0, buf, len);
}

#endif
