/* The producer's spool on local disk (see spool.h and docs/spool.md). */
#include "spool.h"

#include "clock.h"
#include "error.h"
#include "fsutil.h"
#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BYTES_DEFAULT (4u << 20)
#define MAX_OPEN_DEFAULT   256
#define TABLE_SIZE         1024

typedef struct spool_file_s spool_file_t;

/* One spool file of a bucket. */
struct spool_file_s {
    spool_file_t *next;
    uint64_t id;
    uint64_t size;        /* bytes on disk */
    uint64_t blocks;      /* whole blocks in it */
    uint64_t records;     /* ... their records */
    uint64_t read;        /* blocks read for replay */
    uint64_t read_offset; /* where the next unread block starts (0: the first block) */
    int damaged;          /* given up on: kept as <id>.seg.damaged, not deleted */
    uint64_t resolved;
    uint64_t resolved_records;
    /* Offsets of blocks an earlier producer resolved (from <id>.seg.resolved), ascending. */
    uint64_t *prior;
    size_t nprior, prior_next; /* prior_next: the first not yet passed by the reader */
    fw_segw_t *w;              /* open for appending, or NULL (then it never grows again) */
    int dirty;                 /* appended to since its last fdatasync */
};

struct fw_spool_bucket_s {
    fw_spool_bucket_t *hnext;         /* hash chain */
    fw_spool_bucket_t *next;          /* every bucket, in the order they were made */
    fw_spool_bucket_t *onext, *oprev; /* in the list of buckets with an open appender */
    char category[FW_CATEGORY_MAX + 1];
    uint32_t id;
    char *dir;
    int dir_made;
    spool_file_t *head, *tail; /* oldest first */
    spool_file_t *reading;     /* the file the reader is on, or NULL */
    fw_segr_t *reader;
    uint64_t next_file_id;
};

struct fw_spool_s {
    fw_spool_config_t c;
    char *dir;
    int lock_fd;
    int failed; /* an fdatasync failed: nothing more is taken */
    fw_spool_bucket_t *table[TABLE_SIZE];
    fw_spool_bucket_t *all_head, *all_tail;
    fw_spool_bucket_t *open_head, *open_tail; /* most recently appended first */
    uint32_t nopen;
    uint64_t bytes, blocks, records;
    int resolved_warned; /* a .resolved file could not be written: said once */
};

__attribute__((format(printf, 3, 4))) static void
slog(const fw_spool_t *s, fw_producer_log_level_t level, const char *fmt, ...)
{
    if (s->c.log_cb == NULL)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->c.log_cb(level, line, s->c.log_arg);
}

static uint32_t bucket_hash(const char *category, uint32_t id)
{
    uint32_t h = 2166136261u;
    for (const char *c = category; *c != '\0'; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return (h ^ id) * 16777619u;
}

static void file_path(const fw_spool_bucket_t *b, uint64_t id, char *out, size_t cap)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, cap, "%s/%s", b->dir, name);
}

/*
 * <id>.seg.resolved lists, as little-endian u64 offsets, the blocks of <id>.seg
 * that were resolved (acked, or refused for good) while the file had to stay
 * (other blocks in it were not). A later producer skips them instead of
 * sending them again: a writer whose dedup table forgot the producer would
 * store them twice, and the audit would count the acks of two lives.
 */
static void resolved_path(const fw_spool_bucket_t *b, uint64_t id, char *out, size_t cap)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, cap, "%s/%s.resolved", b->dir, name);
}

/* ---- buckets ----------------------------------------------------------------------------- */

fw_spool_bucket_t *fw_spool_bucket(fw_spool_t *s, const char *category, uint32_t id, int create)
{
    uint32_t slot = bucket_hash(category, id) % TABLE_SIZE;
    for (fw_spool_bucket_t *b = s->table[slot]; b != NULL; b = b->hnext) {
        if (b->id == id && strcmp(b->category, category) == 0)
            return b;
    }
    if (!create || strlen(category) > FW_CATEGORY_MAX)
        return NULL;
    fw_spool_bucket_t *b = calloc(1, sizeof(*b));
    char dir[PATH_MAX];
    if (b == NULL || fw_seg_bucket_dir(dir, sizeof(dir), s->dir, category, id) < 0 ||
        (b->dir = strdup(dir)) == NULL) {
        free(b);
        return NULL;
    }
    snprintf(b->category, sizeof(b->category), "%s", category);
    b->id = id;
    b->next_file_id = 1;
    b->hnext = s->table[slot];
    s->table[slot] = b;
    if (s->all_tail != NULL)
        s->all_tail->next = b;
    else
        s->all_head = b;
    s->all_tail = b;
    return b;
}

fw_spool_bucket_t *fw_spool_next_bucket(fw_spool_t *s, fw_spool_bucket_t *after)
{
    fw_spool_bucket_t *b = after != NULL ? after->next : s->all_head;
    while (b != NULL && b->head == NULL)
        b = b->next;
    return b;
}

const char *fw_spool_bucket_category(const fw_spool_bucket_t *b)
{
    return b->category;
}

uint32_t fw_spool_bucket_id(const fw_spool_bucket_t *b)
{
    return b->id;
}

int fw_spool_bucket_empty(const fw_spool_bucket_t *b)
{
    for (const spool_file_t *f = b->head; f != NULL; f = f->next) {
        if (f->resolved < f->blocks)
            return 0;
    }
    return 1;
}

/* ---- files -------------------------------------------------------------------------------- */

static void open_unlink(fw_spool_t *s, fw_spool_bucket_t *b)
{
    if (b->oprev != NULL)
        b->oprev->onext = b->onext;
    else if (s->open_head == b)
        s->open_head = b->onext;
    else
        return; /* not in the list */
    if (b->onext != NULL)
        b->onext->oprev = b->oprev;
    else
        s->open_tail = b->oprev;
    b->onext = b->oprev = NULL;
    s->nopen--;
}

static void open_push(fw_spool_t *s, fw_spool_bucket_t *b)
{
    b->oprev = NULL;
    b->onext = s->open_head;
    if (s->open_head != NULL)
        s->open_head->oprev = b;
    else
        s->open_tail = b;
    s->open_head = b;
    s->nopen++;
}

static int file_sync(fw_spool_t *s, fw_spool_bucket_t *b, spool_file_t *f)
{
    if (!f->dirty || f->w == NULL)
        return 0;
    int rc = fw_segw_sync(f->w);
    if (rc < 0) {
        s->failed = 1;
        slog(s, FW_PRODUCER_LOG_ERROR,
             "spool %s/%" PRIu32 ": fdatasync of file %" PRIu64
             " failed (%s): the spool takes nothing more, and what it holds may be lost",
             b->category, b->id, f->id, fw_strerror(rc));
        return rc;
    }
    f->dirty = 0;
    return 0;
}

/*
 * The bucket's newest file stops taking appends, synced first unless sync
 * is NEVER or the file is about to be deleted (keep is 0).
 */
static int file_finish(fw_spool_t *s, fw_spool_bucket_t *b, int keep)
{
    spool_file_t *f = b->tail;
    if (f == NULL || f->w == NULL)
        return 0;
    int rc = keep && s->c.sync != FW_SPOOL_SYNC_NEVER ? file_sync(s, b, f) : 0;
    fw_segw_close(f->w);
    f->w = NULL;
    f->dirty = 0;
    open_unlink(s, b);
    return rc;
}

/* Removes file f of bucket b (which must be b->head) once nothing in it is needed. */
static void file_delete(fw_spool_t *s, fw_spool_bucket_t *b, spool_file_t *f)
{
    char path[PATH_MAX];
    file_path(b, f->id, path, sizeof(path));
    if (b->reading == f) {
        fw_segr_close(b->reader);
        b->reader = NULL;
        b->reading = NULL;
    }
    if (f->w != NULL) {
        fw_segw_close(f->w);
        f->w = NULL;
        open_unlink(s, b);
    }
    if (f->damaged) {
        /* Its unreadable part is for people to look at, never sent again. */
        char kept[PATH_MAX + 16];
        snprintf(kept, sizeof(kept), "%s.damaged", path);
        if (rename(path, kept) < 0)
            slog(s, FW_PRODUCER_LOG_WARN, "spool: cannot rename %s: %s", path, strerror(errno));
    } else if (unlink(path) < 0 && errno != ENOENT) {
        slog(s, FW_PRODUCER_LOG_WARN, "spool: cannot remove %s: %s", path, strerror(errno));
    }
    /* After the segment: a .resolved outliving its segment is harmless (file_new removes it). */
    resolved_path(b, f->id, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        slog(s, FW_PRODUCER_LOG_WARN, "spool: cannot remove %s: %s", path, strerror(errno));
    s->bytes -= f->size;
    s->blocks -= f->blocks - f->resolved;
    s->records -= f->records - f->resolved_records;
    b->head = f->next;
    if (b->tail == f)
        b->tail = NULL;
    free(f->prior);
    free(f);
}

/* Deletes the bucket's oldest files while every block in them is resolved. */
static void delete_done(fw_spool_t *s, fw_spool_bucket_t *b)
{
    spool_file_t *f;
    while ((f = b->head) != NULL && f->read == f->blocks && f->resolved == f->blocks &&
           f->w == NULL)
        file_delete(s, b, f);
}

static spool_file_t *file_new(fw_spool_t *s, fw_spool_bucket_t *b, int *rc)
{
    if (!b->dir_made) {
        if ((*rc = fw_mkdir_p(b->dir)) < 0)
            return NULL;
        b->dir_made = 1;
    }
    if (s->nopen >= s->c.max_open && s->open_tail != NULL)
        file_finish(s, s->open_tail, 1);
    spool_file_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    /* A .resolved left by a deleted file of the same id must not hide this file's blocks. */
    char stale[PATH_MAX];
    resolved_path(b, b->next_file_id, stale, sizeof(stale));
    if (unlink(stale) < 0 && errno != ENOENT) {
        *rc = -errno;
        free(f);
        return NULL;
    }
    fw_seg_header_t h;
    memset(&h, 0, sizeof(h));
    h.segment_id = b->next_file_id;
    h.created_ms = fw_clock_wall_ms();
    h.bucket = b->id;
    snprintf(h.category, sizeof(h.category), "%s", b->category);
    if ((*rc = fw_segw_create(b->dir, &h, &f->w)) < 0) {
        free(f);
        return NULL;
    }
    f->id = b->next_file_id++;
    f->size = f->w->end;
    s->bytes += f->size;
    if (b->tail != NULL)
        b->tail->next = f;
    else
        b->head = f;
    b->tail = f;
    open_push(s, b);
    return f;
}

/* ---- append and sync ------------------------------------------------------------------------ */

int fw_spool_append(fw_spool_t *s, fw_spool_bucket_t *b, const uint8_t *block, size_t len,
                    uint32_t records)
{
    if (s->failed)
        return FW_ESEG_FAILED;
    spool_file_t *f = b->tail;
    if (f != NULL && f->w != NULL && f->blocks > 0 && f->size + len > s->c.file_bytes) {
        int rc = file_finish(s, b, 1);
        delete_done(s, b);
        if (rc < 0)
            return rc;
        f = NULL;
    }
    int need_new = f == NULL || f->w == NULL;
    if (s->bytes + len + (need_new ? FW_SEG_HEADER_MAX : 0) > s->c.max_bytes)
        return -ENOSPC;
    if (need_new) {
        int rc;
        if ((f = file_new(s, b, &rc)) == NULL)
            return rc;
    } else if (s->open_head != b) {
        open_unlink(s, b);
        open_push(s, b);
    }
    struct iovec iov = {(void *)block, len};
    uint64_t offset;
    int rc = fw_segw_append(f->w, &iov, 1, 1, records, &offset);
    if (rc < 0)
        return rc;
    f->size += len;
    f->blocks++;
    f->records += records;
    f->dirty = 1;
    s->bytes += len;
    s->blocks++;
    s->records += records;
    if (s->c.sync == FW_SPOOL_SYNC_ALWAYS)
        return file_sync(s, b, f);
    return 0;
}

int fw_spool_sync(fw_spool_t *s)
{
    if (s->c.sync == FW_SPOOL_SYNC_NEVER)
        return 0;
    int rc = 0;
    for (fw_spool_bucket_t *b = s->open_head; b != NULL; b = b->onext) {
        int r = file_sync(s, b, b->tail);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return s->failed ? FW_ESEG_FAILED : rc;
}

int fw_spool_dirty(const fw_spool_t *s)
{
    if (s->c.sync == FW_SPOOL_SYNC_NEVER)
        return 0;
    for (const fw_spool_bucket_t *b = s->open_head; b != NULL; b = b->onext) {
        if (b->tail != NULL && b->tail->dirty)
            return 1;
    }
    return 0;
}

/* ---- replay ------------------------------------------------------------------------------------
 */

/* The first file with blocks not yet read, or NULL. */
static spool_file_t *unread_file(fw_spool_bucket_t *b)
{
    spool_file_t *f = b->reading != NULL ? b->reading : b->head;
    while (f != NULL && f->read == f->blocks)
        f = f->next;
    return f;
}

/* Stops reading file f at a block it cannot read: the rest of it counts as read and resolved. */
static void skip_rest(fw_spool_t *s, fw_spool_bucket_t *b, spool_file_t *f, int why,
                      uint64_t offset)
{
    uint64_t lost = f->blocks - f->read;
    slog(s, FW_PRODUCER_LOG_ERROR,
         "spool %s/%" PRIu32 ": file %" PRIu64 " cannot be read at byte %" PRIu64
         " (%s): its last %" PRIu64 " blocks are lost (the file is kept as .damaged); replay "
         "goes on with the next file",
         b->category, b->id, f->id, offset, fw_strerror(why), lost);
    s->blocks -= lost;
    f->resolved += lost;
    f->read = f->blocks;
    f->damaged = 1;
    /* Their records are unknown: the file's remaining count goes with the file. */
    if (f->w != NULL)
        file_finish(s, b, 1);
}

/* 1 if block sb of f was resolved by an earlier producer: then it counts as read and resolved. */
static int skip_prior(fw_spool_t *s, spool_file_t *f, const fw_seg_block_t *sb, uint64_t next)
{
    while (f->prior_next < f->nprior && f->prior[f->prior_next] < sb->offset)
        f->prior_next++;
    if (f->prior_next == f->nprior || f->prior[f->prior_next] != sb->offset)
        return 0;
    f->prior_next++;
    f->read++;
    f->read_offset = next;
    f->resolved++;
    f->resolved_records += sb->header.record_count;
    s->blocks--;
    s->records -= sb->header.record_count;
    return 1;
}

/* 1 if a reader's error means the file's bytes are bad, not that reading failed for now. */
static int is_damage(int rc)
{
    return rc == FW_ESEG_DAMAGED || rc == FW_ESEG_HEADER || rc == -EAGAIN || rc >= 0;
}

int fw_spool_read(fw_spool_t *s, fw_spool_bucket_t *b, fw_buf_t *out, fw_spool_block_t *blk)
{
    for (;;) {
        spool_file_t *f = unread_file(b);
        if (f == NULL)
            return 0;
        if (b->reading != f) {
            fw_spool_read_pause(b);
            char path[PATH_MAX];
            file_path(b, f->id, path, sizeof(path));
            int rc = fw_segr_open(path, &b->reader);
            if (rc == 0 && f->read_offset > 0)
                rc = fw_segr_seek(b->reader, f->read_offset);
            if (rc < 0 && !is_damage(rc)) {
                /* Out of descriptors or memory, an I/O error: try again later, lose nothing. */
                fw_segr_close(b->reader);
                b->reader = NULL;
                return rc;
            }
            if (rc < 0) {
                fw_segr_close(b->reader);
                b->reader = NULL;
                skip_rest(s, b, f, rc, f->read_offset);
                delete_done(s, b);
                continue;
            }
            b->reading = f;
        }
        fw_seg_block_t sb;
        int rc = fw_segr_next(b->reader, &sb);
        if (rc == FW_SEGR_BLOCK && skip_prior(s, f, &sb, fw_segr_position(b->reader))) {
            if (f->read == f->blocks)
                delete_done(s, b);
            continue;
        }
        if (rc == FW_SEGR_BLOCK) {
            fw_buf_reset(out);
            if (fw_buf_append(out, sb.data, sb.len) < 0)
                return -ENOMEM;
            f->read++;
            f->read_offset = fw_segr_position(b->reader);
            blk->producer_id = sb.header.producer_id;
            blk->sequence = sb.header.sequence;
            blk->records = sb.header.record_count;
            blk->base_ts = sb.header.base_ts;
            blk->ref.file_id = f->id;
            blk->ref.records = sb.header.record_count;
            blk->ref.offset = sb.offset;
            return 1;
        }
        if (rc < 0 && !is_damage(rc))
            return rc;
        uint64_t at = fw_segr_position(b->reader);
        int why = rc;
        if (rc == FW_ESEG_DAMAGED)
            fw_segr_damage(b->reader, &at, &why);
        /* The file holds fewer readable blocks than it did at open: damaged under us. */
        skip_rest(s, b, f, rc < 0 ? why : FW_ESEG_DAMAGED, at);
        delete_done(s, b);
    }
}

void fw_spool_read_pause(fw_spool_bucket_t *b)
{
    fw_segr_close(b->reader);
    b->reader = NULL;
    b->reading = NULL;
}

int fw_spool_rewrite_header(fw_spool_t *s, fw_spool_bucket_t *b, const fw_spool_ref_t *ref,
                            const uint8_t *header)
{
    char path[PATH_MAX];
    file_path(b, ref->file_id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    ssize_t n;
    do {
        n = pwrite(fd, header, FW_BLOCK_HEADER_SIZE, (off_t)ref->offset);
    } while (n < 0 && errno == EINTR);
    if (n != FW_BLOCK_HEADER_SIZE)
        rc = n < 0 ? -errno : -EIO;
    else if (s->c.sync == FW_SPOOL_SYNC_ALWAYS && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int fw_spool_failed(const fw_spool_t *s)
{
    return s->failed;
}

/*
 * Appends offset to f's .resolved file. Not synced: the page cache survives a
 * kill -9, and after a host crash the worst is a block sent again (which
 * the writer's dedup drops while it remembers the producer).
 */
static void note_resolved(fw_spool_t *s, fw_spool_bucket_t *b, spool_file_t *f, uint64_t offset)
{
    char path[PATH_MAX];
    resolved_path(b, f->id, path, sizeof(path));
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(offset >> (8 * i));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ssize_t n = -1;
    if (fd >= 0) {
        do {
            n = write(fd, le, sizeof(le));
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            n = -errno;
        close(fd);
    } else {
        n = -errno;
    }
    if (n != (ssize_t)sizeof(le) && !s->resolved_warned) {
        s->resolved_warned = 1;
        slog(s, FW_PRODUCER_LOG_WARN,
             "spool: cannot note a resolved block in %s (%s): a later producer may send it "
             "again (the writer drops it as a duplicate while it remembers the producer)",
             path, n < 0 ? strerror((int)-n) : "short write");
    }
}

void fw_spool_resolved(fw_spool_t *s, fw_spool_bucket_t *b, const fw_spool_ref_t *ref)
{
    spool_file_t *f = b->head;
    while (f != NULL && f->id != ref->file_id)
        f = f->next;
    if (f == NULL || f->resolved >= f->read)
        return; /* its file was given up on (skip_rest) */
    f->resolved++;
    f->resolved_records += ref->records;
    s->blocks--;
    s->records -= ref->records;
    /* Deleted just below: nothing to remember. Otherwise a later producer must know. */
    if (!(f == b->head && f->read == f->blocks && f->resolved == f->blocks &&
          (f->w == NULL || f == b->tail)))
        note_resolved(s, b, f, ref->offset);
    /* The bucket caught up with everything it spooled: free the space now. */
    if (f == b->tail && f->w != NULL && f->resolved == f->blocks)
        file_finish(s, b, 0);
    delete_done(s, b);
}

void fw_spool_usage(const fw_spool_t *s, fw_spool_usage_t *u)
{
    u->bytes = s->bytes;
    u->blocks = s->blocks;
    u->records = s->records;
    u->buckets = 0;
    for (const fw_spool_bucket_t *b = s->all_head; b != NULL; b = b->next)
        u->buckets += b->head != NULL;
}

/* ---- category shapes ------------------------------------------------------------------------ */

int fw_spool_save_shape(fw_spool_t *s, const fw_spool_shape_t *shape)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16], path[PATH_MAX + 16];
    if (!fw_category_valid(shape->category))
        return FW_EBAD_CATEGORY;
    if (snprintf(dir, sizeof(dir), "%s/%s", s->dir, shape->category) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    snprintf(tmp, sizeof(tmp), "%s/" FW_SPOOL_SHAPE ".tmp", dir);
    snprintf(path, sizeof(path), "%s/" FW_SPOOL_SHAPE, dir);
    int rc = fw_mkdir_p(dir);
    if (rc < 0)
        return rc;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "%" PRIu32 " %" PRIu32 " %" PRIu32 "\n", shape->buckets, shape->max_record,
            shape->codec);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

int fw_spool_shapes(fw_spool_t *s, fw_spool_shape_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *top = opendir(s->dir);
    if (top == NULL)
        return -errno;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(top)) != NULL) {
        if (!fw_category_valid(e->d_name))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/" FW_SPOOL_SHAPE, s->dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        fw_spool_shape_t sh;
        memset(&sh, 0, sizeof(sh));
        int got =
            fscanf(f, "%" SCNu32 " %" SCNu32 " %" SCNu32, &sh.buckets, &sh.max_record, &sh.codec);
        fclose(f);
        if (got != 3 || sh.buckets == 0 || sh.max_record == 0) {
            slog(s, FW_PRODUCER_LOG_WARN, "spool: ignoring %s: not a category shape", path);
            continue;
        }
        memcpy(sh.category, e->d_name, strlen(e->d_name) + 1); /* valid: at most 128 bytes */
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            fw_spool_shape_t *grown = realloc(*out, ncap * sizeof(*grown));
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            *out = grown;
            cap = ncap;
        }
        (*out)[(*n)++] = sh;
    }
    closedir(top);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- open and close ------------------------------------------------------------------------ */

static int take_lock(fw_spool_t *s, char *err, size_t errcap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" FW_SPOOL_LOCK, s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        int rc = -errno;
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(-rc));
        return rc;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = -errno;
        if (rc == -EWOULDBLOCK) {
            char owner[32] = "";
            ssize_t n = pread(s->lock_fd, owner, sizeof(owner) - 1, 0);
            owner[n > 0 ? n : 0] = '\0';
            owner[strcspn(owner, "\n")] = '\0';
            snprintf(err, errcap,
                     "spool directory %s is in use by another producer%s%s%s; a spool has one "
                     "producer at a time",
                     s->dir, owner[0] ? " (pid " : "", owner, owner[0] ? ")" : "");
            return FW_ESPOOL_LOCKED;
        }
        snprintf(err, errcap, "cannot lock %s: %s", path, strerror(-rc));
        return rc;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)n, 0) < 0) {
        /* The pid is for people only. */
    }
    return 0;
}

static int compare_offsets(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
    return a < c ? -1 : a > c;
}

/* Reads f's .resolved (if any): offsets inside the file's whole blocks, sorted, each once. */
static int load_prior(fw_spool_bucket_t *b, spool_file_t *f)
{
    char path[PATH_MAX];
    resolved_path(b, f->id, path, sizeof(path));
    FILE *in = fopen(path, "rbe");
    if (in == NULL)
        return errno == ENOENT ? 0 : -errno;
    size_t cap = 0;
    uint8_t le[8];
    int rc = 0;
    /* A torn last entry (a crash inside the 8-byte write) is not read. */
    while (fread(le, 1, sizeof(le), in) == sizeof(le)) {
        uint64_t off = 0;
        for (int i = 0; i < 8; i++)
            off |= (uint64_t)le[i] << (8 * i);
        if (off >= f->size)
            continue; /* past a tail cut at recovery */
        if (f->nprior == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *m = realloc(f->prior, cap * sizeof(*m));
            if (m == NULL) {
                rc = -ENOMEM;
                break;
            }
            f->prior = m;
        }
        f->prior[f->nprior++] = off;
    }
    fclose(in);
    if (rc < 0) {
        free(f->prior);
        f->prior = NULL;
        f->nprior = 0;
        return rc;
    }
    qsort(f->prior, f->nprior, sizeof(*f->prior), compare_offsets);
    size_t k = 0;
    for (size_t i = 0; i < f->nprior; i++)
        if (k == 0 || f->prior[i] != f->prior[k - 1])
            f->prior[k++] = f->prior[i];
    f->nprior = k;
    return 0;
}

/* Adds the files of one bucket directory, checking each and cutting torn tails. */
static int scan_bucket(fw_spool_t *s, const char *category, uint32_t id)
{
    fw_spool_bucket_t *b = fw_spool_bucket(s, category, id, 1);
    if (b == NULL)
        return -ENOMEM;
    b->dir_made = 1;
    uint64_t *ids;
    size_t n;
    int rc = fw_seg_list(b->dir, &ids, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        file_path(b, ids[i], path, sizeof(path));
        if (ids[i] >= b->next_file_id)
            b->next_file_id = ids[i] + 1;
        fw_seg_scan_t scan;
        memset(&scan, 0, sizeof(scan));
        rc = fw_seg_recover(path, &scan);
        if (rc == -EAGAIN) {
            /* Shorter than a header: a crash while it was being created, before any block. */
            slog(s, FW_PRODUCER_LOG_WARN, "spool: removing %s: no whole header, so no block", path);
            unlink(path);
            resolved_path(b, ids[i], path, sizeof(path));
            unlink(path);
            continue;
        }
        if (rc < 0) {
            /* A damaged header: its blocks may be fine, so it is kept for people to look at. */
            slog(s, FW_PRODUCER_LOG_ERROR,
                 "spool: cannot read %s (%s): left as it is and not sent; "
                 "`freeway verify` tells more",
                 path, fw_strerror(rc));
            continue;
        }
        if (scan.truncated > 0)
            slog(s, FW_PRODUCER_LOG_WARN,
                 "spool: %s: cut %" PRIu64 " bytes of a torn or damaged tail (%s) after %" PRIu64
                 " whole blocks; the blocks before it are kept",
                 path, scan.truncated, scan.partial ? "an incomplete last block" : "bad data",
                 scan.blocks);
        if (scan.blocks == 0) {
            unlink(path);
            resolved_path(b, ids[i], path, sizeof(path));
            unlink(path);
            continue;
        }
        spool_file_t *f = calloc(1, sizeof(*f));
        if (f == NULL) {
            free(ids);
            return -ENOMEM;
        }
        f->id = ids[i];
        f->size = scan.valid_end;
        f->blocks = scan.blocks;
        f->records = scan.records;
        if ((rc = load_prior(b, f)) < 0) {
            free(f);
            free(ids);
            return rc;
        }
        s->bytes += f->size;
        s->blocks += f->blocks;
        s->records += f->records;
        if (b->tail != NULL)
            b->tail->next = f;
        else
            b->head = f;
        b->tail = f;
    }
    free(ids);
    return 0;
}

/* Walks DIR/<category>/<bucket>/ and takes in what earlier producers left. */
static int scan(fw_spool_t *s, char *err, size_t errcap)
{
    DIR *top = opendir(s->dir);
    if (top == NULL) {
        int rc = -errno;
        snprintf(err, errcap, "cannot read spool directory %s: %s", s->dir, strerror(-rc));
        return rc;
    }
    struct dirent *ce;
    int rc = 0;
    while (rc == 0 && (ce = readdir(top)) != NULL) {
        if (strcmp(ce->d_name, ".") == 0 || strcmp(ce->d_name, "..") == 0 ||
            strcmp(ce->d_name, FW_SPOOL_LOCK) == 0)
            continue;
        if (!fw_category_valid(ce->d_name)) {
            slog(s, FW_PRODUCER_LOG_WARN, "spool: ignoring %s/%s: not a category name", s->dir,
                 ce->d_name);
            continue;
        }
        char cdir[PATH_MAX];
        snprintf(cdir, sizeof(cdir), "%s/%s", s->dir, ce->d_name);
        DIR *cd = opendir(cdir);
        if (cd == NULL)
            continue; /* not a directory */
        struct dirent *be;
        while (rc == 0 && (be = readdir(cd)) != NULL) {
            char *end;
            if (be->d_name[0] < '0' || be->d_name[0] > '9')
                continue;
            errno = 0;
            unsigned long id = strtoul(be->d_name, &end, 10);
            char canonical[16];
            snprintf(canonical, sizeof(canonical), "%lu", id);
            /* Only the names the spool makes: "007" is not bucket 7's directory. */
            if (*end != '\0' || errno != 0 || id > UINT32_MAX || strcmp(canonical, be->d_name) != 0)
                continue;
            rc = scan_bucket(s, ce->d_name, (uint32_t)id);
            if (rc < 0)
                snprintf(err, errcap, "cannot scan spool %s/%s: %s", cdir, be->d_name,
                         fw_strerror(rc));
        }
        closedir(cd);
    }
    closedir(top);
    return rc;
}

int fw_spool_open(const fw_spool_config_t *c, fw_spool_t **out, char *err, size_t errcap)
{
    err[0] = '\0';
    fw_spool_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    s->c = *c;
    s->lock_fd = -1;
    if (s->c.file_bytes == 0)
        s->c.file_bytes = FILE_BYTES_DEFAULT;
    if (s->c.max_open == 0)
        s->c.max_open = MAX_OPEN_DEFAULT;
    int rc;
    if ((s->dir = strdup(c->dir)) == NULL) {
        rc = -ENOMEM;
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if ((rc = fw_mkdir_p(s->dir)) < 0) {
        snprintf(err, errcap, "cannot create spool directory %s: %s", s->dir, strerror(-rc));
        goto fail;
    }
    if ((rc = take_lock(s, err, errcap)) < 0 || (rc = scan(s, err, errcap)) < 0)
        goto fail;
    fw_spool_usage_t u;
    fw_spool_usage(s, &u);
    if (u.blocks > 0)
        slog(s, FW_PRODUCER_LOG_WARN,
             "spool %s holds %" PRIu64 " blocks (%" PRIu64 " records, %" PRIu64
             " bytes) of %" PRIu32 " buckets from an earlier producer: sending them first",
             s->dir, u.blocks, u.records, u.bytes, u.buckets);
    *out = s;
    return 0;
fail:
    fw_spool_close(s);
    return rc;
}

void fw_spool_close(fw_spool_t *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < TABLE_SIZE; i++) {
        fw_spool_bucket_t *b = s->table[i];
        while (b != NULL) {
            fw_spool_bucket_t *next = b->hnext;
            file_finish(s, b, 1);
            fw_segr_close(b->reader);
            while (b->head != NULL) {
                spool_file_t *f = b->head;
                b->head = f->next;
                free(f->prior);
                free(f);
            }
            free(b->dir);
            free(b);
            b = next;
        }
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* drops the flock */
    free(s->dir);
    free(s);
}
