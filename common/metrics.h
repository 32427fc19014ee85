/*
 * fw_metrics_t: a registry of Prometheus metrics (counters, gauges, histograms
 * and scrape-time callbacks) and its rendering in the text exposition format,
 * version 0.0.4. It knows nothing of HTTP; fw_http (http.h) serves it.
 *
 * Threads. Updating a series (fw_metric_inc, _set, _observe...) is a relaxed
 * atomic on the series itself, with no lock, from any thread: the loop thread
 * and a disk-writer thread may update the same counter. Registering a series
 * and rendering take the registry's mutex, so a new series (say for a new
 * category) may be registered from the loop thread while another thread is
 * rendering. A series is never freed before fw_metrics_destroy, so a handle
 * stays valid for the registry's whole life and needs no reference count.
 *
 * Names. Metric names follow freeway_<component>_<what>_<unit> in lower-case
 * snake case; counters end in _total, nothing else does; histograms must not
 * end in _bucket, _sum or _count. Label names are [a-zA-Z_][a-zA-Z0-9_]*, not
 * starting with "__" and not "le". Label values and help texts are any UTF-8
 * text (escaped when rendered). Every series of a family (one metric name)
 * has the same type, help, label names in the same order and, for
 * histograms, the same bucket bounds.
 */
#ifndef FW_METRICS_H
#define FW_METRICS_H

#include "buf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The most labels one series may have. */
#define FW_METRICS_MAX_LABELS 8

typedef struct fw_metrics_s fw_metrics_t;

/*
 * Series handles. Their layout is public only so that the updates below can
 * be inlined into hot paths; touch them only through the functions here.
 */
typedef struct fw_metric_counter_s {
    _Atomic uint64_t value;
} fw_metric_counter_t;

typedef struct fw_metric_gauge_s {
    /** The bits of a double (there is no portable atomic double). */
    _Atomic uint64_t bits;
} fw_metric_gauge_t;

typedef struct fw_metric_histogram_s fw_metric_histogram_t;

/* Reads a callback series' value at scrape time. */
typedef double (*fw_metric_read_cb)(void *arg);

/* A new, empty registry, or NULL if out of memory. */
fw_metrics_t *fw_metrics_create(void);

/*
 * Frees the registry and every series in it. Every handle becomes invalid and
 * no callback runs after this returns. The caller must make sure no other
 * thread still updates or renders. NULL is fine.
 */
void fw_metrics_destroy(fw_metrics_t *reg);

/*
 * Series registration. Each function takes the metric name and help text,
 * then label name/value pairs ended by NULL:
 *
 *   fw_metric_counter_t *c;
 *   rc = fw_metrics_counter(reg, &c, "freeway_calligraphus_records_received_total",
 *                           "Records received from producers.", "category", name, NULL);
 *
 * Registering a series that exists already (same name and label values)
 * returns the existing handle, so callers can "get or create" without
 * keeping their own map. The strings are copied.
 *
 * Returns 0, -EINVAL for an invalid name, label or help text (or more than
 * FW_METRICS_MAX_LABELS labels), -EEXIST when the name is taken by a family
 * of another type, help, label names or bounds, or when it collides with a
 * histogram's derived _bucket/_sum/_count names, -ENOMEM. On error *out is
 * NULL.
 */
#define FW_METRICS_SENTINEL __attribute__((sentinel))

int fw_metrics_counter(fw_metrics_t *reg, fw_metric_counter_t **out, const char *name,
                       const char *help, ...) FW_METRICS_SENTINEL;

int fw_metrics_gauge(fw_metrics_t *reg, fw_metric_gauge_t **out, const char *name, const char *help,
                     ...) FW_METRICS_SENTINEL;

/*
 * A histogram with nbounds finite, strictly increasing upper bounds (the +Inf
 * bucket is implied), e.g. fsync latency in seconds. bounds is copied.
 */
int fw_metrics_histogram(fw_metrics_t *reg, fw_metric_histogram_t **out, const char *name,
                         const char *help, const double *bounds, size_t nbounds,
                         ...) FW_METRICS_SENTINEL;

/*
 * Series whose value read(arg) computes at scrape time, e.g. in-flight bytes
 * the owner already tracks. read runs on the thread that renders (the loop
 * thread when fw_http serves the scrape) with the registry's mutex held, so
 * it must be quick and must not call into the registry. arg must outlive the
 * registry. Registering the same series twice is -EEXIST.
 */
int fw_metrics_gauge_fn(fw_metrics_t *reg, const char *name, const char *help,
                        fw_metric_read_cb read, void *arg, ...) FW_METRICS_SENTINEL;
int fw_metrics_counter_fn(fw_metrics_t *reg, const char *name, const char *help,
                          fw_metric_read_cb read, void *arg, ...) FW_METRICS_SENTINEL;

/*
 * Removes the series of metric `name` with the given label values (name/
 * value pairs ended by NULL, as at registration), e.g. a departed
 * consumer's lag. Any handle to it is invalid afterwards: only for series
 * whose owners look them up each time rather than keep the handle. The
 * family stays (an empty one renders nothing). 0, -ENOENT, -EINVAL, -ENOMEM.
 */
int fw_metrics_remove(fw_metrics_t *reg, const char *name, ...) FW_METRICS_SENTINEL;

/*
 * The series every daemon has, named for its component ("calligraphus"):
 * freeway_<component>_log_messages_total{level="warn"|"error"} (the lines
 * logged at those levels, a cheap alarm), freeway_<component>_build_info
 * {version} (always 1) and freeway_<component>_start_time_seconds.
 */
int fw_metrics_add_process(fw_metrics_t *reg, const char *component, const char *version);

/*
 * Appends the whole registry to out in the text exposition format 0.0.4:
 * families in registration order, each with its # HELP and # TYPE lines,
 * then its series in registration order. 0 or -ENOMEM (out then holds a
 * truncated rendering; the caller resets it).
 */
int fw_metrics_render(fw_metrics_t *reg, fw_buf_t *out);

/* The number of series registered, for tests and sanity checks. */
size_t fw_metrics_series_count(fw_metrics_t *reg);

/* ---- updates: lock-free, any thread --------------------------------------- */

static inline void fw_metric_add(fw_metric_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static inline void fw_metric_inc(fw_metric_counter_t *c)
{
    atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

static inline uint64_t fw_metric_counter_get(fw_metric_counter_t *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

static inline void fw_metric_set(fw_metric_gauge_t *g, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    atomic_store_explicit(&g->bits, bits, memory_order_relaxed);
}

/* Adds delta (negative to decrease); exact when two threads add at once. */
static inline void fw_metric_gauge_add(fw_metric_gauge_t *g, double delta)
{
    uint64_t old = atomic_load_explicit(&g->bits, memory_order_relaxed), bits;
    do {
        double v;
        memcpy(&v, &old, sizeof(v));
        v += delta;
        memcpy(&bits, &v, sizeof(bits));
    } while (!atomic_compare_exchange_weak_explicit(&g->bits, &old, bits, memory_order_relaxed,
                                                    memory_order_relaxed));
}

static inline double fw_metric_gauge_get(fw_metric_gauge_t *g)
{
    uint64_t bits = atomic_load_explicit(&g->bits, memory_order_relaxed);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* Counts v in the first bucket whose bound is >= v (NaN lands in +Inf). */
void fw_metric_observe(fw_metric_histogram_t *h, double v);

#endif
