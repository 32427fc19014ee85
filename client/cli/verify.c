/*
 * freeway verify PATH...: checks segment files, or every *.seg under a
 * directory, block by block: header and payload CRCs, every record decoded,
 * the seal's counts, and that the file's name and place agree with its
 * header. One line per damaged file, then a total; exit 1 on any damage.
 */
#include "cli.h"

#include "block.h"
#include "config.h"
#include "error.h"
#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct verify_cfg_s {
    int verbose;
} verify_cfg_t;

static const fw_option_t verify_opts[] = {
    {"verbose", FW_OPT_BOOL, offsetof(verify_cfg_t, verbose), "false", NULL,
     "print a line for every segment, not only damaged ones"},
    FW_OPTIONS_END,
};

typedef struct totals_s {
    uint64_t segments, blocks, records, damaged, open;
    int verbose;
    fw_buf_t scratch;
} totals_t;

static int decode_block(const fw_seg_block_t *b, void *arg)
{
    totals_t *t = arg;
    fw_block_header_t h;
    fw_record_iter_t it;
    return fw_block_decode(b->data, b->len, FW_RECORD_MAX_HARD, &t->scratch, &h, &it);
}

static int all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Compares the header with what the path says: <category>/<bucket>/<id>.seg. */
static int placement_error(const char *path, const fw_seg_header_t *h, char *why, size_t cap)
{
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", path);
    uint64_t id;
    if (fw_seg_name_parse(basename(copy), &id) == 0 && id != h->segment_id) {
        snprintf(why, cap, "file name says segment %" PRIu64 ", header says %" PRIu64, id,
                 h->segment_id);
        return 1;
    }
    snprintf(copy, sizeof(copy), "%s", path);
    char *bucket_dir = dirname(copy);
    char bucket[256];
    snprintf(bucket, sizeof(bucket), "%s", basename(bucket_dir));
    char *category_dir = dirname(bucket_dir);
    const char *category = basename(category_dir);
    if (all_digits(bucket) && fw_category_valid(category)) {
        if (strtoull(bucket, NULL, 10) != h->bucket || strcmp(category, h->category) != 0) {
            snprintf(why, cap, "stored under %s/%s but its header says %s/%" PRIu32, category,
                     bucket, h->category, h->bucket);
            return 1;
        }
    }
    return 0;
}

static void verify_file(const char *path, totals_t *t)
{
    fw_seg_scan_t s;
    char why[512];
    t->segments++;
    int rc = fw_seg_scan_blocks(path, &s, decode_block, t);
    if (rc < 0) {
        t->damaged++;
        if (rc == -EAGAIN)
            printf("%s: DAMAGED: segment header incomplete\n", path);
        else
            printf("%s: DAMAGED: %s\n", path, fw_strerror(rc));
        return;
    }
    t->blocks += s.blocks;
    t->records += s.records;
    if (s.damage == 0 && placement_error(path, &s.header, why, sizeof(why))) {
        t->damaged++;
        printf("%s: MISPLACED: %s\n", path, why);
        return;
    }
    if (s.damage != 0) {
        t->damaged++;
        if (s.partial)
            printf("%s: DAMAGED at offset %" PRIu64 ": torn tail, last block incomplete (%" PRIu64
                   " bytes); a crash, or a writer still appending (%" PRIu64
                   " whole blocks before it)\n",
                   path, s.valid_end, s.file_size - s.valid_end, s.blocks);
        else if (s.sealed)
            printf("%s: DAMAGED at offset %" PRIu64 ": %" PRIu64 " stray bytes after the seal\n",
                   path, s.valid_end, s.file_size - s.valid_end);
        else
            printf("%s: DAMAGED at offset %" PRIu64 ": %s (%" PRIu64 " whole blocks before it)\n",
                   path, s.valid_end, fw_strerror(s.damage), s.blocks);
        return;
    }
    if (!s.sealed)
        t->open++;
    if (t->verbose)
        printf("%s: ok, %" PRIu64 " blocks, %" PRIu64 " records, %s\n", path, s.blocks, s.records,
               s.sealed ? "sealed" : "open");
}

static int has_seg_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".seg") == 0;
}

static int select_entry(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static void verify_path(const char *path, int explicit, totals_t *t)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        t->damaged++;
        printf("%s: cannot read: %s\n", path, strerror(errno));
        return;
    }
    if (S_ISREG(st.st_mode)) {
        if (explicit || has_seg_suffix(path))
            verify_file(path, t);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    struct dirent **entries;
    int n = scandir(path, &entries, select_entry, alphasort);
    if (n < 0) {
        t->damaged++;
        printf("%s: cannot list: %s\n", path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, entries[i]->d_name);
        verify_path(child, 0, t);
        free(entries[i]);
    }
    free(entries);
}

static void verify_usage(FILE *out)
{
    fprintf(out, "usage: freeway verify [--verbose] PATH...\n\n"
                 "Checks segment files, or every *.seg file under each directory: header and\n"
                 "payload CRCs of every block, every record decoded, the seal, and that the\n"
                 "file's name and place (ROOT/<category>/<bucket>/<id>.seg) match its header.\n"
                 "Prints a line per damaged file and a total; exits 1 if anything is damaged.\n"
                 "An open segment being appended to may show a torn tail while a write is in\n"
                 "flight: verify files at rest.\n\noptions:\n");
    fw_config_usage(verify_opts, out);
}

int fw_cli_verify(int argc, char **argv)
{
    verify_cfg_t cfg = {0};
    char err[512];
    char **paths;
    int npaths;
    int rc = fw_config_parse(verify_opts, &cfg, argc, argv, &paths, &npaths, err, sizeof(err));
    if ((rc = fw_cli_parsed("verify", rc, err, verify_usage)) >= 0)
        return rc;
    if (npaths == 0) {
        fprintf(stderr, "freeway verify: give at least one PATH\n");
        return 2;
    }
    totals_t t = {.verbose = cfg.verbose};
    for (int i = 0; i < npaths; i++)
        verify_path(paths[i], 1, &t);
    fw_buf_free(&t.scratch);
    printf("verified %" PRIu64 " segments (%" PRIu64 " open): %" PRIu64 " blocks, %" PRIu64
           " records; %" PRIu64 " damaged\n",
           t.segments, t.open, t.blocks, t.records, t.damaged);
    fw_config_free(verify_opts, &cfg);
    return t.damaged ? 1 : 0;
}
