/*
 * config_properties.c - the Java properties format of server.properties,
 * as java.util.Properties.load reads it: comments, key/value separators,
 * line continuations, escapes and \uXXXX, each property handed on with
 * its line number (config_parse_properties, config.h).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static bool is_prop_space(char c)
{
        return c == ' ' || c == '\t' || c == '\f';
}

struct text_buf {
        char *ptr;
        size_t len;
        size_t cap;
};

static int text_buf_append(struct text_buf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 128;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->ptr, cap);
                if (!p)
                        return -ENOMEM;
                b->ptr = p;
                b->cap = cap;
        }
        memcpy(b->ptr + b->len, s, n);
        b->len += n;
        b->ptr[b->len] = '\0';
        return 0;
}

static int hex4(const char *s, size_t avail, uint32_t *out)
{
        if (avail < 4)
                return -EINVAL;
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *out = v;
        return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
        assert(cp > 0 && cp <= 0x10FFFF);
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/*
 * Resolves escapes in s[0..n) into a new string. The result is never longer
 * than the input: \uXXXX (6 bytes) encodes to at most 3 bytes of UTF-8, a
 * surrogate pair (12 bytes) to 4.
 */
static int unescape(const char *s, size_t n, uint32_t line, char **out, char *err, size_t err_len)
{
        char *o = malloc(n + 1);
        if (!o)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '\\') {
                        o[k++] = s[i];
                        continue;
                }
                if (++i == n)
                        break;          /* a lone backslash at the very end is dropped */
                switch (s[i]) {
                case 't': o[k++] = '\t'; break;
                case 'n': o[k++] = '\n'; break;
                case 'r': o[k++] = '\r'; break;
                case 'f': o[k++] = '\f'; break;
                case 'u': {
                        uint32_t cp, low;
                        if (hex4(s + i + 1, n - i - 1, &cp))
                                goto bad_escape;
                        i += 4;
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                                if (n - i - 1 < 6 || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                                    hex4(s + i + 3, n - i - 3, &low) || low < 0xDC00 || low > 0xDFFF)
                                        goto bad_escape;
                                i += 6;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                                goto bad_escape;
                        }
                        if (cp == 0) {
                                config_set_err(err, err_len, "line %" PRIu32 ": \\u0000 is not allowed", line);
                                free(o);
                                return -EINVAL;
                        }
                        k += utf8_encode(cp, o + k);
                        break;
                }
                default:
                        o[k++] = s[i];
                }
                assert(k <= i + 1);
        }
        assert(k <= n);
        o[k] = '\0';
        *out = o;
        return 0;

bad_escape:
        config_set_err(err, err_len, "line %" PRIu32 ": malformed \\uXXXX escape", line);
        free(o);
        return -EINVAL;
}

/* Splits one logical line into key and value and hands them to fn. */
static int emit_property(const char *s, size_t n, uint32_t line, config_property_fn fn, void *ctx,
                         char *err, size_t err_len)
{
        size_t i = 0;
        bool has_separator = false;
        while (i < n) {
                if (s[i] == '\\') {
                        i += 2;
                        continue;
                }
                if (s[i] == '=' || s[i] == ':') {
                        has_separator = true;
                        break;
                }
                if (is_prop_space(s[i]))
                        break;
                i++;
        }
        size_t key_end = i < n ? i : n;
        size_t v = key_end;
        if (has_separator) {
                v++;
        } else {
                while (v < n && is_prop_space(s[v]))
                        v++;
                if (v < n && (s[v] == '=' || s[v] == ':'))
                        v++;
        }
        while (v < n && is_prop_space(s[v]))
                v++;

        char *key = NULL, *value = NULL;
        int rc = unescape(s, key_end, line, &key, err, err_len);
        if (rc)
                goto out;
        rc = unescape(s + v, n - v, line, &value, err, err_len);
        if (rc)
                goto out_key;
        rc = fn(ctx, key, value, line);
        free(value);
out_key:
        free(key);
out:
        return rc;
}

int config_parse_properties(const char *text, size_t len, config_property_fn fn, void *ctx,
                            char *err, size_t err_len)
{
        assert(text || len == 0);
        assert(fn);
        struct text_buf logical = { NULL, 0, 0 };
        size_t pos = 0;
        uint32_t line = 0, start_line = 0;
        bool is_continued = false;
        int rc = 0;

        while (pos < len) {
                size_t start = pos;
                while (pos < len && text[pos] != '\n' && text[pos] != '\r')
                        pos++;
                size_t end = pos;
                if (pos < len)
                        pos += (text[pos] == '\r' && pos + 1 < len && text[pos + 1] == '\n') ? 2 : 1;
                line++;
                if (memchr(text + start, '\0', end - start)) {
                        config_set_err(err, err_len, "line %" PRIu32 ": NUL byte", line);
                        rc = -EINVAL;
                        goto out;
                }
                size_t s = start;
                while (s < end && is_prop_space(text[s]))
                        s++;
                if (!is_continued) {
                        if (s == end || text[s] == '#' || text[s] == '!')
                                continue;       /* blank line or comment */
                        logical.len = 0;
                        start_line = line;
                }
                /* An odd number of trailing backslashes continues the line. */
                size_t slashes = 0;
                while (end - slashes > s && text[end - 1 - slashes] == '\\')
                        slashes++;
                is_continued = slashes % 2 == 1;
                rc = text_buf_append(&logical, text + s, end - s - (is_continued ? 1 : 0));
                if (rc)
                        goto out;
                if (is_continued)
                        continue;
                rc = emit_property(logical.ptr, logical.len, start_line, fn, ctx, err, err_len);
                if (rc)
                        goto out;
        }
        if (is_continued)
                rc = emit_property(logical.ptr, logical.len, start_line, fn, ctx, err, err_len);
out:
        free(logical.ptr);
        return rc;
}
