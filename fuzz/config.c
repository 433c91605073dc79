/*
 * config.c - fuzz target: the broker's configuration (server/config.h) and
 * topic config validation (log/topic_config.h).
 *
 * Input: a server.properties text, then NUL-separated "key=value" overrides
 * (at most OVERRIDES_MAX), as `build/runnel FILE --override k=v ...` gets
 * them. The whole input is also given to the properties parser as it is,
 * NUL bytes included.
 *
 * What runs: config_parse_properties over the input, and every property it
 * yields through topic_config_validate and topic_config_apply (the path of
 * CreateTopics and AlterConfigs values); config_load with the text as the
 * file and the overrides; on success config_lookup of every key and
 * topic_config_build from the loaded topic defaults with the overrides as
 * topic overrides.
 *
 * Properties: no crash, no leak, no read out of bounds; every entry the
 * parser yields is a C string with a line number inside the text; a
 * refusal always comes with a message; topic_config_apply accepts exactly
 * what topic_config_validate accepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "log/topic_config.h"
#include "server/config.h"

#define OVERRIDES_MAX 16
#define ERR_BYTES 512

struct parse_ctx {
        size_t line_max;
        uint32_t count;
        struct topic_config topic;
};

static int on_property(void *arg, const char *key, const char *value, uint32_t line)
{
        struct parse_ctx *ctx = arg;
        FUZZ_CHECK(key != NULL && value != NULL, "NULL key or value");
        FUZZ_CHECK(line >= 1 && line <= ctx->line_max, "line %u of at most %zu", line, ctx->line_max);
        (void)strlen(key);
        (void)strlen(value);
        ctx->count++;

        char err1[ERR_BYTES] = "", err2[ERR_BYTES] = "";
        int valid = topic_config_validate(key, value, err1, sizeof(err1));
        FUZZ_CHECK(valid == 0 || err1[0] != '\0', "topic config '%s' refused without a message", key);
        struct topic_config before;
        memcpy(&before, &ctx->topic, sizeof(before));
        int applied = topic_config_apply(&ctx->topic, key, value, err2, sizeof(err2));
        FUZZ_CHECK((valid == 0) == (applied == 0), "'%s'='%s': validate %d, apply %d", key, value, valid,
                   applied);
        if (applied != 0)
                FUZZ_CHECK(memcmp(&before, &ctx->topic, sizeof(before)) == 0, "refused apply changed the config");
        return 0;
}

static int config_fd = -1;
static char config_path[64];
static FILE *diag;

static void setup_once(void)
{
        if (config_fd >= 0)
                return;
        config_fd = memfd_create("fuzz-server.properties", 0);
        FUZZ_CHECK(config_fd >= 0, "memfd_create");
        snprintf(config_path, sizeof(config_path), "/proc/self/fd/%d", config_fd);
        diag = fopen("/dev/null", "w");
        FUZZ_CHECK(diag != NULL, "/dev/null");
}

static void load(const char *text, size_t text_len, const char *const *overrides, size_t override_count)
{
        FUZZ_CHECK(ftruncate(config_fd, 0) == 0, "ftruncate");
        FUZZ_CHECK(pwrite(config_fd, text, text_len, 0) == (ssize_t)text_len, "pwrite");

        struct broker_config cfg;
        char err[ERR_BYTES] = "";
        int rc = config_load(&cfg, config_path, overrides, override_count, diag, err, sizeof(err));
        if (rc != 0) {
                FUZZ_CHECK(rc < 0 && err[0] != '\0', "config_load %d without a message", rc);
                return;
        }
        for (size_t i = 0; i < config_count_keys(); i++) {
                const struct config_def *def = config_get_key(i);
                const char *value;
                enum config_source source;
                FUZZ_CHECK(config_lookup(&cfg, def->name, &value, &source), "known key %s not found", def->name);
                FUZZ_CHECK(source == CONFIG_SOURCE_DEFAULT || source == CONFIG_SOURCE_STATIC_BROKER,
                           "%s: source %d", def->name, source);
                FUZZ_CHECK(config_find_key(def->name) == def, "%s: find_key", def->name);
        }
        struct topic_config topic;
        rc = topic_config_build(&topic, &cfg.topic_defaults, overrides, override_count, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || err[0] != '\0', "topic_config_build %d without a message", rc);
        config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        setup_once();
        char *all = (char *)fuzz_dup(data, size);

        struct parse_ctx ctx = { .line_max = 1 };
        for (size_t i = 0; i < size; i++)
                ctx.line_max += all[i] == '\n' || all[i] == '\r';
        topic_config_init_defaults(&ctx.topic);
        char err[ERR_BYTES] = "";
        int rc = config_parse_properties(all, size, on_property, &ctx, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "parse returned %d", rc);
        FUZZ_CHECK(rc == 0 || err[0] != '\0', "parse refused without a message");

        /* File text up to the first NUL; then the overrides, NUL-terminated
         * in a copy with a NUL after the last one. */
        size_t text_len = strnlen(all, size);
        char *rest = malloc(size - text_len + 1);
        memcpy(rest, all + text_len, size - text_len);
        rest[size - text_len] = '\0';
        const char *overrides[OVERRIDES_MAX];
        size_t override_count = 0;
        for (char *p = rest + (text_len < size ? 1 : 0); p < rest + (size - text_len) && override_count < OVERRIDES_MAX;
             p += strlen(p) + 1)
                overrides[override_count++] = p;
        load(all, text_len, overrides, override_count);

        free(rest);
        free(all);
        return 0;
}
