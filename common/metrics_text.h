/*
 * Reading the Prometheus text exposition format (0.0.4), the other half of
 * fw_metrics_render: `freeway status` scrapes every daemon's /metrics with
 * it. The bytes come from the network, so every line is checked against the
 * format before it is handed on, and a bad line ends the parse with an
 * error (the caller drops what that document gave it).
 */
#ifndef FW_METRICS_TEXT_H
#define FW_METRICS_TEXT_H

#include <stddef.h>

/* The most labels one sample may carry here (a bad line beyond it). */
#define FW_METRICS_TEXT_MAX_LABELS 16

typedef struct fw_metrics_label_s {
    const char *name;
    const char *value; /* unescaped */
} fw_metrics_label_t;

typedef struct fw_metrics_sample_s {
    const char *name;
    fw_metrics_label_t labels[FW_METRICS_TEXT_MAX_LABELS];
    int nlabels;
    double value;
} fw_metrics_sample_t;

/* Called for each sample; a non-zero return stops the parse and is returned. */
typedef int (*fw_metrics_sample_cb)(const fw_metrics_sample_t *s, void *arg);

/*
 * Parses text[0..len) in place (it writes NULs and unescapes label values;
 * the strings handed to cb point into text and live as long as it).
 * Comments (# HELP, # TYPE, any # line) and blank lines are skipped; an
 * optional timestamp after the value is accepted and ignored. A sample's
 * label names are distinct (a name twice is a bad line). Samples are
 * handed to cb line by line; a bad line stops the parse. Returns 0, cb's
 * non-zero value, or -EINVAL with the 1-based number of the bad line in
 * *bad_line (may be NULL).
 */
int fw_metrics_text_parse(char *text, size_t len, fw_metrics_sample_cb cb, void *arg,
                          int *bad_line);

/* The value of label `name` in s, or NULL. */
const char *fw_metrics_sample_label(const fw_metrics_sample_t *s, const char *name);

#endif
