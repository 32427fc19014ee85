/* JSON output shared by the commands (see cli.h). */
#include "cli.h"

#include "utf8.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

void fw_cli_json_string(FILE *out, const void *text, size_t len)
{
    const uint8_t *s = text;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        uint8_t ch = s[i];
        size_t n = fw_utf8_char_len(s + i, len - i);
        if (n == 0) {
            fputs("\xef\xbf\xbd", out); /* U+FFFD: JSON text is UTF-8 */
            i++;
            continue;
        }
        i += n;
        if (n > 1) {
            fwrite(s + i - n, 1, n, out);
            continue;
        }
        switch (ch) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\b':
            fputs("\\b", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

void fw_cli_json_init(fw_cli_json_t *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
}

/* The comma before a value and its "key": (no key inside an array or at the top). */
static void json_key(fw_cli_json_t *j, const char *key)
{
    if (j->depth > 0) {
        if (j->more[j->depth - 1])
            fputc(',', j->out);
        j->more[j->depth - 1] = 1;
    }
    if (key != NULL) {
        fw_cli_json_string(j->out, key, strlen(key));
        fputc(':', j->out);
    }
}

static void json_open(fw_cli_json_t *j, const char *key, char open, char close)
{
    /* The commands' documents are shallower; deeper would be a bug here. */
    assert(j->depth < FW_CLI_JSON_DEPTH);
    if (j->depth == FW_CLI_JSON_DEPTH)
        return;
    json_key(j, key);
    fputc(open, j->out);
    j->close[j->depth] = close;
    j->more[j->depth] = 0;
    j->depth++;
}

void fw_cli_json_object(fw_cli_json_t *j, const char *key)
{
    json_open(j, key, '{', '}');
}

void fw_cli_json_array(fw_cli_json_t *j, const char *key)
{
    json_open(j, key, '[', ']');
}

void fw_cli_json_end(fw_cli_json_t *j)
{
    if (j->depth == 0)
        return;
    j->depth--;
    fputc(j->close[j->depth], j->out);
}

void fw_cli_json_str(fw_cli_json_t *j, const char *key, const char *s)
{
    json_key(j, key);
    fw_cli_json_string(j->out, s, strlen(s));
}

void fw_cli_json_num(fw_cli_json_t *j, const char *key, double v)
{
    json_key(j, key);
    if (isfinite(v))
        fprintf(j->out, "%.17g", v);
    else
        fputs("null", j->out);
}

void fw_cli_json_uint(fw_cli_json_t *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->out, "%" PRIu64, v);
}

void fw_cli_json_int(fw_cli_json_t *j, const char *key, int64_t v)
{
    json_key(j, key);
    fprintf(j->out, "%" PRId64, v);
}

void fw_cli_json_bool(fw_cli_json_t *j, const char *key, int v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->out);
}

void fw_cli_json_null(fw_cli_json_t *j, const char *key)
{
    json_key(j, key);
    fputs("null", j->out);
}
