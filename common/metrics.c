/*
 * The metrics registry and its text rendering (see metrics.h). Owns every
 * family and series it registered; knows nothing of how the text is served.
 */
#include "metrics.h"
#include "utf8.h"

#include "log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define NAME_MAX_LEN        200
#define LABEL_NAME_MAX_LEN  64
#define LABEL_VALUE_MAX_LEN 1024
#define HELP_MAX_LEN        1024
#define BOUNDS_MAX          64

enum family_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct family;

/*
 * One series: a family plus label values. Allocated in one block with its
 * histogram buckets and strings behind it. The value comes first, so a
 * counter or gauge handle is a pointer to the series itself.
 */
struct series {
    union {
        fw_metric_counter_t counter;
        fw_metric_gauge_t gauge;
    } v;
    /* Histograms: the sum of observations, and nbounds + 1 counts, each
     * bucket on its own (cumulated only when rendered). */
    fw_metric_gauge_t sum;
    _Atomic uint64_t *buckets;
    struct family *fam;
    struct series *next;  /* the family's series in registration order */
    struct series *hnext; /* the registry's hash chain */
    uint64_t hash;
    fw_metric_read_cb read; /* callback series; NULL for stored values */
    void *read_arg;
    char *key; /* the label values, each followed by '\0' */
    size_t key_len;
    char *labels; /* rendered and escaped: `a="x",b="y"`; "" without labels */
    size_t labels_len;
};

struct family {
    struct family *next;
    enum family_type type;
    char *name;
    size_t name_len;
    char *help;
    /* "# HELP ...\n# TYPE ...\n", escaped once at registration. */
    char *head;
    size_t head_len;
    size_t nlabels;
    char *label_names[FW_METRICS_MAX_LABELS];
    size_t nbounds;
    double *bounds;
    char **le; /* nbounds + 1 formatted bounds, the last "+Inf" */
    struct series *first, *last;
};

struct fw_metrics_s {
    /* Held by registration and rendering, never by updates. */
    pthread_mutex_t mu;
    struct family *families, *last_family;
    struct series **table; /* chained hash of every series by (name, values) */
    size_t table_size;     /* a power of two */
    size_t nseries;
};

/* ---- names and text ------------------------------------------------------ */

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* freeway_<component>_<what>_<unit>: lower-case snake case, a freeway_ prefix,
 * and the suffix rules that keep a histogram's derived names unambiguous. */
static int valid_metric_name(const char *name, enum family_type type)
{
    size_t len = strlen(name);
    if (len <= 8 || len > NAME_MAX_LEN || memcmp(name, "freeway_", 8) != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
        if (c == '_' && (i + 1 == len || name[i + 1] == '_'))
            return 0;
    }
    if ((type == TYPE_COUNTER) != ends_with(name, len, "_total"))
        return 0;
    if (type == TYPE_HISTOGRAM && (ends_with(name, len, "_bucket") ||
                                   ends_with(name, len, "_sum") || ends_with(name, len, "_count")))
        return 0;
    return 1;
}

static int valid_label_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > LABEL_NAME_MAX_LEN)
        return 0;
    /* "__" is reserved for Prometheus itself; "le" names histogram buckets. */
    if ((len >= 2 && name[0] == '_' && name[1] == '_') || strcmp(name, "le") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* The exposition format is UTF-8; one bad byte would make a scraper reject
 * the whole page, so text is checked when it is registered. */
/* Text of at most max_len bytes, and UTF-8, as the exposition format requires. */
static int valid_utf8(const char *s, size_t max_len)
{
    size_t len = strlen(s);
    return len <= max_len && fw_utf8_valid(s, len);
}

/* Appends s escaped as the format requires: \ and newline always, " inside
 * label values only. */
static int append_escaped(fw_buf_t *b, const char *s, int quote)
{
    int rc = 0;
    for (const char *p = s; *p && rc == 0; p++) {
        if (*p == '\\')
            rc = fw_buf_append(b, "\\\\", 2);
        else if (*p == '\n')
            rc = fw_buf_append(b, "\\n", 2);
        else if (*p == '"' && quote)
            rc = fw_buf_append(b, "\\\"", 2);
        else
            rc = fw_buf_append(b, p, 1);
    }
    return rc;
}

static int append_str(fw_buf_t *b, const char *s)
{
    return fw_buf_append(b, s, strlen(s));
}

/*
 * The shortest of %.15g, %.16g and %.17g that reads back as v, so 0.1 renders
 * as "0.1" and not "0.10000000000000001", while every double round-trips.
 */
static size_t format_double(char *out, size_t cap, double v)
{
    int n = 0;
    if (isnan(v))
        n = snprintf(out, cap, "NaN");
    else if (isinf(v))
        n = snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    else
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    return n > 0 ? (size_t)n : 0;
}

static size_t format_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL; /* FNV-1a */
    }
    return h;
}

static uint64_t series_hash(const char *name, const char *key, size_t key_len)
{
    uint64_t h = hash_bytes(0xcbf29ce484222325ULL, name, strlen(name) + 1);
    return hash_bytes(h, key, key_len);
}

/* ---- registry -------------------------------------------------------------- */

fw_metrics_t *fw_metrics_create(void)
{
    fw_metrics_t *reg = calloc(1, sizeof(*reg));
    if (reg == NULL)
        return NULL;
    reg->table_size = 64;
    reg->table = calloc(reg->table_size, sizeof(*reg->table));
    if (reg->table == NULL)
        goto fail;
    if (pthread_mutex_init(&reg->mu, NULL) != 0)
        goto fail;
    return reg;
fail:
    free(reg->table);
    free(reg);
    return NULL;
}

static void family_free(struct family *f)
{
    struct series *s = f->first;
    while (s != NULL) {
        struct series *next = s->next;
        free(s);
        s = next;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    if (f->le != NULL)
        for (size_t i = 0; i <= f->nbounds; i++)
            free(f->le[i]);
    free(f->le);
    free(f->bounds);
    free(f->head);
    free(f->help);
    free(f->name);
    free(f);
}

void fw_metrics_destroy(fw_metrics_t *reg)
{
    if (reg == NULL)
        return;
    struct family *f = reg->families;
    while (f != NULL) {
        struct family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg->table);
    free(reg);
}

size_t fw_metrics_series_count(fw_metrics_t *reg)
{
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->nseries;
    pthread_mutex_unlock(&reg->mu);
    return n;
}

/* What a registration asks for, gathered and validated before the lock. */
struct want {
    enum family_type type;
    const char *name;
    const char *help;
    const double *bounds;
    size_t nbounds;
    fw_metric_read_cb read;
    void *read_arg;
    size_t nlabels;
    const char *keys[FW_METRICS_MAX_LABELS];
    const char *values[FW_METRICS_MAX_LABELS];
};

static int want_parse(struct want *w, va_list ap)
{
    if (w->name == NULL || w->help == NULL || !valid_metric_name(w->name, w->type) ||
        !valid_utf8(w->help, HELP_MAX_LEN))
        return -EINVAL;
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        if (w->nlabels == FW_METRICS_MAX_LABELS || value == NULL || !valid_label_name(key) ||
            !valid_utf8(value, LABEL_VALUE_MAX_LEN))
            return -EINVAL;
        for (size_t i = 0; i < w->nlabels; i++)
            if (strcmp(w->keys[i], key) == 0)
                return -EINVAL;
        w->keys[w->nlabels] = key;
        w->values[w->nlabels] = value;
        w->nlabels++;
    }
    if (w->type == TYPE_HISTOGRAM) {
        if (w->nbounds > BOUNDS_MAX || (w->nbounds > 0 && w->bounds == NULL))
            return -EINVAL;
        for (size_t i = 0; i < w->nbounds; i++)
            if (!isfinite(w->bounds[i]) || (i > 0 && !(w->bounds[i] > w->bounds[i - 1])))
                return -EINVAL;
    }
    return 0;
}

/* Whether an existing family f can take a series of w. */
static int family_matches(const struct family *f, const struct want *w)
{
    if (f->type != w->type || strcmp(f->help, w->help) != 0 || f->nlabels != w->nlabels)
        return 0;
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->label_names[i], w->keys[i]) != 0)
            return 0;
    if (f->type == TYPE_HISTOGRAM &&
        (f->nbounds != w->nbounds ||
         (f->nbounds > 0 && memcmp(f->bounds, w->bounds, f->nbounds * sizeof(double)) != 0)))
        return 0;
    return 1;
}

/* Whether name is hist + one of the lines a histogram renders. */
static int is_derived_name(const char *name, const char *hist)
{
    size_t n = strlen(hist);
    if (strncmp(name, hist, n) != 0)
        return 0;
    name += n;
    return strcmp(name, "_bucket") == 0 || strcmp(name, "_sum") == 0 || strcmp(name, "_count") == 0;
}

static int name_collides(fw_metrics_t *reg, const struct want *w)
{
    for (struct family *f = reg->families; f != NULL; f = f->next) {
        if (f->type == TYPE_HISTOGRAM && is_derived_name(w->name, f->name))
            return 1;
        if (w->type == TYPE_HISTOGRAM && is_derived_name(f->name, w->name))
            return 1;
    }
    return 0;
}

static struct family *family_create(const struct want *w)
{
    struct family *f = calloc(1, sizeof(*f));
    fw_buf_t head = FW_BUF_INIT;
    if (f == NULL)
        return NULL;
    f->type = w->type;
    f->name = strdup(w->name);
    f->help = strdup(w->help);
    if (f->name == NULL || f->help == NULL)
        goto fail;
    f->name_len = strlen(f->name);
    for (size_t i = 0; i < w->nlabels; i++) {
        f->label_names[i] = strdup(w->keys[i]);
        if (f->label_names[i] == NULL)
            goto fail;
        f->nlabels++;
    }
    if (w->type == TYPE_HISTOGRAM) {
        f->nbounds = w->nbounds;
        f->bounds = malloc((w->nbounds + 1) * sizeof(double));
        f->le = calloc(w->nbounds + 1, sizeof(char *));
        if (f->bounds == NULL || f->le == NULL)
            goto fail;
        if (w->nbounds > 0)
            memcpy(f->bounds, w->bounds, w->nbounds * sizeof(double));
        for (size_t i = 0; i <= w->nbounds; i++) {
            char tmp[64];
            if (i < w->nbounds)
                format_double(tmp, sizeof(tmp), w->bounds[i]);
            else
                strcpy(tmp, "+Inf");
            f->le[i] = strdup(tmp);
            if (f->le[i] == NULL)
                goto fail;
        }
    }
    if (append_str(&head, "# HELP ") < 0 || append_str(&head, f->name) < 0 ||
        append_str(&head, " ") < 0 || append_escaped(&head, f->help, 0) < 0 ||
        append_str(&head, "\n# TYPE ") < 0 || append_str(&head, f->name) < 0 ||
        append_str(&head, " ") < 0 || append_str(&head, type_names[f->type]) < 0 ||
        append_str(&head, "\n") < 0)
        goto fail;
    f->head = (char *)head.data;
    f->head_len = head.len;
    return f;
fail:
    fw_buf_free(&head);
    family_free(f);
    return NULL;
}

static struct family *family_find(fw_metrics_t *reg, const char *name)
{
    for (struct family *f = reg->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static struct series *series_find(fw_metrics_t *reg, const struct family *f, uint64_t hash,
                                  const char *key, size_t key_len)
{
    struct series *s = reg->table[hash & (reg->table_size - 1)];
    for (; s != NULL; s = s->hnext)
        if (s->hash == hash && s->fam == f && s->key_len == key_len &&
            memcmp(s->key, key, key_len) == 0)
            return s;
    return NULL;
}

/* Doubles the hash table once it holds as many series as chains; on failure
 * the table just stays smaller (chains get longer, nothing breaks). */
static void table_grow(fw_metrics_t *reg)
{
    size_t size = reg->table_size * 2;
    struct series **table = calloc(size, sizeof(*table));
    if (table == NULL)
        return;
    for (size_t i = 0; i < reg->table_size; i++) {
        struct series *s = reg->table[i];
        while (s != NULL) {
            struct series *next = s->hnext;
            s->hnext = table[s->hash & (size - 1)];
            table[s->hash & (size - 1)] = s;
            s = next;
        }
    }
    free(reg->table);
    reg->table = table;
    reg->table_size = size;
}

/*
 * Allocates a series of family f with the given key and rendered labels, in
 * one block: the struct, the histogram buckets, then the two strings.
 */
static struct series *series_create(const struct family *f, const struct want *w,
                                    const fw_buf_t *key, const fw_buf_t *labels)
{
    size_t nbuckets = f->type == TYPE_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t size =
        sizeof(struct series) + nbuckets * sizeof(_Atomic uint64_t) + key->len + labels->len + 1;
    struct series *s = calloc(1, size);
    if (s == NULL)
        return NULL;
    char *p = (char *)(s + 1);
    if (nbuckets > 0) {
        s->buckets = (_Atomic uint64_t *)(void *)p;
        for (size_t i = 0; i < nbuckets; i++)
            atomic_init(&s->buckets[i], 0);
        p += nbuckets * sizeof(_Atomic uint64_t);
    }
    atomic_init(&s->v.counter.value, 0);
    atomic_init(&s->sum.bits, 0); /* the bits of +0.0 */
    s->key = p;
    s->key_len = key->len;
    if (key->len > 0)
        memcpy(p, key->data, key->len);
    p += key->len;
    s->labels = p;
    s->labels_len = labels->len;
    if (labels->len > 0)
        memcpy(p, labels->data, labels->len);
    p[labels->len] = '\0';
    s->read = w->read;
    s->read_arg = w->read_arg;
    return s;
}

static int series_register(fw_metrics_t *reg, struct want *w, va_list ap, struct series **out)
{
    fw_buf_t key = FW_BUF_INIT, labels = FW_BUF_INIT;
    int rc = want_parse(w, ap);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < w->nlabels && rc == 0; i++) {
        rc = fw_buf_append(&key, w->values[i], strlen(w->values[i]) + 1);
        if (rc == 0 && i > 0)
            rc = append_str(&labels, ",");
        if (rc == 0)
            rc = append_str(&labels, w->keys[i]);
        if (rc == 0)
            rc = append_str(&labels, "=\"");
        if (rc == 0)
            rc = append_escaped(&labels, w->values[i], 1);
        if (rc == 0)
            rc = append_str(&labels, "\"");
    }
    if (rc < 0)
        goto out;
    uint64_t hash = series_hash(w->name, (const char *)key.data, key.len);

    pthread_mutex_lock(&reg->mu);
    struct family *f = family_find(reg, w->name);
    if (f != NULL && !family_matches(f, w)) {
        rc = -EEXIST;
    } else if (f == NULL && name_collides(reg, w)) {
        rc = -EEXIST;
    } else if (f == NULL && (f = family_create(w)) != NULL) {
        /* Published only once complete; an empty family renders nothing. */
        if (reg->last_family != NULL)
            reg->last_family->next = f;
        else
            reg->families = f;
        reg->last_family = f;
    } else if (f == NULL) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        struct series *s = series_find(reg, f, hash, (const char *)key.data, key.len);
        if (s != NULL) {
            /* Two owners may share a stored series; a callback has one owner. */
            if (s->read != NULL || w->read != NULL)
                rc = -EEXIST;
            else
                *out = s;
        } else if ((s = series_create(f, w, &key, &labels)) == NULL) {
            rc = -ENOMEM;
        } else {
            s->fam = f;
            s->hash = hash;
            if (f->last != NULL)
                f->last->next = s;
            else
                f->first = s;
            f->last = s;
            s->hnext = reg->table[hash & (reg->table_size - 1)];
            reg->table[hash & (reg->table_size - 1)] = s;
            if (++reg->nseries > reg->table_size)
                table_grow(reg);
            *out = s;
        }
    }
    pthread_mutex_unlock(&reg->mu);
out:
    fw_buf_free(&key);
    fw_buf_free(&labels);
    return rc;
}

int fw_metrics_remove(fw_metrics_t *reg, const char *name, ...)
{
    fw_buf_t key = FW_BUF_INIT;
    int rc = 0;
    va_list ap;
    va_start(ap, name);
    for (;;) {
        const char *label = va_arg(ap, const char *);
        if (label == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        if (value == NULL || (rc = fw_buf_append(&key, value, strlen(value) + 1)) < 0)
            break;
    }
    va_end(ap);
    if (rc < 0 || name == NULL) {
        fw_buf_free(&key);
        return rc < 0 ? rc : -EINVAL;
    }
    uint64_t hash = series_hash(name, (const char *)key.data, key.len);
    pthread_mutex_lock(&reg->mu);
    struct family *f = family_find(reg, name);
    struct series *s =
        f != NULL ? series_find(reg, f, hash, (const char *)key.data, key.len) : NULL;
    if (s == NULL) {
        rc = -ENOENT;
    } else {
        struct series **link = &reg->table[hash & (reg->table_size - 1)];
        while (*link != s)
            link = &(*link)->hnext;
        *link = s->hnext;
        struct series *prev = NULL;
        for (struct series *t = f->first; t != s; t = t->next)
            prev = t;
        if (prev != NULL)
            prev->next = s->next;
        else
            f->first = s->next;
        if (f->last == s)
            f->last = prev;
        reg->nseries--;
        free(s);
    }
    pthread_mutex_unlock(&reg->mu);
    fw_buf_free(&key);
    return rc;
}

int fw_metrics_counter(fw_metrics_t *reg, fw_metric_counter_t **out, const char *name,
                       const char *help, ...)
{
    struct want w = {.type = TYPE_COUNTER, .name = name, .help = help};
    struct series *s = NULL;
    va_list ap;
    va_start(ap, help);
    int rc = series_register(reg, &w, ap, &s);
    va_end(ap);
    *out = s != NULL ? &s->v.counter : NULL;
    return rc;
}

int fw_metrics_gauge(fw_metrics_t *reg, fw_metric_gauge_t **out, const char *name, const char *help,
                     ...)
{
    struct want w = {.type = TYPE_GAUGE, .name = name, .help = help};
    struct series *s = NULL;
    va_list ap;
    va_start(ap, help);
    int rc = series_register(reg, &w, ap, &s);
    va_end(ap);
    *out = s != NULL ? &s->v.gauge : NULL;
    return rc;
}

int fw_metrics_histogram(fw_metrics_t *reg, fw_metric_histogram_t **out, const char *name,
                         const char *help, const double *bounds, size_t nbounds, ...)
{
    struct want w = {
        .type = TYPE_HISTOGRAM, .name = name, .help = help, .bounds = bounds, .nbounds = nbounds};
    struct series *s = NULL;
    va_list ap;
    va_start(ap, nbounds);
    int rc = series_register(reg, &w, ap, &s);
    va_end(ap);
    /* The histogram handle is the series; only this file looks inside. */
    *out = (fw_metric_histogram_t *)(void *)s;
    return rc;
}

int fw_metrics_gauge_fn(fw_metrics_t *reg, const char *name, const char *help,
                        fw_metric_read_cb read, void *arg, ...)
{
    struct want w = {.type = TYPE_GAUGE, .name = name, .help = help, .read = read, .read_arg = arg};
    struct series *s = NULL;
    if (read == NULL)
        return -EINVAL;
    va_list ap;
    va_start(ap, arg);
    int rc = series_register(reg, &w, ap, &s);
    va_end(ap);
    return rc;
}

int fw_metrics_counter_fn(fw_metrics_t *reg, const char *name, const char *help,
                          fw_metric_read_cb read, void *arg, ...)
{
    struct want w = {
        .type = TYPE_COUNTER, .name = name, .help = help, .read = read, .read_arg = arg};
    struct series *s = NULL;
    if (read == NULL)
        return -EINVAL;
    va_list ap;
    va_start(ap, arg);
    int rc = series_register(reg, &w, ap, &s);
    va_end(ap);
    return rc;
}

static double read_log_count(void *arg)
{
    return (double)fw_log_count((fw_log_level_t)(uintptr_t)arg);
}

int fw_metrics_add_process(fw_metrics_t *reg, const char *component, const char *version)
{
    char name[128], help[160];
    snprintf(name, sizeof(name), "freeway_%s_log_messages_total", component);
    snprintf(help, sizeof(help), "Lines this %s logged, by level.", component);
    int rc = fw_metrics_counter_fn(reg, name, help, read_log_count, (void *)(uintptr_t)FW_LOG_WARN,
                                   "level", "warn", NULL);
    if (rc == 0)
        rc = fw_metrics_counter_fn(reg, name, help, read_log_count, (void *)(uintptr_t)FW_LOG_ERROR,
                                   "level", "error", NULL);
    fw_metric_gauge_t *g;
    snprintf(name, sizeof(name), "freeway_%s_build_info", component);
    if (rc == 0)
        rc = fw_metrics_gauge(reg, &g, name, "Always 1; the version label says which build runs.",
                              "version", version, NULL);
    if (rc == 0)
        fw_metric_set(g, 1);
    snprintf(name, sizeof(name), "freeway_%s_start_time_seconds", component);
    if (rc == 0)
        rc = fw_metrics_gauge(reg, &g, name,
                              "When the process started, in seconds since the epoch.", NULL);
    if (rc == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fw_metric_set(g, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    }
    return rc;
}

void fw_metric_observe(fw_metric_histogram_t *h, double v)
{
    struct series *s = (struct series *)(void *)h;
    const struct family *f = s->fam;
    /* Linear: a dozen bounds fit in a cache line or two, and most
     * observations land in the first few buckets. */
    size_t i = 0;
    while (i < f->nbounds && !(v <= f->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    fw_metric_gauge_add(&s->sum, v);
}

/* ---- rendering ------------------------------------------------------------- */

/* An output buffer that remembers its first error, so the render loop reads
 * straight through. */
struct out {
    fw_buf_t *buf;
    int rc;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->rc == 0)
        o->rc = fw_buf_append(o->buf, p, n);
}

/* One sample line: NAME[SUFFIX]{LABELS[,le="LE"]} VALUE */
static void put_sample(struct out *o, const struct family *f, const char *suffix,
                       const struct series *s, const char *le, const char *value, size_t value_len)
{
    put(o, f->name, f->name_len);
    if (suffix != NULL)
        put(o, suffix, strlen(suffix));
    if (s->labels_len > 0 || le != NULL) {
        put(o, "{", 1);
        put(o, s->labels, s->labels_len);
        if (le != NULL) {
            if (s->labels_len > 0)
                put(o, ",", 1);
            put(o, "le=\"", 4);
            put(o, le, strlen(le));
            put(o, "\"", 1);
        }
        put(o, "}", 1);
    }
    put(o, " ", 1);
    put(o, value, value_len);
    put(o, "\n", 1);
}

static void render_histogram(struct out *o, const struct family *f, struct series *s)
{
    char num[32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        put_sample(o, f, "_bucket", s, f->le[i], num, format_u64(num, cumulative));
    }
    /* The sum is read after the buckets and may include an observation the
     * buckets missed; Prometheus tolerates that. _count is the +Inf bucket
     * as rendered, so those two always agree. */
    double sum = fw_metric_gauge_get(&s->sum);
    put_sample(o, f, "_sum", s, NULL, num, format_double(num, sizeof(num), sum));
    put_sample(o, f, "_count", s, NULL, num, format_u64(num, cumulative));
}

int fw_metrics_render(fw_metrics_t *reg, fw_buf_t *out)
{
    struct out o = {out, 0};
    char num[32];
    pthread_mutex_lock(&reg->mu);
    for (const struct family *f = reg->families; f != NULL && o.rc == 0; f = f->next) {
        if (f->first == NULL)
            continue;
        put(&o, f->head, f->head_len);
        for (struct series *s = f->first; s != NULL && o.rc == 0; s = s->next) {
            size_t n;
            if (f->type == TYPE_HISTOGRAM) {
                render_histogram(&o, f, s);
                continue;
            }
            if (s->read != NULL)
                n = format_double(num, sizeof(num), s->read(s->read_arg));
            else if (f->type == TYPE_COUNTER)
                n = format_u64(num, fw_metric_counter_get(&s->v.counter));
            else
                n = format_double(num, sizeof(num), fw_metric_gauge_get(&s->v.gauge));
            put_sample(&o, f, NULL, s, NULL, num, n);
        }
    }
    pthread_mutex_unlock(&reg->mu);
    return o.rc;
}
