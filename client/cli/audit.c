/*
 * freeway audit -c CATEGORY: counts of one category by bucket and minute at
 * every hop, and where they differ.
 *
 *   produced   what writers acked, as the producers reported it
 *   written    what the writers' segments hold (read from their root)
 *   copied     what each copy holds (file:// read; others by the copier's progress)
 *   consumed   what each consumer that opted in handed to its application
 *
 * Each hop is judged against what it should hold by now: a copy against the
 * written records up to its last block, a consumer against the written
 * records in the stretches it read, the producers against everything written
 * (only in minutes older than --settle, since their reports come every 10 s).
 * So a copy or a consumer that is behind is "behind", not "different"; a
 * lost or doubled record is a difference. A (producer, sequence) stored twice
 * is listed as a duplicate. Exit status: 0 all agree, 1 a difference, a
 * duplicate or damage, 2 usage or nothing to read.
 */
#include "audit_model.h"
#include "cli.h"
#include "zkutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "names.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

typedef struct audit_cfg_s {
    char *zk;
    int64_t timeout;
    char *category;
    char *root;
    char *copies;
    char *since;
    char *until;
    int64_t settle;
    char *audit_category;
    int verbose;
} audit_cfg_t;

static const fw_option_t audit_opts[] = {
    {"zk", FW_OPT_STRING, offsetof(audit_cfg_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot (where the writers' root and copies are)"},
    {"timeout", FW_OPT_DURATION, offsetof(audit_cfg_t, timeout), "5s", "DURATION",
     "how long to wait for ZooKeeper"},
    {"category", FW_OPT_STRING, offsetof(audit_cfg_t, category), NULL, "NAME",
     "the category to audit (-c NAME; required)"},
    {"root", FW_OPT_STRING, offsetof(audit_cfg_t, root), NULL, "DIR",
     "the writers' root; left out, the root the live writers registered"},
    {"copies", FW_OPT_STRING, offsetof(audit_cfg_t, copies), NULL, "URL[,URL...]|none",
     "the copies to count; left out, every copier destination of the category"},
    {"since", FW_OPT_STRING, offsetof(audit_cfg_t, since), NULL, "TIME",
     "the first minute: YYYY-MM-DDTHH:MM (UTC), ms since the epoch, or an age (90m, 2h, 1d)"},
    {"until", FW_OPT_STRING, offsetof(audit_cfg_t, until), NULL, "TIME",
     "the minute after the last (same forms); left out, now"},
    {"settle", FW_OPT_DURATION, offsetof(audit_cfg_t, settle), "30s", "DURATION",
     "producers' counts of minutes younger than this are not judged, as their reports lag; "
     "0 judges every minute"},
    {"audit-category", FW_OPT_STRING, offsetof(audit_cfg_t, audit_category), "freeway.audit",
     "NAME", "the category producers and consumers report to"},
    {"verbose", FW_OPT_BOOL, offsetof(audit_cfg_t, verbose), "false", NULL,
     "print every bucket and minute, not only those that differ"},
    FW_OPTIONS_END,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway audit -c CATEGORY [--since TIME] [--until TIME] [OPTIONS]\n\n"
                 "Counts a category's records by bucket and minute at every hop: produced\n"
                 "(producers' reports of what writers acked), written (the writers' segments),\n"
                 "copied (each copy), consumed (consumers that opted in), and prints where they\n"
                 "differ. A record counts in the minute of its block's first record. Copies and\n"
                 "consumers are judged on what they should hold by now, so one that is behind\n"
                 "is not a difference. Reports come from the audit category (create it with\n"
                 "`freeway category create freeway.audit --buckets 4`). Run it where the\n"
                 "writers' root (and file:// copies) can be read. Exit status 0 when every\n"
                 "count agrees, 1 on a difference, a duplicate or damage, 2 otherwise.\n\n"
                 "options:\n");
    fw_config_usage(audit_opts, out);
}

/* ---- time ------------------------------------------------------------------------------------ */

/* TIME as ms since the epoch: -1 if not understood. */
static int64_t parse_time(const char *s, int64_t now_ms)
{
    char *end;
    if (*s >= '0' && *s <= '9') {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
            return -1;
        if (*end == '\0')
            return v;
        int64_t unit = *end == 's'   ? 1000
                       : *end == 'm' ? 60000
                       : *end == 'h' ? 3600000
                       : *end == 'd' ? 86400000
                                     : 0;
        /* An age before the epoch is no time an audit can judge. */
        if (unit != 0 && end[1] == '\0')
            return v <= now_ms / unit ? now_ms - (int64_t)v * unit : -1;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M", &tm);
    if (end == NULL)
        end = strptime(s, "%Y-%m-%d %H:%M", &tm);
    if (end != NULL && *end == ':')
        end = strptime(end, ":%S", &tm);
    if (end != NULL && *end == 'Z')
        end++;
    if (end == NULL || *end != '\0')
        return -1;
    return (int64_t)timegm(&tm) * 1000;
}

static void minute_text(int64_t minute, char *out, size_t cap)
{
    time_t t = (time_t)(minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
}

/* ---- where the data is ------------------------------------------------------------------------
 */

static char *zk_get(fw_cli_zk_t *z, const char *rel, int *len)
{
    char path[1400];
    fw_cli_zk_path(z, path, sizeof(path), rel);
    char *buf = malloc(65536);
    if (buf == NULL)
        return NULL;
    *len = 65535;
    if (zoo_get(z->zh, path, 0, buf, len, NULL) != ZOK || *len < 0) {
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

/* The root the live writers registered; 0, or -1 with the reason printed. */
static int writers_root(fw_cli_zk_t *z, char *out, size_t cap)
{
    char path[1400];
    fw_cli_zk_path(z, path, sizeof(path), "nodes/calligraphus");
    struct String_vector ids = {0};
    if (zoo_get_children(z->zh, path, 0, &ids) != ZOK || ids.count == 0) {
        deallocate_String_vector(&ids);
        fprintf(stderr, "freeway audit: no writer is registered; give the writers' root with "
                        "--root DIR\n");
        return -1;
    }
    out[0] = '\0';
    int rc = 0;
    for (int i = 0; i < ids.count && rc == 0; i++) {
        char rel[600];
        snprintf(rel, sizeof(rel), "nodes/calligraphus/%s", ids.data[i]);
        int len;
        char *text = zk_get(z, rel, &len);
        ProtobufCMessage *m = NULL;
        char err[200];
        if (text == NULL || fw_pbtext_parse(&fwpb__node_info__descriptor, text, (size_t)len, &m,
                                            err, sizeof(err)) < 0) {
            free(text);
            continue;
        }
        const Fwpb__NodeInfo *n = (const Fwpb__NodeInfo *)m;
        if (n->root != NULL && n->root[0] != '\0') {
            if (out[0] == '\0') {
                snprintf(out, cap, "%s", n->root);
            } else if (strcmp(out, n->root) != 0) {
                fprintf(stderr,
                        "freeway audit: writers registered different roots (%s, %s); give the "
                        "one to read with --root DIR\n",
                        out, n->root);
                rc = -1;
            }
        }
        protobuf_c_message_free_unpacked(m, NULL);
        free(text);
    }
    deallocate_String_vector(&ids);
    if (rc == 0 && out[0] == '\0') {
        fprintf(stderr, "freeway audit: the writers registered no root; give it with --root DIR\n");
        rc = -1;
    }
    return rc;
}

static int add_copy(fw_audit_t *a, const char *url)
{
    fw_astore_t *n = realloc(a->copies, (a->ncopies + 1) * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    a->copies = n;
    fw_astore_t *s = &a->copies[a->ncopies++];
    memset(s, 0, sizeof(*s));
    snprintf(s->label, sizeof(s->label), "%s", url);
    if (strncmp(url, "file://", 7) == 0)
        snprintf(s->path, sizeof(s->path), "%s", url + 7);
    else
        s->by_progress = 1;
    return 0;
}

/*
 * The copier's recorded end of each bucket of the copy s. A copy read by
 * progress gets an (empty) bucket for each as well.
 */
static int read_progress(fw_cli_zk_t *z, fw_audit_t *a, fw_astore_t *s)
{
    char key[1200];
    if (fw_dest_key(s->label, key, sizeof(key)) < 0)
        return 0; /* no copier can have recorded progress under a key this long */
    char rel[1500];
    snprintf(rel, sizeof(rel), "copier/%s/%s", key, a->category);
    char path[1600];
    fw_cli_zk_path(z, path, sizeof(path), rel);
    struct String_vector kids = {0};
    if (zoo_get_children(z->zh, path, 0, &kids) != ZOK)
        return 0;
    uint32_t max = 0;
    for (int i = 0; i < kids.count; i++) {
        unsigned long b = strtoul(kids.data[i], NULL, 10);
        if (b < 65536 && b + 1 > max)
            max = (uint32_t)b + 1;
    }
    if (s->by_progress) {
        s->nbuckets = max;
        s->buckets = calloc(max ? max : 1, sizeof(*s->buckets));
    }
    s->nprogress = max;
    s->progress_segment = calloc(max ? max : 1, sizeof(uint64_t));
    s->progress_offset = calloc(max ? max : 1, sizeof(uint64_t));
    if ((s->by_progress && s->buckets == NULL) || s->progress_segment == NULL ||
        s->progress_offset == NULL) {
        deallocate_String_vector(&kids);
        return -ENOMEM;
    }
    for (int i = 0; i < kids.count; i++) {
        unsigned long b = strtoul(kids.data[i], NULL, 10);
        if (b >= max)
            continue;
        char prel[1700];
        snprintf(prel, sizeof(prel), "%s/%s", rel, kids.data[i]);
        int len;
        char *text = zk_get(z, prel, &len);
        ProtobufCMessage *m = NULL;
        char err[200];
        if (text != NULL && len > 0 &&
            fw_pbtext_parse(&fwpb__copier_progress__descriptor, text, (size_t)len, &m, err,
                            sizeof(err)) == 0) {
            const Fwpb__CopierProgress *p = (const Fwpb__CopierProgress *)m;
            s->progress_segment[b] = p->segment_id;
            s->progress_offset[b] = p->offset;
            protobuf_c_message_free_unpacked(m, NULL);
        }
        free(text);
    }
    deallocate_String_vector(&kids);
    return 0;
}

/* Every copier destination that holds progress of the category. */
static int find_copies(fw_cli_zk_t *z, fw_audit_t *a)
{
    char path[1400];
    fw_cli_zk_path(z, path, sizeof(path), "copier");
    struct String_vector keys = {0};
    if (zoo_get_children(z->zh, path, 0, &keys) != ZOK)
        return 0;
    int rc = 0;
    for (int i = 0; i < keys.count && rc == 0; i++) {
        char cpath[2800];
        snprintf(cpath, sizeof(cpath), "%s/%s/%s", path, keys.data[i], a->category);
        if (zoo_exists(z->zh, cpath, 0, NULL) != ZOK)
            continue;
        char url[1100];
        fw_dest_key_decode(keys.data[i], url, sizeof(url));
        rc = add_copy(a, url);
    }
    deallocate_String_vector(&keys);
    return rc;
}

/* ---- printing -------------------------------------------------------------------------------- */

/* One column of the table: a hop's counts and what it should hold. */
typedef struct column_s {
    char label[64];
    char name[1200];
    fw_audit_table_t got, again, expected; /* produced: expected is what is written */
    int is_produced;
    uint64_t total, total_expected;
    uint64_t minutes_differing;
    uint64_t unreported; /* produced: records written that no report counted (see unreported) */
} column_t;

typedef struct row_key_s {
    uint32_t bucket;
    int64_t minute;
} row_key_t;

static int row_cmp(const void *x, const void *y)
{
    const row_key_t *a = x, *b = y;
    if (a->minute != b->minute)
        return a->minute < b->minute ? -1 : 1;
    return a->bucket < b->bucket ? -1 : a->bucket > b->bucket;
}

static int add_rows(row_key_t **rows, size_t *n, size_t *cap, const fw_audit_table_t *t)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        const fw_audit_cell_t *c = &t->cells[i];
        if (c->records == 0)
            continue;
        if (fw_audit_room((void **)rows, *n, cap, sizeof(**rows)) < 0)
            return -ENOMEM;
        (*rows)[(*n)++] = (row_key_t){c->bucket, c->minute};
    }
    return 0;
}

static int64_t got_of(const column_t *c, uint32_t b, int64_t m)
{
    return (int64_t)fw_audit_table_get(&c->got, 0, b, m) -
           (int64_t)fw_audit_table_get(&c->again, 0, b, m);
}

/* What column c should hold in a cell: producers all that is written, the others their own. */
static uint64_t expected_of(const column_t *c, const fw_audit_table_t *written, uint32_t b,
                            int64_t m)
{
    return fw_audit_table_get(c->is_produced ? written : &c->expected, 0, b, m);
}

/*
 * The records of a produced cell that are written but that no report
 * counted, up to what producer lives without a final report (or without
 * any report) wrote in that cell: a producer killed takes up to a report
 * interval of counts along. Fewer produced than written is never a loss (a
 * loss is the other way round), so it is said, not judged a difference. A
 * shortfall beyond what those lives wrote (a block of a life that reported
 * to the end, stored twice under two sequences) is still judged.
 */
static uint64_t unreported(const fw_audit_t *a, const column_t *c, const fw_audit_table_t *written,
                           uint32_t b, int64_t m)
{
    if (!c->is_produced || m >= a->settled_min)
        return 0;
    int64_t got = got_of(c, b, m);
    uint64_t want = expected_of(c, written, b, m);
    if (got < 0 || (uint64_t)got >= want)
        return 0;
    uint64_t most = fw_audit_table_get(&a->unreported_max, 0, b, m);
    return want - (uint64_t)got < most ? want - (uint64_t)got : most;
}

/* 1 if column c's cell is judged (producers' only once settled) and is not what is expected. */
static int differs(const fw_audit_t *a, const column_t *c, const fw_audit_table_t *written,
                   uint32_t b, int64_t m)
{
    int judged = !c->is_produced || m < a->settled_min;
    return judged && got_of(c, b, m) + (int64_t)unreported(a, c, written, b, m) !=
                         (int64_t)expected_of(c, written, b, m);
}

static int print_audit(fw_audit_t *a, const fw_audit_table_t *written, column_t *cols, size_t ncols,
                       const fw_adup_t *dups, size_t ndups, int verbose)
{
    row_key_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    if (add_rows(&rows, &nrows, &cap, written) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < ncols; i++)
        if (add_rows(&rows, &nrows, &cap, &cols[i].got) < 0) {
            free(rows);
            return -ENOMEM;
        }
    if (nrows > 0)
        qsort(rows, nrows, sizeof(*rows), row_cmp);
    size_t k = 0;
    for (size_t i = 0; i < nrows; i++)
        if (k == 0 || row_cmp(&rows[k - 1], &rows[i]) != 0)
            rows[k++] = rows[i];
    nrows = k;

    uint64_t written_total = 0, differing = 0;
    for (size_t i = 0; i < nrows; i++) {
        row_key_t *r = &rows[i];
        written_total += fw_audit_table_get(written, 0, r->bucket, r->minute);
        for (size_t c = 0; c < ncols; c++) {
            cols[c].total += (uint64_t)got_of(&cols[c], r->bucket, r->minute);
            cols[c].total_expected += expected_of(&cols[c], written, r->bucket, r->minute);
            cols[c].minutes_differing += differs(a, &cols[c], written, r->bucket, r->minute);
            cols[c].unreported += unreported(a, &cols[c], written, r->bucket, r->minute);
        }
    }

    printf("\n  %-10s %-40s %12s %10s\n", "hop", "", "records", "differing");
    for (size_t c = 0; c < ncols && cols[c].is_produced; c++) {
        if (a->nplives == 0 && a->bad_reports == 0)
            printf("  %-10s %-40.40s %12s %10s\n", "produced", "no producer reports: not judged",
                   "-", "-");
        else
            printf("  %-10s %-40.40s %12" PRIu64 " %10" PRIu64 "\n", "produced",
                   "producers' reports", cols[c].total, cols[c].minutes_differing);
        if (cols[c].unreported > 0)
            printf("  %-10s %" PRIu64 " records written that no report counted: producer lives "
                   "without a report took their last counts along (killed)\n",
                   "", cols[c].unreported);
    }
    printf("  %-10s %-40.40s %12" PRIu64 " %10s\n", "written", a->written.label, written_total,
           "-");
    for (size_t c = 0; c < ncols; c++) {
        if (cols[c].is_produced)
            continue;
        uint64_t behind =
            written_total > cols[c].total_expected ? written_total - cols[c].total_expected : 0;
        printf("  %-10s %-40.40s %12" PRIu64 " %10" PRIu64, cols[c].label, cols[c].name,
               cols[c].total, cols[c].minutes_differing);
        if (behind > 0)
            printf("   (%" PRIu64 " %s)", behind,
                   strncmp(cols[c].label, "copy", 4) == 0 ? "not copied yet" : "not read");
        printf("\n");
    }

    /* The rows: every one with --verbose, else those that differ. */
    int header = 0;
    for (size_t i = 0; i < nrows; i++) {
        row_key_t *r = &rows[i];
        uint64_t w = fw_audit_table_get(written, 0, r->bucket, r->minute);
        char why[512] = "";
        size_t wl = 0;
        for (size_t c = 0; c < ncols; c++) {
            if (differs(a, &cols[c], written, r->bucket, r->minute) && wl < sizeof(why))
                wl += (size_t)snprintf(why + wl, sizeof(why) - wl, "%s%s %" PRId64 " vs %" PRIu64,
                                       wl ? "; " : "", cols[c].label,
                                       got_of(&cols[c], r->bucket, r->minute),
                                       expected_of(&cols[c], written, r->bucket, r->minute));
        }
        if (why[0] != '\0')
            differing++;
        if (!verbose && why[0] == '\0')
            continue;
        if (!header) {
            printf("\n  %6s  %-16s %10s", "bucket", "minute (UTC)", "written");
            for (size_t c = 0; c < ncols; c++)
                printf(" %10.10s", cols[c].label);
            printf("\n");
            header = 1;
        }
        char when[32];
        minute_text(r->minute, when, sizeof(when));
        printf("  %6" PRIu32 "  %-16s %10" PRIu64, r->bucket, when, w);
        for (size_t c = 0; c < ncols; c++)
            printf(" %10" PRId64, got_of(&cols[c], r->bucket, r->minute));
        if (why[0] != '\0')
            printf("   DIFFERS: %s (expected)", why);
        printf("\n");
    }
    free(rows);

    for (size_t i = 0; i < ndups; i++) {
        if (i == 0)
            printf("\n  duplicates in the writers' segments (one block stored twice):\n");
        if (i == 20) {
            printf("    ... and %zu more\n", ndups - 20);
            break;
        }
        char when[32];
        minute_text(dups[i].minute, when, sizeof(when));
        printf("    bucket %" PRIu32 " %s: producer %016" PRIx64 " sequence %" PRIu64 " (%" PRIu32
               " records) in segment %" PRIu64 " offset %" PRIu64 " and segment %" PRIu64
               " offset %" PRIu64 "\n",
               dups[i].bucket, when, dups[i].producer_id, dups[i].sequence, dups[i].records,
               dups[i].first_segment, dups[i].first_offset, dups[i].segment_id, dups[i].offset);
    }
    return differing > 0 || ndups > 0;
}

static void print_sources(const fw_audit_t *a)
{
    char from[32], to[32];
    minute_text(a->since_min, from, sizeof(from));
    minute_text(a->until_min - 1, to, sizeof(to));
    printf("freeway audit: category %s, minutes %s .. %s UTC\n", a->category,
           a->since_min == 0 ? "(all)" : from, to);
    printf("  written   %s: %" PRIu64 " segments, %" PRIu64 " blocks\n", a->written.label,
           a->written.segments, a->written.blocks);
    for (size_t i = 0; i < a->ncopies; i++) {
        const fw_astore_t *s = &a->copies[i];
        if (s->by_progress)
            printf("  copy%-5zu %s: counted by the copier's progress (not readable from here)\n",
                   i + 1, s->label);
        else
            printf("  copy%-5zu %s: %" PRIu64 " segments, %" PRIu64 " blocks\n", i + 1, s->label,
                   s->segments, s->blocks);
    }
    uint64_t missing = 0;
    for (size_t i = 0; i < a->nplives; i++)
        missing += a->plives[i].max_seq - a->plives[i].reports;
    printf("  reports   %" PRIu64 " about %s: %zu producer lives (%" PRIu64
           " without a final report: running, or killed with their last counts)",
           a->reports, a->category, a->nplives, a->plives_unfinished);
    if (missing > 0)
        printf(", %" PRIu64 " producer reports missing", missing);
    if (a->plives_silent > 0)
        printf(", %" PRIu64 " producer ids that wrote without any report", a->plives_silent);
    printf("; %zu consumers\n", a->nconsumers);
    if (a->repeated_reports > 0)
        printf("  reports stored more than once: %" PRIu64 " (counted once)\n",
               a->repeated_reports);
    if (a->bad_reports > 0)
        printf("  unreadable reports: %" PRIu64 " (first: %s)\n", a->bad_reports,
               a->first_bad_report);
    if (a->reports_damaged > 0)
        printf("  DAMAGE in the audit category's segments: %" PRIu64
               " (reports after it not read)\n",
               a->reports_damaged);
    if (a->written.damaged > 0)
        printf("  DAMAGE in the writers' segments: %" PRIu64 " (first: %s); counting stopped at "
               "each\n",
               a->written.damaged, a->written.first_damage);
    for (size_t i = 0; i < a->ncopies; i++)
        if (a->copies[i].damaged > 0)
            printf("  DAMAGE in copy%zu: %" PRIu64 " (first: %s)\n", i + 1, a->copies[i].damaged,
                   a->copies[i].first_damage);
}

/* ---- the command ------------------------------------------------------------------------------
 */

static int locate(const audit_cfg_t *cfg, fw_audit_t *a)
{
    int need_zk = cfg->root == NULL || cfg->copies == NULL;
    fw_cli_zk_t z;
    if (need_zk && fw_cli_zk_connect(&z, cfg->zk, NULL, (int)cfg->timeout) < 0)
        return -1;
    int rc = 0;
    if (cfg->root != NULL)
        snprintf(a->written.path, sizeof(a->written.path), "%s", cfg->root);
    else
        rc = writers_root(&z, a->written.path, sizeof(a->written.path));
    snprintf(a->written.label, sizeof(a->written.label), "%s", a->written.path);
    if (rc == 0 && cfg->copies == NULL) {
        rc = find_copies(&z, a);
    } else if (rc == 0 && strcmp(cfg->copies, "none") != 0) {
        char *list = strdup(cfg->copies), *save = NULL;
        for (char *u = list ? strtok_r(list, ", ", &save) : NULL; u != NULL && rc == 0;
             u = strtok_r(NULL, ", ", &save))
            rc = add_copy(a, u);
        free(list);
    }
    /*
     * The copier's progress, read before the copies are: a copier records it
     * once the copy holds the bytes, so a readable copy holds at least that.
     */
    for (size_t i = 0; rc == 0 && i < a->ncopies; i++) {
        if (a->copies[i].by_progress && !need_zk) {
            fprintf(stderr,
                    "freeway audit: %s is counted by the copier's progress, which "
                    "needs ZooKeeper: leave out --copies or give a file:// copy\n",
                    a->copies[i].label);
            rc = -1;
        } else if (need_zk) {
            rc = read_progress(&z, a, &a->copies[i]);
        }
    }
    if (need_zk)
        fw_cli_zk_close(&z);
    return rc;
}

static int run(const audit_cfg_t *cfg)
{
    int64_t now = fw_clock_wall_ms();
    fw_audit_t a = {.category = cfg->category};
    int64_t since = cfg->since ? parse_time(cfg->since, now) : 0;
    int64_t until = cfg->until ? parse_time(cfg->until, now) : now + 60000;
    if (since < 0 || until < 0) {
        fprintf(stderr, "freeway audit: cannot read the time \"%s\"\n",
                since < 0 ? cfg->since : cfg->until);
        return 2;
    }
    /* Reports carry no minute past the year 9999 (audit.h): nor does a window. */
    a.since_min = fw_audit_minute(since);
    a.until_min = fw_audit_minute(until) >= FW_AUDIT_MINUTE_MAX ? FW_AUDIT_MINUTE_MAX + 1
                                                                : fw_audit_minute(until + 59999);
    if (a.since_min >= a.until_min) {
        fprintf(stderr, "freeway audit: no minute from --since %s to --until %s\n",
                cfg->since != NULL ? cfg->since : "(the epoch)",
                cfg->until != NULL ? cfg->until : "(now)");
        return 2;
    }
    /* --settle 0: judge every minute (producers have closed, their last reports are in). */
    a.settled_min = cfg->settle <= 0 ? INT64_MAX : fw_audit_minute(now - cfg->settle);
    int status = 2;
    column_t *cols = NULL;
    size_t ncols = 0;
    fw_audit_table_t written = {0};
    fw_adup_t *dups = NULL;
    size_t ndups = 0;
    if (locate(cfg, &a) < 0)
        goto out;
    int rc = fw_audit_scan_store(&a, &a.written);
    if (rc < 0) {
        fprintf(stderr, "freeway audit: cannot read the writers' root %s: %s\n", a.written.path,
                fw_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < a.ncopies; i++)
        if (!a.copies[i].by_progress && (rc = fw_audit_scan_store(&a, &a.copies[i])) < 0) {
            fprintf(stderr, "freeway audit: cannot read the copy %s: %s\n", a.copies[i].label,
                    fw_strerror(rc));
            goto out;
        }
    if ((rc = fw_audit_read_reports(&a, a.written.path, cfg->audit_category)) < 0) {
        fprintf(stderr, "freeway audit: cannot read the audit category %s: %s\n",
                cfg->audit_category, fw_strerror(rc));
        goto out;
    }
    if (fw_audit_count_silent(&a) < 0)
        goto oom;
    /*
     * No producer reported on the category at all (the audit category was
     * never created, or its producers have audit_category NULL): there is
     * nothing to judge "produced" by, rather than a loss in every minute.
     */
    if (a.nplives == 0 && a.bad_reports == 0)
        a.settled_min = INT64_MIN;
    /* A mistyped category is nothing to read, not a category in which every count agrees. */
    int found = a.written.found || a.reports > 0;
    for (size_t i = 0; i < a.ncopies; i++)
        found |= a.copies[i].found || (a.copies[i].by_progress && a.copies[i].nbuckets > 0);
    if (!found) {
        fprintf(stderr,
                "freeway audit: nothing of category %s to audit: no directory of it under %s, "
                "in a copy, nor a report\n",
                a.category, a.written.path);
        goto out;
    }

    /* Columns: produced, each copy, each consumer. */
    ncols = 1 + a.ncopies + a.nconsumers;
    if ((cols = calloc(ncols, sizeof(*cols))) == NULL)
        goto oom;
    cols[0].is_produced = 1;
    snprintf(cols[0].label, sizeof(cols[0].label), "produced");
    if (fw_audit_count_store(&a.written, &written) < 0)
        goto oom;
    for (uint32_t i = 0; i < a.produced.cap; i++) {
        const fw_audit_cell_t *c = &a.produced.cells[i];
        if (c->records != 0 &&
            fw_audit_table_add(&cols[0].got, 0, c->bucket, c->minute, c->records) < 0)
            goto oom;
    }
    for (size_t i = 0; i < a.ncopies; i++) {
        column_t *c = &cols[1 + i];
        snprintf(c->label, sizeof(c->label), "copy%zu", i + 1);
        snprintf(c->name, sizeof(c->name), "%s", a.copies[i].label);
        if (fw_audit_copy_expected(&a.written, &a.copies[i], &c->expected) < 0)
            goto oom;
        if (a.copies[i].by_progress) {
            /* Not readable: what the progress covers is taken as copied. */
            if (fw_audit_copy_expected(&a.written, &a.copies[i], &c->got) < 0)
                goto oom;
        } else if (fw_audit_count_store(&a.copies[i], &c->got) < 0) {
            goto oom;
        }
    }
    for (size_t i = 0; i < a.nconsumers; i++) {
        column_t *c = &cols[1 + a.ncopies + i];
        snprintf(c->label, sizeof(c->label), "%.20s", a.consumers[i].name);
        snprintf(c->name, sizeof(c->name), "consumer %s (%zu lives)", a.consumers[i].name,
                 a.consumers[i].nlives);
        if (fw_audit_consumer(&a.written, &a.consumers[i], &c->got, &c->again, &c->expected) < 0)
            goto oom;
    }
    if (fw_audit_duplicates(&a.written, &dups, &ndups) < 0)
        goto oom;

    print_sources(&a);
    rc = print_audit(&a, &written, cols, ncols, dups, ndups, cfg->verbose);
    if (rc < 0)
        goto oom;
    int damaged = a.written.damaged > 0 || a.reports_damaged > 0;
    for (size_t i = 0; i < a.ncopies; i++)
        damaged |= a.copies[i].damaged > 0;
    if (rc == 0 && !damaged)
        printf("\n  every count agrees\n");
    else
        printf("\n  DIFFERENCES found: see above\n");
    status = rc != 0 || damaged;
    goto out;
oom:
    fprintf(stderr, "freeway audit: out of memory\n");
    status = 2;
out:
    for (size_t i = 0; i < ncols; i++) {
        fw_audit_table_free(&cols[i].got);
        fw_audit_table_free(&cols[i].again);
        fw_audit_table_free(&cols[i].expected);
    }
    free(cols);
    free(dups);
    fw_audit_table_free(&written);
    fw_audit_free(&a);
    return status;
}

int fw_cli_audit(int argc, char **argv)
{
    audit_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256], **rest, *spare = NULL;
    int nrest;
    char **args = fw_cli_short_category(argc, argv, &spare);
    if (args == NULL)
        return 2;
    int rc = fw_config_parse(audit_opts, &cfg, argc, args, &rest, &nrest, err, sizeof(err));
    if ((rc = fw_cli_parsed("audit", rc, err, usage)) < 0) {
        if (nrest > 0) {
            fprintf(stderr, "freeway audit: unexpected argument \"%s\"\n", rest[0]);
            rc = 2;
        } else if (cfg.category == NULL || !fw_category_valid(cfg.category)) {
            fprintf(stderr, "freeway audit: give the category to audit with -c NAME\n");
            rc = 2;
        } else if (!fw_category_valid(cfg.audit_category)) {
            fprintf(stderr, "freeway audit: \"%s\" is not a category name\n", cfg.audit_category);
            rc = 2;
        } else {
            zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
            rc = run(&cfg);
        }
    }
    free(args);
    free(spare);
    fw_config_free(audit_opts, &cfg);
    return rc;
}
