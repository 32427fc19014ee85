/* freeway status: the gathered picture as tables or JSON (see status.h). */
#include "cli.h"
#include "status.h"

#include "utf8.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ---- tables ------------------------------------------------------------------------------------
 */

/*
 * Text from ZooKeeper or a node's answers as it goes to a terminal: control
 * characters (C0, DEL, C1) and bytes that are no UTF-8 character are
 * written as \xNN, so a label value cannot move the cursor or recolour the
 * screen. Pads with spaces to width characters.
 */
static void put_text(FILE *out, const char *s, int width)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s);
    int cols = 0;
    for (size_t i = 0; i < len;) {
        size_t n = fw_utf8_char_len(p + i, len - i);
        int control =
            n == 1 ? p[i] < 0x20 || p[i] == 0x7f : n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;
        if (n == 0 || control) {
            size_t k = n == 0 ? 1 : n;
            for (size_t b = 0; b < k; b++)
                fprintf(out, "\\x%02x", p[i + b]);
            cols += 4 * (int)k;
            i += k;
        } else {
            fwrite(p + i, 1, n, out);
            cols++;
            i += n;
        }
    }
    for (; cols < width; cols++)
        fputc(' ', out);
}

/* One column of a table row: two spaces, then s padded to width. */
static void cell(FILE *out, const char *s, int width)
{
    fputs("  ", out);
    put_text(out, s, width);
}

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
        cell(out, n->kind, 12);
        cell(out, n->id, 20);
        cell(out, n->address, 21);
        cell(out, n->version[0] ? n->version : "-", 8);
        cell(out, fmt_age(n->started_ms ? st->now_ms - n->started_ms : -1, up, sizeof(up)), 7);
        cell(out, ready, 0);
        fprintf(out, "%s\n", !n->metrics_read && n->ready != -1 ? " (metrics unreadable)" : "");
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
    fputs("\nCATEGORY ", out);
    put_text(out, c->name, 0);
    fprintf(out, "  %u buckets, %s, roll %s / %s, sync %ums, retention %s", c->buckets, c->codec,
            fmt_bytes((double)c->roll_bytes, a, sizeof(a)),
            fmt_age((int64_t)c->roll_age_ms, b, sizeof(b)), c->sync_interval_ms,
            fmt_age((int64_t)c->retention_ms, d, sizeof(d)));
    if (c->scribe_key_delim >= 0) {
        fw_cli_byte_format(c->scribe_key_delim, a, sizeof(a));
        fprintf(out, ", scribe key before %s", a);
    }
    fputc('\n', out);
    fprintf(out, "  written: last minute %s records, %s; last hour %s records, %s\n",
            fmt_count(c->records_1m, a, sizeof(a)), fmt_bytes(c->bytes_1m, b, sizeof(b)),
            fmt_count(c->records_1h, e, sizeof(e)), fmt_bytes(c->bytes_1h, f, sizeof(f)));
    for (size_t i = 0; i < st->ndests; i++) {
        fprintf(out, "  COPY%zu = ", i + 1);
        put_text(out, st->dests[i], 0);
        fputc('\n', out);
    }
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
        fprintf(out, "  %-6u", bk->bucket);
        cell(out, bk->owner[0] ? bk->owner : "(none)", 20);
        cell(out, epoch, 6);
        cell(out, seg, 8);
        cell(out, fmt_bytes(bk->segment_bytes, a, sizeof(a)), 10);
        for (size_t k = 0; k < st->ndests && bk->copies != NULL; k++) {
            char text[200];
            copy_cell(&bk->copies[k], text, sizeof(text));
            cell(out, text, k + 1 < st->ndests ? 32 : 0);
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
        cell(out, st->nodes[s->node].id, 20);
        cell(out, s->consumer, 24);
        cell(out, s->category, 20);
        fprintf(out, "  %-7u  %-10s  %.1fs\n", s->buckets, fmt_bytes(s->lag_bytes, b, sizeof(b)),
                s->lag_seconds);
    }
}

void fw_status_print_table(const fw_status_t *st, FILE *out)
{
    time_t t = (time_t)(st->now_ms / 1000);
    struct tm tm;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    fprintf(out, "freeway status at %s, ZooKeeper ", when);
    put_text(out, st->zk, 0);
    fputs("\n\n", out);
    print_nodes(st, out);
    if (st->ncats == 0)
        fprintf(out, "\nno categories\n");
    for (size_t i = 0; i < st->ncats; i++)
        print_category(st, &st->cats[i], out);
    print_subs(st, out);
}

/* ---- JSON --------------------------------------------------------------------------------------
 */

/* A figure, or null when unknown (negative). */
static void jfig(fw_cli_json_t *j, const char *key, double v)
{
    if (v < 0)
        fw_cli_json_null(j, key);
    else
        fw_cli_json_num(j, key, v);
}

static void json_node(fw_cli_json_t *j, const fw_status_node_t *n)
{
    fw_cli_json_object(j, NULL);
    fw_cli_json_str(j, "kind", n->kind);
    fw_cli_json_str(j, "id", n->id);
    fw_cli_json_str(j, "address", n->address);
    fw_cli_json_str(j, "metrics_address", n->metrics);
    fw_cli_json_str(j, "version", n->version);
    fw_cli_json_int(j, "started_ms", n->started_ms);
    if (n->ready < 0)
        fw_cli_json_null(j, "ready");
    else
        fw_cli_json_bool(j, "ready", n->ready);
    fw_cli_json_str(j, "reason", n->ready == 1 ? "" : n->reason);
    fw_cli_json_bool(j, "metrics_read", n->metrics_read);
    fw_cli_json_end(j);
}

static void json_copy(fw_cli_json_t *j, const fw_status_t *st, const fw_status_copy_t *c)
{
    fw_cli_json_object(j, NULL);
    fw_cli_json_str(j, "destination", st->dests[c->dest]);
    fw_cli_json_str(j, "copier", c->copier);
    if (c->has_progress) {
        fw_cli_json_uint(j, "segment_id", c->segment_id);
        fw_cli_json_uint(j, "offset", c->offset);
        fw_cli_json_int(j, "updated_ms", c->updated_ms);
    } else {
        fw_cli_json_null(j, "segment_id");
        fw_cli_json_null(j, "offset");
        fw_cli_json_null(j, "updated_ms");
    }
    jfig(j, "lag_bytes", c->lag_bytes);
    jfig(j, "lag_seconds", c->lag_seconds);
    fw_cli_json_end(j);
}

static void json_bucket(fw_cli_json_t *j, const fw_status_t *st, const fw_status_bucket_t *b)
{
    fw_cli_json_object(j, NULL);
    fw_cli_json_uint(j, "bucket", b->bucket);
    fw_cli_json_str(j, "owner", b->owner);
    if (b->has_meta) {
        fw_cli_json_uint(j, "epoch", b->epoch);
        fw_cli_json_uint(j, "next_segment_id", b->next_segment_id);
    } else {
        fw_cli_json_null(j, "epoch");
        fw_cli_json_null(j, "next_segment_id");
    }
    jfig(j, "segment_id", b->segment_id);
    jfig(j, "segment_bytes", b->segment_bytes);
    fw_cli_json_array(j, "copies");
    for (size_t k = 0; k < st->ndests && b->copies != NULL; k++)
        json_copy(j, st, &b->copies[k]);
    fw_cli_json_end(j);
    fw_cli_json_end(j);
}

static void json_category(fw_cli_json_t *j, const fw_status_t *st, const fw_status_category_t *c)
{
    fw_cli_json_object(j, NULL);
    fw_cli_json_str(j, "name", c->name);
    fw_cli_json_uint(j, "buckets", c->buckets);
    fw_cli_json_str(j, "codec", c->codec);
    fw_cli_json_uint(j, "roll_bytes", c->roll_bytes);
    fw_cli_json_uint(j, "roll_age_ms", c->roll_age_ms);
    fw_cli_json_uint(j, "sync_interval_ms", c->sync_interval_ms);
    fw_cli_json_uint(j, "retention_ms", c->retention_ms);
    fw_cli_json_uint(j, "max_record_bytes", c->max_record_bytes);
    if (c->scribe_key_delim >= 0)
        fw_cli_json_uint(j, "scribe_key_delimiter", (uint64_t)c->scribe_key_delim);
    else
        fw_cli_json_null(j, "scribe_key_delimiter");
    jfig(j, "records_1m", c->records_1m);
    jfig(j, "bytes_1m", c->bytes_1m);
    jfig(j, "records_1h", c->records_1h);
    jfig(j, "bytes_1h", c->bytes_1h);
    fw_cli_json_array(j, "bucket_list");
    for (uint32_t i = 0; i < c->buckets; i++)
        json_bucket(j, st, &c->list[i]);
    fw_cli_json_end(j);
    fw_cli_json_end(j);
}

static void json_sub(fw_cli_json_t *j, const fw_status_t *st, const fw_status_sub_t *s)
{
    fw_cli_json_object(j, NULL);
    fw_cli_json_str(j, "ptail", st->nodes[s->node].id);
    fw_cli_json_str(j, "consumer", s->consumer);
    fw_cli_json_str(j, "category", s->category);
    fw_cli_json_uint(j, "buckets", s->buckets);
    jfig(j, "lag_bytes", s->lag_bytes);
    jfig(j, "lag_seconds", s->lag_seconds);
    fw_cli_json_end(j);
}

void fw_status_print_json(const fw_status_t *st, FILE *out)
{
    fw_cli_json_t j;
    fw_cli_json_init(&j, out);
    fw_cli_json_object(&j, NULL);
    fw_cli_json_int(&j, "time_ms", st->now_ms);
    fw_cli_json_str(&j, "zk", st->zk);
    fw_cli_json_array(&j, "nodes");
    for (size_t i = 0; i < st->nnodes; i++)
        json_node(&j, &st->nodes[i]);
    fw_cli_json_end(&j);
    fw_cli_json_array(&j, "destinations");
    for (size_t i = 0; i < st->ndests; i++)
        fw_cli_json_str(&j, NULL, st->dests[i]);
    fw_cli_json_end(&j);
    fw_cli_json_array(&j, "categories");
    for (size_t i = 0; i < st->ncats; i++)
        json_category(&j, st, &st->cats[i]);
    fw_cli_json_end(&j);
    fw_cli_json_array(&j, "subscribers");
    for (size_t i = 0; i < st->nsubs; i++)
        json_sub(&j, st, &st->subs[i]);
    fw_cli_json_end(&j);
    fw_cli_json_end(&j);
    fputc('\n', out);
}
