/*
 * uuid.h - Kafka's Uuid as the broker stores and shows it: random generation
 * and the text forms found in files (meta.properties, partition.metadata,
 * runnel's catalog) and in tools' output.
 *
 * Owns: nothing but pure functions. The binary form is struct kuuid from
 * protocol/wire.h (16 bytes, most significant byte first, as on the wire).
 *
 * Text forms:
 *   base64url  22 characters, URL-safe alphabet, no padding: Kafka's
 *              Uuid.toString(), used for topic ids, cluster.id, directory.id.
 *   hex        32 lowercase hex digits, no dashes: the unique part of a
 *              deleted partition directory's name.
 *
 * Thread safety: every function is safe to call from any thread.
 */
#ifndef RUNNEL_UUID_H
#define RUNNEL_UUID_H

#include <stdbool.h>
#include <stddef.h>

#include "../protocol/wire.h"

/* Buffer sizes, terminating NUL included. */
#define UUID_BASE64_BYTES 23
#define UUID_HEX_BYTES 33

/*
 * A random version-4 uuid as Kafka's Uuid.randomUuid() makes one: never the
 * reserved zero uuid nor Uuid.ONE_UUID (the metadata topic's id), and never
 * one whose base64url form starts with '-' (a tool would read it as an
 * option). With the version bits set it is also never one of the reserved
 * directory ids (DirectoryId's first 100 uuids), so it serves for
 * directory.id as well. Returns 0 or -errno when the kernel's random source
 * fails.
 */
int uuid_random(struct kuuid *out);

/* Writes the 22-character base64url form and a NUL. */
void uuid_to_base64(struct kuuid u, char out[UUID_BASE64_BYTES]);

/*
 * Parses the base64url form: exactly 22 characters of the URL-safe alphabet,
 * optionally followed by "==" (Java's decoder accepts padding), with the
 * unused low bits of the last character zero so that every uuid has one
 * spelling. Returns false on anything else.
 */
bool uuid_from_base64(const char *s, size_t len, struct kuuid *out);

/* Writes 32 lowercase hex digits and a NUL. */
void uuid_to_hex(struct kuuid u, char out[UUID_HEX_BYTES]);

/* The reserved uuids Kafka never hands out as ids. */
bool uuid_is_reserved(struct kuuid u);

#endif
