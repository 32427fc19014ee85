/* freeway status: the gathered picture as tables or JSON (see status.h). */
#include "cli.h"
#include "status.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* ---- tables ------------------------------------------------------------------------------------
 */

/* "1.2 MiB"; "-" for unknown (negative). */
static const char *fmt_bytes(double v, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (v < 0)
        return "-";
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

/* "5m03s", "2h05m", "3d04h"; "-" for unknown. */
static const char *fmt_age(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        return "-";
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, cap, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, cap, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
    return buf;
}

static const char *fmt_count(double v, char *buf, size_t cap)
{
    if (v < 0)
        return "-";
    snprintf(buf, cap, "%.0f", v);
    return buf;
}

static void print_nodes(const fw_status_t *st, FILE *out)
{
    fprintf(out, "NODES (%zu)\n", st->nnodes);
    if (st->nnodes == 0) {
        fprintf(out, "  none registered\n");
        return;
    }
    fprintf(out, "  %-12s  %-20s  %-21s  %-8s  %-7s  %s\n", "KIND", "ID", "ADDRESS", "VERSION",
            "UP", "READY");
    for (size_t i = 0; i < st->nnodes; i++) {
        const fw_status_node_t *n = &st->nodes[i];
        char up[32], ready[300];
        if (n->ready == 1)
            snprintf(ready, sizeof(ready), "yes");
        else
            snprintf(ready, sizeof(ready), "%s: %s", n->ready == 0 ? "no" : "unknown", n->reason);
        fprintf(out, "  %-12s  %-20s  %-21s  %-8s  %-7s  %s%s\n", n->kind, n->id, n->address,
                n->version[0] ? n->version : "-",
                fmt_age(n->started_ms ? st->now_ms - n->started_ms : -1, up, sizeof(up)), ready,
                n->metrics_failed && n->ready != -1 ? " (metrics unreadable)" : "");
    }
}

/* One copy cell: "lag 0 B / 0.0s (c1)", or what is known without a copier. */
static void copy_cell(const fw_status_copy_t *c, char *buf, size_t cap)
{
    char b[32];
    if (c->copier[0] != '\0' && c->lag_bytes >= 0)
        snprintf(buf, cap, "lag %s / %.1fs (%s)", fmt_bytes(c->lag_bytes, b, sizeof(b)),
                 c->lag_seconds < 0 ? 0 : c->lag_seconds, c->copier);
    else if (c->copier[0] != '\0')
        snprintf(buf, cap, "claimed by %s", c->copier);
    else if (c->has_progress)
        snprintf(buf, cap, "at %" PRIu64 "+%" PRIu64 ", no copier", c->segment_id, c->offset);
    else
        snprintf(buf, cap, "-");
}

static void print_category(const fw_status_t *st, const fw_status_category_t *c, FILE *out)
{
    char a[32], b[32], d[32], e[32], f[32];
    fprintf(out, "\nCATEGORY %s  %u buckets, %s, roll %s / %s, sync %ums, retention %s\n", c->name,
            c->buckets, c->codec, fmt_bytes((double)c->roll_bytes, a, sizeof(a)),
            fmt_age((int64_t)c->roll_age_ms, b, sizeof(b)), c->sync_interval_ms,
            fmt_age((int64_t)c->retention_ms, d, sizeof(d)));
    fprintf(out, "  written: last minute %s records, %s; last hour %s records, %s\n",
            fmt_count(c->records_1m, a, sizeof(a)), fmt_bytes(c->bytes_1m, b, sizeof(b)),
            fmt_count(c->records_1h, e, sizeof(e)), fmt_bytes(c->bytes_1h, f, sizeof(f)));
    for (size_t i = 0; i < st->ndests; i++)
        fprintf(out, "  COPY%zu = %s\n", i + 1, st->dests[i]);
    fprintf(out, "  %-6s  %-20s  %-6s  %-8s  %-10s", "BUCKET", "OWNER", "EPOCH", "SEGMENT", "SIZE");
    for (size_t i = 0; i < st->ndests; i++)
        fprintf(out, i + 1 < st->ndests ? "  COPY%-28zu" : "  COPY%zu", i + 1);
    fputc('\n', out);
    uint32_t unowned = 0;
    for (uint32_t i = 0; i < c->buckets; i++) {
        const fw_status_bucket_t *bk = &c->list[i];
        char seg[32];
        if (bk->segment_id >= 0)
            snprintf(seg, sizeof(seg), "%.0f", bk->segment_id);
        else
            snprintf(seg, sizeof(seg), "-");
        char epoch[32] = "-";
        if (bk->has_meta)
            snprintf(epoch, sizeof(epoch), "%" PRIu64, bk->epoch);
        if (bk->owner[0] == '\0')
            unowned++;
        fprintf(out, "  %-6u  %-20s  %-6s  %-8s  %-10s", bk->bucket,
                bk->owner[0] ? bk->owner : "(none)", epoch, seg,
                fmt_bytes(bk->segment_bytes, a, sizeof(a)));
        for (size_t k = 0; k < st->ndests && bk->copies != NULL; k++) {
            char cell[200];
            copy_cell(&bk->copies[k], cell, sizeof(cell));
            fprintf(out, k + 1 < st->ndests ? "  %-32s" : "  %s", cell);
        }
        fputc('\n', out);
    }
    if (unowned > 0)
        fprintf(out, "  %u of %u buckets have no owner: no writer can take them now\n", unowned,
                c->buckets);
}

static void print_subs(const fw_status_t *st, FILE *out)
{
    fprintf(out, "\nSUBSCRIBERS (%zu)\n", st->nsubs);
    if (st->nsubs == 0)
        return;
    fprintf(out, "  %-20s  %-24s  %-20s  %-7s  %-10s  %s\n", "PTAIL", "CONSUMER", "CATEGORY",
            "BUCKETS", "LAG", "LAG AGE");
    for (size_t i = 0; i < st->nsubs; i++) {
        const fw_status_sub_t *s = &st->subs[i];
        char b[32];
        fprintf(out, "  %-20s  %-24s  %-20s  %-7u  %-10s  %.1fs\n", st->nodes[s->node].id,
                s->consumer, s->category, s->buckets, fmt_bytes(s->lag_bytes, b, sizeof(b)),
                s->lag_seconds);
    }
}

void fw_status_print_table(const fw_status_t *st, FILE *out)
{
    time_t t = (time_t)(st->now_ms / 1000);
    struct tm tm;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    fprintf(out, "freeway status at %s, ZooKeeper %s\n\n", when, st->zk);
    print_nodes(st, out);
    if (st->ncats == 0)
        fprintf(out, "\nno categories\n");
    for (size_t i = 0; i < st->ncats; i++)
        print_category(st, &st->cats[i], out);
    print_subs(st, out);
}

/* ---- JSON --------------------------------------------------------------------------------------
 */

static void jstr(FILE *out, const char *key, const char *value)
{
    fprintf(out, "\"%s\":", key);
    fw_cli_json_string(out, value, strlen(value));
}

/* A number, or null when unknown (negative). */
static void jnum(FILE *out, const char *key, double v)
{
    if (v < 0 || !isfinite(v))
        fprintf(out, "\"%s\":null", key);
    else
        fprintf(out, "\"%s\":%.17g", key, v);
}

static void json_node(const fw_status_node_t *n, FILE *out)
{
    fputc('{', out);
    jstr(out, "kind", n->kind);
    fputc(',', out);
    jstr(out, "id", n->id);
    fputc(',', out);
    jstr(out, "address", n->address);
    fputc(',', out);
    jstr(out, "metrics_address", n->metrics);
    fputc(',', out);
    jstr(out, "version", n->version);
    fprintf(out, ",\"started_ms\":%" PRId64 ",\"ready\":%s,", n->started_ms,
            n->ready == 1   ? "true"
            : n->ready == 0 ? "false"
                            : "null");
    jstr(out, "reason", n->ready == 1 ? "" : n->reason);
    fprintf(out, ",\"metrics_read\":%s}",
            n->metrics[0] && !n->metrics_failed && n->ready != -1 ? "true" : "false");
}

static void json_bucket(const fw_status_t *st, const fw_status_bucket_t *b, FILE *out)
{
    fprintf(out, "{\"bucket\":%u,", b->bucket);
    jstr(out, "owner", b->owner);
    if (b->has_meta)
        fprintf(out, ",\"epoch\":%" PRIu64 ",\"next_segment_id\":%" PRIu64, b->epoch,
                b->next_segment_id);
    else
        fprintf(out, ",\"epoch\":null,\"next_segment_id\":null");
    fputc(',', out);
    jnum(out, "segment_id", b->segment_id);
    fputc(',', out);
    jnum(out, "segment_bytes", b->segment_bytes);
    fprintf(out, ",\"copies\":[");
    for (size_t k = 0; k < st->ndests && b->copies != NULL; k++) {
        const fw_status_copy_t *c = &b->copies[k];
        fprintf(out, "%s{", k ? "," : "");
        jstr(out, "destination", st->dests[k]);
        fputc(',', out);
        jstr(out, "copier", c->copier);
        if (c->has_progress)
            fprintf(out,
                    ",\"segment_id\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"updated_ms\":%" PRId64,
                    c->segment_id, c->offset, c->updated_ms);
        else
            fprintf(out, ",\"segment_id\":null,\"offset\":null,\"updated_ms\":null");
        fputc(',', out);
        jnum(out, "lag_bytes", c->lag_bytes);
        fputc(',', out);
        jnum(out, "lag_seconds", c->lag_seconds);
        fputc('}', out);
    }
    fprintf(out, "]}");
}

static void json_category(const fw_status_t *st, const fw_status_category_t *c, FILE *out)
{
    fputc('{', out);
    jstr(out, "name", c->name);
    fprintf(out,
            ",\"buckets\":%u,\"codec\":\"%s\",\"roll_bytes\":%" PRIu64 ",\"roll_age_ms\":%" PRIu64
            ",\"sync_interval_ms\":%u,\"retention_ms\":%" PRIu64 ",\"max_record_bytes\":%u,",
            c->buckets, c->codec, c->roll_bytes, c->roll_age_ms, c->sync_interval_ms,
            c->retention_ms, c->max_record_bytes);
    jnum(out, "records_1m", c->records_1m);
    fputc(',', out);
    jnum(out, "bytes_1m", c->bytes_1m);
    fputc(',', out);
    jnum(out, "records_1h", c->records_1h);
    fputc(',', out);
    jnum(out, "bytes_1h", c->bytes_1h);
    fprintf(out, ",\"bucket_list\":[");
    for (uint32_t i = 0; i < c->buckets; i++) {
        if (i)
            fputc(',', out);
        json_bucket(st, &c->list[i], out);
    }
    fprintf(out, "]}");
}

void fw_status_print_json(const fw_status_t *st, FILE *out)
{
    fprintf(out, "{\"time_ms\":%" PRId64 ",", st->now_ms);
    jstr(out, "zk", st->zk);
    fprintf(out, ",\"nodes\":[");
    for (size_t i = 0; i < st->nnodes; i++) {
        if (i)
            fputc(',', out);
        json_node(&st->nodes[i], out);
    }
    fprintf(out, "],\"destinations\":[");
    for (size_t i = 0; i < st->ndests; i++) {
        if (i)
            fputc(',', out);
        fw_cli_json_string(out, st->dests[i], strlen(st->dests[i]));
    }
    fprintf(out, "],\"categories\":[");
    for (size_t i = 0; i < st->ncats; i++) {
        if (i)
            fputc(',', out);
        json_category(st, &st->cats[i], out);
    }
    fprintf(out, "],\"subscribers\":[");
    for (size_t i = 0; i < st->nsubs; i++) {
        const fw_status_sub_t *s = &st->subs[i];
        fprintf(out, "%s{", i ? "," : "");
        jstr(out, "ptail", st->nodes[s->node].id);
        fputc(',', out);
        jstr(out, "consumer", s->consumer);
        fputc(',', out);
        jstr(out, "category", s->category);
        fprintf(out, ",\"buckets\":%u,", s->buckets);
        jnum(out, "lag_bytes", s->lag_bytes);
        fputc(',', out);
        jnum(out, "lag_seconds", s->lag_seconds);
        fputc('}', out);
    }
    fprintf(out, "]}\n");
}
