/*
 * The Prometheus text reader (metrics_text.h): samples, labels and escapes,
 * special values, timestamps, comments and CRLF; every kind of bad line,
 * refused with its line number; a callback that stops the parse; and what
 * fw_metrics_render writes, read back exactly.
 */
#include "fwtest.h"

#include "metrics.h"
#include "metrics_text.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_SEEN 512

/* What the callback saw: each sample by value (its strings point into the
 * parsed copy, which lives until the test ends). */
struct seen {
    fw_metrics_sample_t s[MAX_SEEN];
    int n;
    int stop_at; /* return stop_rc from this sample on (1-based); 0: never */
    int stop_rc;
};

static int collect(const fw_metrics_sample_t *s, void *arg)
{
    struct seen *seen = arg;
    if (seen->n == MAX_SEEN)
        FWT_FAIL("more than %d samples", MAX_SEEN);
    seen->s[seen->n++] = *s;
    return seen->stop_at != 0 && seen->n >= seen->stop_at ? seen->stop_rc : 0;
}

/* Parses an exact heap copy of doc[0..len), so ASan sees a read past the
 * end; the copy is freed when the test ends. */
static int parse_n(const char *doc, size_t len, struct seen *seen, int *bad_line)
{
    char *copy = malloc(len ? len : 1);
    FWT_ASSERT(copy != NULL);
    fwt_defer(free, copy);
    if (len > 0)
        memcpy(copy, doc, len);
    seen->n = 0;
    return fw_metrics_text_parse(copy, len, collect, seen, bad_line);
}

static int parse(const char *doc, struct seen *seen, int *bad_line)
{
    return parse_n(doc, strlen(doc), seen, bad_line);
}

/* The same double: NaN matches any NaN, and 0 does not match -0. */
static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static void assert_double(const char *file, int line, double got, double want)
{
    if (!same_double(got, want))
        fwt_fail(file, line, "value %.17g, want %.17g", got, want);
}

#define ASSERT_DOUBLE(got, want) assert_double(__FILE__, __LINE__, (got), (want))

/*
 * Checks one sample: its name, value, and label name/value pairs ended by
 * NULL, in order.
 */
static void assert_sample(const char *file, int line, const fw_metrics_sample_t *s,
                          const char *name, double value, ...)
{
    if (strcmp(s->name, name) != 0)
        fwt_fail(file, line, "name \"%s\", want \"%s\"", s->name, name);
    assert_double(file, line, s->value, value);
    va_list ap;
    va_start(ap, value);
    int n = 0;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        if (n >= s->nlabels)
            fwt_fail(file, line, "%s: %d labels, want label %s", name, s->nlabels, k);
        if (strcmp(s->labels[n].name, k) != 0 || strcmp(s->labels[n].value, v) != 0)
            fwt_fail(file, line, "%s: label %d is %s=\"%s\", want %s=\"%s\"", name, n,
                     s->labels[n].name, s->labels[n].value, k, v);
        n++;
    }
    va_end(ap);
    if (n != s->nlabels)
        fwt_fail(file, line, "%s: %d labels, want %d", name, s->nlabels, n);
}

#define ASSERT_SAMPLE(s, ...) assert_sample(__FILE__, __LINE__, (s), __VA_ARGS__, NULL)

FWT_TEST(samples_without_labels)
{
    struct seen seen = {0};
    int bad = -1;
    FWT_ASSERT_OK(parse("freeway_up 1\n"
                        "a:b_c9 2.5\n"
                        "_x -3e-7\n"
                        "y  12\n",
                        &seen, &bad));
    FWT_ASSERT_INT_EQ(bad, -1); /* untouched on success */
    FWT_ASSERT_INT_EQ(seen.n, 4);
    ASSERT_SAMPLE(&seen.s[0], "freeway_up", 1);
    ASSERT_SAMPLE(&seen.s[1], "a:b_c9", 2.5);
    ASSERT_SAMPLE(&seen.s[2], "_x", -3e-7);
    ASSERT_SAMPLE(&seen.s[3], "y", 12);
}

FWT_TEST(an_empty_document_has_no_samples)
{
    struct seen seen = {0};
    FWT_ASSERT_OK(parse_n(NULL, 0, &seen, NULL));
    FWT_ASSERT_OK(parse("\n\n", &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 0);
}

FWT_TEST(samples_with_labels)
{
    struct seen seen = {0};
    FWT_ASSERT_OK(parse("m{a=\"x\"} 1\n"
                        "m{a=\"x\",b=\"\",c_9=\"y z\"} 2\n"
                        "m{a=\"x\",} 3\n" /* a trailing comma is allowed */
                        "m{} 4\n"
                        "m:n{le=\"+Inf\",A=\"{}=,#\"} 5\n",
                        &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 5);
    ASSERT_SAMPLE(&seen.s[0], "m", 1, "a", "x");
    ASSERT_SAMPLE(&seen.s[1], "m", 2, "a", "x", "b", "", "c_9", "y z");
    ASSERT_SAMPLE(&seen.s[2], "m", 3, "a", "x");
    ASSERT_SAMPLE(&seen.s[3], "m", 4);
    ASSERT_SAMPLE(&seen.s[4], "m:n", 5, "le", "+Inf", "A", "{}=,#");
    FWT_ASSERT_STR_EQ(fw_metrics_sample_label(&seen.s[1], "c_9"), "y z");
    FWT_ASSERT_STR_EQ(fw_metrics_sample_label(&seen.s[1], "b"), "");
    FWT_ASSERT(fw_metrics_sample_label(&seen.s[1], "c") == NULL);
    FWT_ASSERT(fw_metrics_sample_label(&seen.s[3], "a") == NULL);
}

FWT_TEST(label_values_are_unescaped)
{
    struct seen seen = {0};
    FWT_ASSERT_OK(parse("m{p=\"C:\\\\dir \\\"x\\\"\\nend\",q=\"\\\\n\",r=\"\\\\\\\\\"} 1\n"
                        "m{p=\"\\n\\n\\\"\",q=\"caf\xc3\xa9 \xf0\x9f\x9a\x80\",r=\"a\tb\"} 2\n",
                        &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 2);
    /* The labels after an unescaped one are intact (it shrinks in place). */
    ASSERT_SAMPLE(&seen.s[0], "m", 1, "p", "C:\\dir \"x\"\nend", "q", "\\n", "r", "\\\\");
    ASSERT_SAMPLE(&seen.s[1], "m", 2, "p", "\n\n\"", "q", "caf\xc3\xa9 \xf0\x9f\x9a\x80", "r",
                  "a\tb");
}

FWT_TEST(special_and_exponent_values)
{
    struct seen seen = {0};
    FWT_ASSERT_OK(parse("a NaN\n"
                        "b +Inf\n"
                        "c -Inf\n"
                        "d Inf\n"
                        "e 1e+21\n"
                        "f -1.5E-3\n"
                        "g -0\n"
                        "h .5\n"
                        "i 18446744073709551615\n"
                        "j 4.9406564584124654e-324\n"
                        "k 1.7976931348623157e+308\n"
                        "l{x=\"y\"} NaN 17\n",
                        &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 12);
    ASSERT_SAMPLE(&seen.s[0], "a", NAN);
    ASSERT_SAMPLE(&seen.s[1], "b", INFINITY);
    ASSERT_SAMPLE(&seen.s[2], "c", -INFINITY);
    ASSERT_SAMPLE(&seen.s[3], "d", INFINITY);
    ASSERT_SAMPLE(&seen.s[4], "e", 1e21);
    ASSERT_SAMPLE(&seen.s[5], "f", -1.5e-3);
    ASSERT_SAMPLE(&seen.s[6], "g", -0.0);
    ASSERT_SAMPLE(&seen.s[7], "h", 0.5);
    ASSERT_SAMPLE(&seen.s[8], "i", 18446744073709551615.0);
    ASSERT_SAMPLE(&seen.s[9], "j", 4.9406564584124654e-324);
    ASSERT_SAMPLE(&seen.s[10], "k", DBL_MAX);
    ASSERT_SAMPLE(&seen.s[11], "l", NAN, "x", "y");
}

FWT_TEST(timestamps_are_accepted_and_ignored)
{
    struct seen seen = {0};
    FWT_ASSERT_OK(parse("a 1 1700000000000\n"
                        "b{x=\"y\"} 2 -5\n"
                        "c +Inf   0\n"
                        "d NaN 99999999999999999999999999\n"
                        "e 3 0 \n",
                        &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 5);
    ASSERT_SAMPLE(&seen.s[0], "a", 1);
    ASSERT_SAMPLE(&seen.s[1], "b", 2, "x", "y");
    ASSERT_SAMPLE(&seen.s[2], "c", INFINITY);
    ASSERT_SAMPLE(&seen.s[3], "d", NAN);
    ASSERT_SAMPLE(&seen.s[4], "e", 3);
}

FWT_TEST(comments_and_blank_lines_are_skipped)
{
    struct seen seen = {0};
    int bad = 0;
    const char *doc = "# HELP m Help with \\\\ and \\n and {braces} and \"quotes\".\n"
                      "# TYPE m counter\n"
                      "\n"
                      "#\n"
                      "#TYPE without a blank, and m{a=\"unclosed 1\n"
                      "## double\n"
                      "m 1\n"
                      "\n"
                      "# bad lines are still counted after comments\n"
                      "m{ 2\n";
    FWT_ASSERT_INT_EQ(parse(doc, &seen, &bad), -EINVAL);
    FWT_ASSERT_INT_EQ(bad, 10);
    FWT_ASSERT_INT_EQ(seen.n, 1);
    ASSERT_SAMPLE(&seen.s[0], "m", 1);
}

FWT_TEST(crlf_line_ends)
{
    struct seen seen = {0};
    int bad = 0;
    FWT_ASSERT_OK(parse("# HELP m x\r\n"
                        "# TYPE m counter\r\n"
                        "m 1\r\n"
                        "\r\n"
                        "m{a=\"b\\\\\"} 2 1700000000000\r\n"
                        "m{a=\"x\ry\"} NaN\r\n", /* a CR inside a value is a character */
                        &seen, NULL));
    FWT_ASSERT_INT_EQ(seen.n, 3);
    ASSERT_SAMPLE(&seen.s[0], "m", 1);
    ASSERT_SAMPLE(&seen.s[1], "m", 2, "a", "b\\");
    ASSERT_SAMPLE(&seen.s[2], "m", NAN, "a", "x\ry");
    /* One CR ends a line; a second, or one in the middle, is junk. */
    FWT_ASSERT_INT_EQ(parse("m 1\r\nm 2\r\r\n", &seen, &bad), -EINVAL);
    FWT_ASSERT_INT_EQ(bad, 2);
    FWT_ASSERT_INT_EQ(parse("m 1\r2\n", &seen, &bad), -EINVAL);
    FWT_ASSERT_INT_EQ(bad, 1);
}

/* Every line here is refused; each is tried as the fourth line of a document. */
static const char *const bad_lines[] = {
    /* names */
    "1m 1",
    "m-x 1",
    "m.x 1",
    "{a=\"b\"} 1",
    "\xc3\xa9 1",
    "HELP m x",
    "m",
    /* braces and label lists */
    "m{a=\"b\" 1",
    "m{a=\"b\"",
    "m{a=\"b\",",
    "m{a=\"b\",c",
    "m{ 1",
    "m{",
    "m{a=\"b\"}} 1",
    "m{{a=\"b\"} 1",
    "m{a=\"b\"c=\"d\"} 1",
    "m{a=\"b\",,c=\"d\"} 1",
    "m{,} 1",
    "m{a} 1",
    "m{a=} 1",
    "m{=\"b\"} 1",
    "m{a=b} 1",
    "m{1a=\"b\"} 1",
    "m{a:b=\"c\"} 1",
    "m{:a=\"c\"} 1",
    "m{a-b=\"c\"} 1",
    "m{a=\"unclosed} 1",
    /* a label name twice (fw_metrics_sample_label would see only the first) */
    "m{a=\"1\",a=\"2\"} 1",
    "m{a=\"1\",b=\"2\",a=\"1\"} 1",
    "m{le=\"1\",le=\"+Inf\"} 1",
    /* escapes */
    "m{a=\"\\t\"} 1",
    "m{a=\"\\x41\"} 1",
    "m{a=\"\\u00e9\"} 1",
    "m{a=\"\\N\"} 1",
    "m{a=\"x\\\"} 1", /* the closing quote escaped: unclosed */
    "m{a=\"\\",
    /* missing values */
    "m ",
    "m  ",
    "m{a=\"b\"}",
    "m{a=\"b\"} ",
    "m{a=\"b\"}1",
    "m{a=\"b\"}  ",
    /* values strtod would take but the format does not */
    "m 0x10",
    "m 0X1p4",
    "m 0x1.8p1",
    "m nan",
    "m nan(123)",
    "m NaN(123)",
    "m -nan",
    "m -NaN",
    "m inf",
    "m +inf",
    "m Infinity",
    "m -Infinity",
    "m +Infinity",
    "m \v1",
    "m \f1",
    "m \r1",
    /* values that are not numbers at all */
    "m x",
    "m 1x",
    "m 1f",
    "m 1_000",
    "m 1,5",
    "m 1e",
    "m 1e+",
    "m .",
    "m +",
    "m -",
    "m --1",
    "m +-1",
    "m 1.2.3",
    "m 1e5e5",
    "m 1-2",
    "m NaNa",
    "m +Inff",
    "m Inf1",
    /* trailing junk and bad timestamps */
    "m 1 x",
    "m 1 2 3",
    "m 1 2 x",
    "m 1 1.5",
    "m 1 1e3",
    "m 1 -",
    "m 1 --1",
    "m 1 0x10",
    "m 1 NaN",
    "m{a=\"b\"} 1 junk",
};

FWT_TEST(bad_lines_are_refused_with_their_number)
{
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        char doc[256];
        struct seen seen = {0};
        int bad = 0;
        snprintf(doc, sizeof(doc), "# TYPE m gauge\nm 1\n\n%s\nm 2\n", bad_lines[i]);
        int rc = parse(doc, &seen, &bad);
        if (rc != -EINVAL || bad != 4)
            FWT_FAIL("\"%s\": rc %d, bad line %d; want -EINVAL at line 4", bad_lines[i], rc, bad);
        /* The lines before it were handed on; none after it. */
        FWT_ASSERT_INT_EQ(seen.n, 1);
        ASSERT_SAMPLE(&seen.s[0], "m", 1);
    }
}

FWT_TEST(bad_line_may_be_null)
{
    struct seen seen = {0};
    FWT_ASSERT_INT_EQ(parse("m 1\nm{\n", &seen, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(seen.n, 1);
}

FWT_TEST(nul_bytes_inside_a_line_are_refused)
{
    static const struct {
        const char *doc;
        size_t len;
        int bad_line;
    } cases[] = {
#define NUL_CASE(s, line) {s, sizeof(s) - 1, line}
        NUL_CASE("m 1\nm\0 2\n", 2),
        NUL_CASE("m 1\n\0m 2\n", 2),
        NUL_CASE("m 1\nm 2\0\n", 2),
        NUL_CASE("m 1\nm 2 \0\n", 2),
        NUL_CASE("m 1\nm 2 5\0\n", 2),
        NUL_CASE("m 1\nm{a=\"x\0y\"} 2\n", 2),
        NUL_CASE("m 1\nm{a\0=\"x\"} 2\n", 2),
        NUL_CASE("m 1\n# a comment\0\n", 2),
        NUL_CASE("m 1\n\0\n", 2),
        NUL_CASE("m 1\n\r\0\n", 2),
        NUL_CASE("m 1\n\n\n\0", 4),
#undef NUL_CASE
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen seen = {0};
        int bad = 0;
        int rc = parse_n(cases[i].doc, cases[i].len, &seen, &bad);
        if (rc != -EINVAL || bad != cases[i].bad_line)
            FWT_FAIL("case %zu: rc %d, bad line %d; want -EINVAL at line %d", i, rc, bad,
                     cases[i].bad_line);
        FWT_ASSERT_INT_EQ(seen.n, 1);
    }
}

FWT_TEST(the_last_line_must_end_with_a_newline)
{
    static const struct {
        const char *doc;
        int bad_line;
    } cases[] = {
        {"m 1", 1},     {"m 1\nn 2", 2}, {"m 1\n# end", 2}, {"m 1\n#", 2},
        {"m 1\n\r", 2}, {"m 1\n\n ", 3}, {"m 1\r", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen seen = {0};
        int bad = 0;
        int rc = parse(cases[i].doc, &seen, &bad);
        if (rc != -EINVAL || bad != cases[i].bad_line)
            FWT_FAIL("case %zu: rc %d, bad line %d; want -EINVAL at line %d", i, rc, bad,
                     cases[i].bad_line);
    }
}

/* A sample line with n labels l0="0",l1="1"...; its value is n. */
static void labels_line(char *out, size_t cap, int n)
{
    size_t at = (size_t)snprintf(out, cap, "m{");
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(out + at, cap - at, "l%d=\"%d\",", i, i);
    snprintf(out + at, cap - at, "} %d\n", n);
}

FWT_TEST(at_most_max_labels)
{
    char doc[1024];
    struct seen seen = {0};
    int bad = 0;
    labels_line(doc, sizeof(doc), FW_METRICS_TEXT_MAX_LABELS);
    FWT_ASSERT_OK(parse(doc, &seen, &bad));
    FWT_ASSERT_INT_EQ(seen.n, 1);
    FWT_ASSERT_INT_EQ(seen.s[0].nlabels, FW_METRICS_TEXT_MAX_LABELS);
    for (int i = 0; i < FW_METRICS_TEXT_MAX_LABELS; i++) {
        char name[8], value[8];
        snprintf(name, sizeof(name), "l%d", i);
        snprintf(value, sizeof(value), "%d", i);
        FWT_ASSERT_STR_EQ(seen.s[0].labels[i].name, name);
        FWT_ASSERT_STR_EQ(seen.s[0].labels[i].value, value);
    }
    ASSERT_DOUBLE(seen.s[0].value, FW_METRICS_TEXT_MAX_LABELS);

    size_t at = (size_t)snprintf(doc, sizeof(doc), "m 1\n");
    labels_line(doc + at, sizeof(doc) - at, FW_METRICS_TEXT_MAX_LABELS + 1);
    FWT_ASSERT_INT_EQ(parse(doc, &seen, &bad), -EINVAL);
    FWT_ASSERT_INT_EQ(bad, 2);
    FWT_ASSERT_INT_EQ(seen.n, 1);
}

FWT_TEST(the_callback_stops_the_parse)
{
    const char *doc = "a 1\nb 2\nc 3\n";
    struct seen seen = {.stop_at = 2, .stop_rc = 7};
    int bad = -1;
    FWT_ASSERT_INT_EQ(parse(doc, &seen, &bad), 7);
    FWT_ASSERT_INT_EQ(seen.n, 2);
    FWT_ASSERT_INT_EQ(bad, -1);
    seen.stop_at = 3;
    seen.stop_rc = -ECANCELED;
    FWT_ASSERT_INT_EQ(parse(doc, &seen, &bad), -ECANCELED);
    FWT_ASSERT_INT_EQ(seen.n, 3);
    /* A stop before a bad line wins: the bad line is never read. */
    seen.stop_at = 1;
    seen.stop_rc = 1;
    FWT_ASSERT_INT_EQ(parse("a 1\nb{\n", &seen, &bad), 1);
    FWT_ASSERT_INT_EQ(seen.n, 1);
    FWT_ASSERT_INT_EQ(bad, -1);
}

/* ---- the renderer's output read back ------------------------------------- */

static void destroy_reg(void *arg)
{
    fw_metrics_destroy(arg);
}

static fw_metrics_t *new_reg(void)
{
    fw_metrics_t *reg = fw_metrics_create();
    FWT_ASSERT(reg != NULL);
    fwt_defer(destroy_reg, reg);
    return reg;
}

/* One series as it should read back: a name, label pairs, a value. */
struct want {
    char name[128];
    char labels[FW_METRICS_MAX_LABELS + 1][2][256];
    int nlabels;
    double value;
};

struct wants {
    struct want w[MAX_SEEN];
    int n;
};

/* Appends a wanted sample: label name/value pairs ended by NULL. */
static void want(struct wants *ws, const char *name, double value, ...)
{
    FWT_ASSERT(ws->n < MAX_SEEN);
    struct want *w = &ws->w[ws->n++];
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->value = value;
    va_list ap;
    va_start(ap, value);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        FWT_ASSERT(w->nlabels <= FW_METRICS_MAX_LABELS);
        FWT_ASSERT(strlen(v) < sizeof(w->labels[0][1]));
        snprintf(w->labels[w->nlabels][0], sizeof(w->labels[0][0]), "%s", k);
        snprintf(w->labels[w->nlabels][1], sizeof(w->labels[0][1]), "%s", v);
        w->nlabels++;
    }
    va_end(ap);
}

/* Renders reg, parses it back and checks every sample against ws, in order. */
static void assert_reads_back(fw_metrics_t *reg, const struct wants *ws)
{
    fw_buf_t b = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_metrics_render(reg, &b));
    fwt_defer(free, b.data);
    static struct seen seen;
    int bad = 0;
    int rc = parse_n((const char *)b.data, b.len, &seen, &bad);
    if (rc != 0)
        FWT_FAIL("the rendering does not parse: %d at line %d", rc, bad);
    FWT_ASSERT_INT_EQ(seen.n, ws->n);
    for (int i = 0; i < ws->n; i++) {
        const fw_metrics_sample_t *s = &seen.s[i];
        const struct want *w = &ws->w[i];
        if (strcmp(s->name, w->name) != 0 || s->nlabels != w->nlabels)
            FWT_FAIL("sample %d: %s with %d labels, want %s with %d", i, s->name, s->nlabels,
                     w->name, w->nlabels);
        for (int j = 0; j < w->nlabels; j++)
            if (strcmp(s->labels[j].name, w->labels[j][0]) != 0 ||
                strcmp(s->labels[j].value, w->labels[j][1]) != 0)
                FWT_FAIL("sample %d (%s): label %d is %s=\"%s\", want %s=\"%s\"", i, w->name, j,
                         s->labels[j].name, s->labels[j].value, w->labels[j][0], w->labels[j][1]);
        if (!same_double(s->value, w->value))
            FWT_FAIL("sample %d (%s): value %.17g, want %.17g", i, w->name, s->value, w->value);
    }
}

static double read_arg(void *arg)
{
    return *(double *)arg;
}

FWT_TEST(what_the_renderer_writes_reads_back_exactly)
{
    static struct wants ws;
    fw_metrics_t *reg = new_reg();
    const char *odd = "C:\\dir \"x\"\nend \\n caf\xc3\xa9 \xf0\x9f\x9a\x80 {a=\"b\"} 1\r\t#";

    fw_metric_counter_t *c;
    const char *cname = "freeway_test_records_total";
    const char *chelp = "Records \"in\" C:\\spool,\nper category.";
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, cname, chelp, "category", "web_clicks", NULL));
    fw_metric_add(c, 3);
    want(&ws, cname, 3, "category", "web_clicks", NULL);
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, cname, chelp, "category", odd, NULL));
    fw_metric_add(c, 9007199254740992ULL); /* 2^53 */
    want(&ws, cname, 9007199254740992.0, "category", odd, NULL);
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, cname, chelp, "category", "", NULL));
    fw_metric_add(c, UINT64_MAX); /* beyond 2^53 a double holds the nearest value */
    want(&ws, cname, (double)UINT64_MAX, "category", "", NULL);

    static const double gauges[] = {
        0,
        -0.0,
        0.1,
        -0.001,
        1.0 / 3,
        123456789,
        9007199254740993.0,
        1e21,
        1e-300,
        5e-324,
        DBL_MAX,
        -DBL_MIN,
        DBL_MIN,
        NAN,
        INFINITY,
        -INFINITY,
        0.30000000000000004,
    };
    const char *gname = "freeway_test_lag_ratio";
    for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
        fw_metric_gauge_t *g;
        char idx[16];
        snprintf(idx, sizeof(idx), "%zu", i);
        FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, gname, "Lag.", "i", idx, "path", odd, NULL));
        fw_metric_set(g, gauges[i]);
        want(&ws, gname, gauges[i], "i", idx, "path", odd, NULL);
    }

    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    static const char *const le[] = {"0.001", "0.01", "0.1", "1", "+Inf"};
    static const double obs[] = {0.0005, 0.001, 0.05, 2.5, 0.3};
    const char *hname = "freeway_test_fsync_seconds";
    const char *disks[] = {"sda", "\xf0\x9f\x9a\x80\\\"\n"};
    for (int d = 0; d < 2; d++) {
        fw_metric_histogram_t *h;
        FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, hname, "fsync latency.", bounds, 4, "disk",
                                           disks[d], NULL));
        uint64_t buckets[5] = {0};
        double sum = 0;
        int n = d == 0 ? 5 : 2;
        for (int i = 0; i < n; i++) {
            fw_metric_observe(h, obs[i]);
            int b = 0;
            while (b < 4 && !(obs[i] <= bounds[b]))
                b++;
            buckets[b]++;
            sum += obs[i];
        }
        uint64_t cum = 0;
        for (int b = 0; b < 5; b++) {
            cum += buckets[b];
            want(&ws, "freeway_test_fsync_seconds_bucket", (double)cum, "disk", disks[d], "le",
                 le[b], NULL);
        }
        want(&ws, "freeway_test_fsync_seconds_sum", sum, "disk", disks[d], NULL);
        want(&ws, "freeway_test_fsync_seconds_count", (double)n, "disk", disks[d], NULL);
    }

    /* A histogram with no labels and no bounds: only the +Inf bucket. */
    fw_metric_histogram_t *h0;
    FWT_ASSERT_OK(
        fw_metrics_histogram(reg, &h0, "freeway_test_batch_bytes", "Batch.", NULL, 0, NULL));
    fw_metric_observe(h0, 512);
    want(&ws, "freeway_test_batch_bytes_bucket", 1, "le", "+Inf", NULL);
    want(&ws, "freeway_test_batch_bytes_sum", 512, NULL);
    want(&ws, "freeway_test_batch_bytes_count", 1, NULL);

    /* Callback series, and a series with every label the registry allows. */
    static double inflight = -2.5e-7;
    FWT_ASSERT_OK(fw_metrics_gauge_fn(reg, "freeway_test_inflight_bytes", "In flight.", read_arg,
                                      &inflight, NULL));
    want(&ws, "freeway_test_inflight_bytes", inflight, NULL);
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_test_wide_total", "Wide.", "a", "1", "b",
                                     "\"", "c", "\\", "d", "\n", "e", "", "f", "}", "g", ",", "h",
                                     "=", NULL));
    fw_metric_inc(c);
    want(&ws, "freeway_test_wide_total", 1, "a", "1", "b", "\"", "c", "\\", "d", "\n", "e", "", "f",
         "}", "g", ",", "h", "=", NULL);

    assert_reads_back(reg, &ws);
}

/* Random UTF-8 of up to max_len bytes, heavy in what needs escaping. */
static void random_text(char *out, size_t max_len)
{
    static const char *const pieces[] = {"\\",
                                         "\"",
                                         "\n",
                                         "\\n",
                                         "\\\"",
                                         "{",
                                         "}",
                                         ",",
                                         "=",
                                         " ",
                                         "#",
                                         "\r",
                                         "\t",
                                         "a",
                                         "Z",
                                         "0",
                                         "caf\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x9a\x80",
                                         "\x7f"};
    size_t len = 0, n = (size_t)fwt_rand_range(0, 12);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[fwt_rand_range(0, sizeof(pieces) / sizeof(pieces[0]) - 1)];
        size_t plen = strlen(p);
        if (len + plen > max_len)
            break;
        memcpy(out + len, p, plen + 1);
        len += plen;
    }
}

/* Any double, by its bits: NaNs with payloads, infinities, subnormals. */
static double random_double(void)
{
    uint64_t bits = fwt_rand();
    double v;
    if (fwt_rand_range(0, 3) == 0)
        return (double)(int64_t)fwt_rand_range(0, 2000) - 1000;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

FWT_TEST(random_registries_read_back_exactly)
{
    for (int round = 0; round < 20; round++) {
        static struct wants ws;
        ws.n = 0;
        fw_metrics_t *reg = fw_metrics_create();
        FWT_ASSERT(reg != NULL);
        int nseries = (int)fwt_rand_range(1, 40);
        for (int i = 0; i < nseries; i++) {
            char idx[16], v[200], w[200];
            snprintf(idx, sizeof(idx), "%d", i);
            random_text(v, sizeof(v) - 1);
            random_text(w, sizeof(w) - 1);
            if (fwt_rand_range(0, 1) == 0) {
                fw_metric_counter_t *c;
                uint64_t n = fwt_rand() >> fwt_rand_range(0, 63);
                FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_test_random_total", "Random.",
                                                 "i", idx, "v", v, NULL));
                fw_metric_add(c, n);
                want(&ws, "freeway_test_random_total", (double)n, "i", idx, "v", v, NULL);
            } else {
                fw_metric_gauge_t *g;
                double x = random_double();
                FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, "freeway_test_random", "Random.", "i", idx,
                                               "v", v, "w", w, NULL));
                fw_metric_set(g, x);
                want(&ws, "freeway_test_random", x, "i", idx, "v", v, "w", w, NULL);
            }
        }
        /* The render order is families in registration order, then series. */
        static struct wants sorted;
        sorted.n = 0;
        const char *first = ws.w[0].name;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < ws.n; i++)
                if ((strcmp(ws.w[i].name, first) == 0) == (pass == 0))
                    sorted.w[sorted.n++] = ws.w[i];
        assert_reads_back(reg, &sorted);
        fw_metrics_destroy(reg);
    }
}
