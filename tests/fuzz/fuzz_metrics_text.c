/*
 * libFuzzer target: the Prometheus text reader (common/metrics_text.c), which
 * `freeway status` runs on whatever a /metrics endpoint sends. On arbitrary
 * bytes: every string handed on lies inside the buffer, ends there and
 * overlaps no other, names are names and a sample's label names distinct,
 * the result is 0, -EINVAL or the callback's own value, a bad line is a line
 * of the input that can be bad, samples come one per sample line, a stop
 * mid-way hands on the same first samples, and each sample written back out
 * reads back the same. Then the same bytes drive a small registry (label
 * values, help, numbers, bounds) whose rendering must read back exactly.
 */
#include "fuzz.h"
#include "metrics.h"
#include "metrics_text.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_RC    12345
#define BAD_UNSET  (-7)
#define MAX_PRINTS 64

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static int name_char(char c, int first, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

static int valid_name(const char *s, int colon)
{
    if (!name_char(s[0], 1, colon))
        return 0;
    for (s++; *s; s++)
        if (!name_char(*s, 0, colon))
            return 0;
    return 1;
}

/* Appends s to out as a label value is written: \\, \" and \n escaped. */
static size_t put_escaped(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n')
            out[n++] = '\\';
        out[n++] = *s == '\n' ? 'n' : *s;
    }
    return n;
}

static size_t put_value(char *out, double v)
{
    if (isnan(v))
        return (size_t)sprintf(out, "NaN");
    if (isinf(v))
        return (size_t)sprintf(out, "%s", v > 0 ? "+Inf" : "-Inf");
    return (size_t)sprintf(out, "%.17g", v);
}

/* ---- part 1: arbitrary bytes --------------------------------------------- */

struct run {
    const char *buf; /* the parsed copy */
    size_t len;
    int n;       /* samples handed on */
    int stop_at; /* return STOP_RC at this sample; 0: never */
    /* The first samples' fingerprints, to compare a stopped run with a full one. */
    struct {
        size_t name_off;
        int nlabels;
        double value;
    } prints[MAX_PRINTS];
};

/* The string at p lies in the buffer and is NUL-terminated there; its end. */
static const char *check_str(const struct run *r, const char *p)
{
    if (p < r->buf || p >= r->buf + r->len)
        abort();
    const char *end = memchr(p, '\0', (size_t)(r->buf + r->len - p));
    if (end == NULL)
        abort();
    return end;
}

static int same_sample(const fw_metrics_sample_t *s, void *arg)
{
    const fw_metrics_sample_t *want = arg;
    if (strcmp(s->name, want->name) != 0 || s->nlabels != want->nlabels ||
        !same_double(s->value, want->value))
        abort();
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, want->labels[i].name) != 0 ||
            strcmp(s->labels[i].value, want->labels[i].value) != 0)
            abort();
    return 1; /* exactly one sample: a second would stop with 1 again */
}

/* Writes s back out as one line (labels escaped) and reads it back. */
static void check_rewrite(const fw_metrics_sample_t *s, size_t in_len)
{
    /* Escaping at most doubles a value; names and numbers are short. */
    size_t cap = 2 * in_len + 64 + 8 * FW_METRICS_TEXT_MAX_LABELS;
    char *line = malloc(cap);
    if (line == NULL)
        abort();
    size_t n = (size_t)sprintf(line, "%s", s->name);
    if (s->nlabels > 0 || (n & 1) != 0) {
        /* Empty braces sometimes, since the reader accepts them. */
        line[n++] = '{';
        for (int i = 0; i < s->nlabels; i++) {
            n += (size_t)sprintf(line + n, "%s%s=\"", i ? "," : "", s->labels[i].name);
            n += put_escaped(line + n, s->labels[i].value);
            line[n++] = '"';
        }
        line[n++] = '}';
    }
    line[n++] = ' ';
    n += put_value(line + n, s->value);
    line[n++] = '\n';
    if (n > cap)
        abort();
    int bad = BAD_UNSET;
    if (fw_metrics_text_parse(line, n, same_sample, (void *)s, &bad) != 1 || bad != BAD_UNSET)
        abort();
    free(line);
}

static int on_sample(const fw_metrics_sample_t *s, void *arg)
{
    struct run *r = arg;
    if (s->nlabels < 0 || s->nlabels > FW_METRICS_TEXT_MAX_LABELS)
        abort();
    /* Every string in the buffer, in order, none overlapping the next. */
    const char *end = check_str(r, s->name);
    if (!valid_name(s->name, 1))
        abort();
    for (int i = 0; i < s->nlabels; i++) {
        if (s->labels[i].name <= end)
            abort();
        end = check_str(r, s->labels[i].name);
        if (!valid_name(s->labels[i].name, 0))
            abort();
        if (s->labels[i].value <= end)
            abort();
        end = check_str(r, s->labels[i].value);
    }
    /* Label names are distinct, so a lookup finds each label's own value;
     * no label is named "". */
    for (int i = 0; i < s->nlabels; i++)
        if (fw_metrics_sample_label(s, s->labels[i].name) != s->labels[i].value)
            abort();
    if (fw_metrics_sample_label(s, "") != NULL)
        abort();
    if (r->n < MAX_PRINTS) {
        r->prints[r->n].name_off = (size_t)(s->name - r->buf);
        r->prints[r->n].nlabels = s->nlabels;
        r->prints[r->n].value = s->value;
    }
    r->n++;
    check_rewrite(s, r->len);
    return r->stop_at != 0 && r->n == r->stop_at ? STOP_RC : 0;
}

/* Parses an exact heap copy (so ASan sees a read past the end). */
static int parse_copy(const uint8_t *data, size_t size, struct run *r, int *bad)
{
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    if (size > 0)
        memcpy(copy, data, size);
    r->buf = copy;
    r->len = size;
    r->n = 0;
    *bad = BAD_UNSET;
    int rc = fw_metrics_text_parse(copy, size, on_sample, r, bad);
    free(copy);
    r->buf = NULL;
    return rc;
}

/*
 * What a line-by-line reading says of data: the number of lines, and of
 * sample lines (not blank, not a comment) before line `before`. Sets
 * *may_be_bad to whether line `before` can be refused: a sample line, one
 * holding a NUL, or a last line without its newline.
 */
static int count_lines(const uint8_t *data, size_t size, int before, int *samples, int *may_be_bad)
{
    int line = 0;
    *samples = 0;
    *may_be_bad = 0;
    for (size_t at = 0; at < size;) {
        line++;
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : size - at;
        int has_nul = memchr(data + at, '\0', n) != NULL;
        size_t content = n;
        if (content > 0 && data[at + content - 1] == '\r')
            content--;
        int sample = content > 0 && data[at] != '#';
        if (line < before && sample)
            (*samples)++;
        if (line == before)
            *may_be_bad = sample || has_nul || nl == NULL;
        at += n + (nl != NULL);
    }
    return line;
}

static void fuzz_bytes(const uint8_t *data, size_t size)
{
    static struct run full, stopped;
    int bad, samples, may_be_bad;
    full.stop_at = 0;
    int rc = parse_copy(data, size, &full, &bad);
    if (rc == 0) {
        /* A whole document: no NUL, its last line ended, a sample per sample line. */
        if (bad != BAD_UNSET)
            abort();
        if (size > 0 && (data[size - 1] != '\n' || memchr(data, '\0', size) != NULL))
            abort();
        count_lines(data, size, INT_MAX, &samples, &may_be_bad);
        if (samples != full.n)
            abort();
    } else if (rc == -EINVAL) {
        /* Every sample line before the bad one was handed on, none after. */
        int lines = count_lines(data, size, bad, &samples, &may_be_bad);
        if (bad < 1 || bad > lines || !may_be_bad || samples != full.n)
            abort();
    } else {
        abort(); /* this callback never stops the parse */
    }
    if (full.n == 0)
        return;
    /* Stopped at sample k: the callback's value, the same first k samples,
     * and no bad line. */
    stopped.stop_at = 1 + (int)(size % (size_t)full.n);
    rc = parse_copy(data, size, &stopped, &bad);
    if (rc != STOP_RC || stopped.n != stopped.stop_at || bad != BAD_UNSET)
        abort();
    for (int i = 0; i < stopped.n && i < MAX_PRINTS; i++)
        if (stopped.prints[i].name_off != full.prints[i].name_off ||
            stopped.prints[i].nlabels != full.prints[i].nlabels ||
            !same_double(stopped.prints[i].value, full.prints[i].value))
            abort();
}

/* ---- part 2: a registry the bytes describe, rendered and read back ------- */

/* The fuzz bytes as a stream; zeros once they run out. */
struct src {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct src *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

static uint64_t take_u64(struct src *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take(s);
    return v;
}

/* Small integers, fractions, the doubles that are hard to write, or any bits. */
static double take_double(struct src *s)
{
    static const double special[] = {NAN, INFINITY, -INFINITY, -0.0, DBL_MAX, DBL_MIN, 5e-324, 0.1};
    uint8_t kind = take(s);
    switch (kind % 4) {
    case 0:
        return (double)(int8_t)take(s);
    case 1:
        return take(s) / 8.0 - 16;
    case 2:
        return special[take(s) % 8];
    default: {
        uint64_t bits = take_u64(s);
        double v;
        memcpy(&v, &bits, sizeof(v));
        return v;
    }
    }
}

/*
 * UTF-8 text of fewer than cap bytes, up to a zero byte: ASCII bytes as
 * themselves, the others as a piece heavy in what needs escaping.
 */
static void take_text(struct src *s, char *out, size_t cap)
{
    static const char *const pieces[] = {
        "\\",
        "\"",
        "\n",
        "\\n",
        "\\\"",
        "\r\n",
        "\t",
        "\x7f",
        "caf\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x9a\x80",
        "{",
        "}",
        ",",
        "=",
        "# ",
    };
    size_t len = 0;
    for (;;) {
        uint8_t b = take(s);
        if (b == 0)
            break;
        const char *p = b < 0x80 ? (const char *)&b : pieces[b % 16];
        size_t plen = b < 0x80 ? 1 : strlen(p);
        if (len + plen >= cap)
            break;
        memcpy(out + len, p, plen);
        len += plen;
    }
    out[len] = '\0';
}

enum { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM, FAM_FN, NFAM };

static const char *const fam_names[NFAM] = {
    "freeway_fuzz_events_total",
    "freeway_fuzz_level_ratio",
    "freeway_fuzz_wait_seconds",
    "freeway_fuzz_inflight_bytes",
};

#define MAX_SERIES 12
#define MAX_BOUNDS 6
#define TEXT_CAP   96
#define MAX_WANT   (MAX_SERIES * (MAX_BOUNDS + 3))

/* One sample as it should read back. */
struct want {
    char name[64];
    const char *i, *v, *w; /* label values (w for gauges only) */
    int le;                /* histogram buckets: the bound's index (nbounds: +Inf); else -1 */
    double value;
};

struct series {
    int fam;
    char i[8], v[TEXT_CAP], w[TEXT_CAP];
    double value; /* gauges, callbacks */
    uint64_t count;
    uint64_t buckets[MAX_BOUNDS + 1];
    double sum;
};

static double read_value(void *arg)
{
    return *(double *)arg;
}

static struct want *add_want(struct want *ws, int *n, const struct series *se, const char *suffix,
                             double value)
{
    if (*n == MAX_WANT)
        abort();
    struct want *w = &ws[(*n)++];
    snprintf(w->name, sizeof(w->name), "%s%s", fam_names[se->fam], suffix);
    w->i = se->i;
    w->v = se->v;
    w->w = se->fam == FAM_GAUGE ? se->w : NULL;
    w->le = -1;
    w->value = value;
    return w;
}

/* Checks one parsed sample against what it should be. */
static void check_want(const fw_metrics_sample_t *s, const struct want *w, const double *bounds,
                       size_t nbounds)
{
    int n = 2 + (w->w != NULL) + (w->le >= 0);
    if (strcmp(s->name, w->name) != 0 || s->nlabels != n || !same_double(s->value, w->value))
        abort();
    if (strcmp(s->labels[0].name, "i") != 0 || strcmp(s->labels[0].value, w->i) != 0 ||
        strcmp(s->labels[1].name, "v") != 0 || strcmp(s->labels[1].value, w->v) != 0)
        abort();
    if (w->w != NULL && (strcmp(s->labels[2].name, "w") != 0 || strcmp(s->labels[2].value, w->w)))
        abort();
    if (w->le >= 0) {
        const fw_metrics_label_t *le = &s->labels[n - 1];
        if (strcmp(le->name, "le") != 0)
            abort();
        if ((size_t)w->le == nbounds) {
            if (strcmp(le->value, "+Inf") != 0)
                abort();
        } else {
            /* The bound is written so that it reads back as itself. */
            char *end;
            double b = strtod(le->value, &end);
            if (*end != '\0' || !same_double(b, bounds[w->le]))
                abort();
        }
    }
}

struct collected {
    fw_metrics_sample_t s[MAX_WANT];
    int n;
};

static int collect(const fw_metrics_sample_t *s, void *arg)
{
    struct collected *c = arg;
    if (c->n == MAX_WANT)
        abort();
    c->s[c->n++] = *s;
    return 0;
}

static void fuzz_registry(const uint8_t *data, size_t size)
{
    static struct series series[MAX_SERIES];
    static struct want wants[MAX_WANT];
    static struct collected got;
    struct src src = {data, size};
    char help[TEXT_CAP];
    double bounds[MAX_BOUNDS];
    size_t nbounds = 0;
    int have_bounds = 0;

    fw_metrics_t *reg = fw_metrics_create();
    if (reg == NULL)
        abort();
    take_text(&src, help, sizeof(help));
    int nseries = take(&src) % (MAX_SERIES + 1);
    for (int k = 0; k < nseries; k++) {
        struct series *se = &series[k];
        memset(se, 0, sizeof(*se));
        se->fam = take(&src) % NFAM;
        snprintf(se->i, sizeof(se->i), "%d", k); /* keeps every series distinct */
        take_text(&src, se->v, sizeof(se->v));
        const char *name = fam_names[se->fam];
        int rc;
        switch (se->fam) {
        case FAM_COUNTER: {
            fw_metric_counter_t *c;
            se->count = take_u64(&src) >> (take(&src) % 64);
            rc = fw_metrics_counter(reg, &c, name, help, "i", se->i, "v", se->v, NULL);
            if (rc == 0)
                fw_metric_add(c, se->count);
            break;
        }
        case FAM_GAUGE: {
            fw_metric_gauge_t *g;
            take_text(&src, se->w, sizeof(se->w));
            se->value = take_double(&src);
            rc = fw_metrics_gauge(reg, &g, name, help, "i", se->i, "v", se->v, "w", se->w, NULL);
            if (rc == 0)
                fw_metric_set(g, se->value);
            break;
        }
        case FAM_HISTOGRAM: {
            fw_metric_histogram_t *h;
            if (!have_bounds) {
                /* Finite and strictly increasing, as the registry requires. */
                nbounds = take(&src) % (MAX_BOUNDS + 1);
                for (size_t b = 0; b < nbounds; b++) {
                    double x = take_double(&src);
                    if (!isfinite(x))
                        x = 0;
                    if (b > 0) {
                        x = bounds[b - 1] + fabs(x);
                        if (!isfinite(x) || !(x > bounds[b - 1]))
                            x = nextafter(bounds[b - 1], INFINITY);
                        if (!isfinite(x)) {
                            nbounds = b;
                            break;
                        }
                    }
                    bounds[b] = x;
                }
                have_bounds = 1;
            }
            rc = fw_metrics_histogram(reg, &h, name, help, bounds, nbounds, "i", se->i, "v", se->v,
                                      NULL);
            int nobs = rc == 0 ? take(&src) % 6 : 0;
            for (int o = 0; o < nobs; o++) {
                double x = take_double(&src);
                fw_metric_observe(h, x);
                size_t b = 0;
                while (b < nbounds && !(x <= bounds[b]))
                    b++;
                se->buckets[b]++;
                se->sum += x;
                se->count++;
            }
            break;
        }
        default:
            se->value = take_double(&src);
            rc = fw_metrics_gauge_fn(reg, name, help, read_value, &se->value, "i", se->i, "v",
                                     se->v, NULL);
            break;
        }
        if (rc != 0)
            abort(); /* valid names, UTF-8 text, distinct series: always accepted */
    }

    /* The rendering: families in the order they first appeared, each with
     * its series in registration order. */
    int nwant = 0;
    int order[NFAM], nfam = 0;
    for (int k = 0; k < nseries; k++) {
        int seen = 0;
        for (int f = 0; f < nfam; f++)
            seen |= order[f] == series[k].fam;
        if (!seen)
            order[nfam++] = series[k].fam;
    }
    for (int f = 0; f < nfam; f++) {
        for (int k = 0; k < nseries; k++) {
            const struct series *se = &series[k];
            if (se->fam != order[f])
                continue;
            if (se->fam == FAM_COUNTER) {
                add_want(wants, &nwant, se, "", (double)se->count);
            } else if (se->fam == FAM_HISTOGRAM) {
                uint64_t cum = 0;
                for (size_t b = 0; b <= nbounds; b++) {
                    cum += se->buckets[b];
                    add_want(wants, &nwant, se, "_bucket", (double)cum)->le = (int)b;
                }
                add_want(wants, &nwant, se, "_sum", se->sum);
                add_want(wants, &nwant, se, "_count", (double)se->count);
            } else {
                add_want(wants, &nwant, se, "", se->value);
            }
        }
    }

    fw_buf_t out = FW_BUF_INIT;
    if (fw_metrics_render(reg, &out) != 0)
        abort();
    char *text = malloc(out.len ? out.len : 1);
    if (text == NULL)
        abort();
    if (out.len > 0)
        memcpy(text, out.data, out.len);
    got.n = 0;
    int bad = BAD_UNSET;
    if (fw_metrics_text_parse(text, out.len, collect, &got, &bad) != 0 || got.n != nwant)
        abort();
    for (int k = 0; k < nwant; k++)
        check_want(&got.s[k], &wants[k], bounds, nbounds);
    free(text);
    fw_buf_free(&out);
    fw_metrics_destroy(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_bytes(data, size);
    fuzz_registry(data, size);
    return 0;
}
