/* Reading Prometheus text format (see metrics_text.h). */
#include "metrics_text.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric or label name at *p (colons only in metric names); its end, or NULL. */
static char *scan_name(char *p, int colon)
{
    if (!name_start(*p) || (!colon && *p == ':'))
        return NULL;
    while (name_char(*p) && (colon || *p != ':'))
        p++;
    return p;
}

/* The quoted label value at p, unescaped in place; past its closing quote, or NULL. */
static char *scan_value(char *p, const char **value)
{
    if (*p != '"')
        return NULL;
    char *in = p + 1, *out = p + 1;
    *value = out;
    for (;;) {
        char c = *in++;
        if (c == '\0')
            return NULL;
        if (c == '"')
            break;
        if (c == '\\') {
            c = *in++;
            if (c == 'n')
                c = '\n';
            else if (c != '\\' && c != '"')
                return NULL;
        }
        *out++ = c;
    }
    *out = '\0';
    return in;
}

/* A sample value: a float (NaN, +Inf, -Inf as Prometheus writes them). */
static char *scan_number(char *p, double *v)
{
    static const struct {
        const char *text;
        double v;
    } special[] = {{"NaN", NAN}, {"+Inf", INFINITY}, {"-Inf", -INFINITY}, {"Inf", INFINITY}};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        size_t n = strlen(special[i].text);
        if (strncmp(p, special[i].text, n) == 0 && (p[n] == '\0' || p[n] == ' ')) {
            *v = special[i].v;
            return p + n;
        }
    }
    /* strtod would take "nan(...)", hex floats and leading blanks: digits, sign, '.', 'e' only. */
    char *q = p;
    while ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == '.' || *q == 'e' ||
           *q == 'E')
        q++;
    if (q == p)
        return NULL;
    char *end;
    *v = strtod(p, &end);
    return end == q ? q : NULL;
}

/* One sample line, NUL-terminated, into s. 0 or -EINVAL. */
static int parse_line(char *p, fw_metrics_sample_t *s)
{
    char *end = scan_name(p, 1);
    if (end == NULL)
        return -EINVAL;
    s->name = p;
    s->nlabels = 0;
    char after = *end;
    *end = '\0';
    p = end + 1;
    if (after == '{') {
        while (*p != '}') {
            if (s->nlabels == FW_METRICS_TEXT_MAX_LABELS)
                return -EINVAL;
            fw_metrics_label_t *l = &s->labels[s->nlabels++];
            end = scan_name(p, 0);
            if (end == NULL || *end != '=')
                return -EINVAL;
            l->name = p;
            *end = '\0';
            /* A label set has each name once, as Prometheus's own reader requires;
             * fw_metrics_sample_label would see only the first. */
            for (int i = 0; i < s->nlabels - 1; i++)
                if (strcmp(s->labels[i].name, l->name) == 0)
                    return -EINVAL;
            p = scan_value(end + 1, &l->value);
            if (p == NULL)
                return -EINVAL;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return -EINVAL;
        }
        p++;
        if (*p != ' ')
            return -EINVAL;
        p++;
    } else if (after != ' ') {
        return -EINVAL;
    }
    while (*p == ' ')
        p++;
    p = scan_number(p, &s->value);
    if (p == NULL)
        return -EINVAL;
    if (*p == ' ') {
        /* a timestamp: an integer of milliseconds */
        while (*p == ' ')
            p++;
        if (*p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
        while (*p == ' ')
            p++;
    }
    return *p == '\0' ? 0 : -EINVAL;
}

int fw_metrics_text_parse(char *text, size_t len, fw_metrics_sample_cb cb, void *arg, int *bad_line)
{
    int line_no = 0;
    size_t at = 0;
    while (at < len) {
        line_no++;
        char *line = text + at;
        char *nl = memchr(line, '\n', len - at);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - at;
        at += n + (nl != NULL);
        if (memchr(line, '\0', n) != NULL)
            goto bad;
        if (nl == NULL) {
            /* The last line has no newline: it must still end in the buffer. */
            if (n > 0)
                goto bad;
            break;
        }
        *nl = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        fw_metrics_sample_t s;
        if (parse_line(line, &s) < 0)
            goto bad;
        int rc = cb(&s, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
bad:
    if (bad_line != NULL)
        *bad_line = line_no;
    return -EINVAL;
}

const char *fw_metrics_sample_label(const fw_metrics_sample_t *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}
