/* A bucket's blocks in stored order (see cursor.h). */
#include "cursor.h"

#include "error.h"
#include "names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pt_cursor_init(pt_cursor_t *c, const char *dir, const char *category, uint32_t bucket)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    c->bucket = bucket;
    c->first_block = fw_seg_first_block(strlen(category));
    c->pos.bucket = bucket;
}

void pt_cursor_path(const pt_cursor_t *c, uint64_t segment_id, char out[PT_CURSOR_PATH_MAX])
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, segment_id);
    snprintf(out, PT_CURSOR_PATH_MAX, "%s/%s", c->dir, name);
}

void pt_cursor_close(pt_cursor_t *c)
{
    fw_segr_close(c->reader);
    c->reader = NULL;
}

void pt_cursor_seek(pt_cursor_t *c, const fw_position_t *pos)
{
    pt_cursor_close(c);
    c->pos = *pos;
    c->pos.bucket = c->bucket;
    if (c->pos.segment_id != 0 && c->pos.offset < c->first_block) {
        c->pos.offset = c->first_block;
        c->pos.record_index = 0;
    }
    c->at_seal = 0;
}

/*
 * Moves to the first block of segment id, by arithmetic rather than by
 * reading its header: a checkpoint is built from the cursors at any moment,
 * and "segment id, offset 0" is no place a token can name.
 */
static void move_to_segment(pt_cursor_t *c, uint64_t id)
{
    pt_cursor_close(c);
    c->pos.segment_id = id;
    c->pos.offset = c->first_block;
    c->pos.record_index = 0;
    c->at_seal = 0;
}

/* The smallest segment id above after (0: the first), or -ENOENT. */
static int segment_after(const pt_cursor_t *c, uint64_t after, uint64_t *id)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = fw_seg_list(c->dir, &ids, &n);
    if (rc < 0)
        return rc == -ENOENT ? -ENOENT : rc;
    rc = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] > after) {
            *id = ids[i];
            rc = 0;
            break;
        }
    }
    free(ids);
    return rc;
}

/* Opens pos's segment and moves the reader to pos. -ENOENT, -EAGAIN or an error. */
static int open_at_pos(pt_cursor_t *c)
{
    char path[PT_CURSOR_PATH_MAX];
    pt_cursor_path(c, c->pos.segment_id, path);
    int rc = fw_segr_open(path, &c->reader);
    if (rc < 0) {
        c->reader = NULL;
        return rc;
    }
    if (c->pos.offset > fw_segr_position(c->reader))
        fw_segr_seek(c->reader, c->pos.offset);
    else
        c->pos.offset = fw_segr_position(c->reader); /* the first block */
    return 0;
}

static void set_gap(pt_cursor_t *c, uint64_t next_segment, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_gap(pt_cursor_t *c, uint64_t next_segment, const char *fmt, ...)
{
    c->gap_from = c->pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->gap_reason, sizeof(c->gap_reason), fmt, ap);
    va_end(ap);
    move_to_segment(c, next_segment);
    c->gap_to = c->pos;
}

/* Damage in a segment the bucket has moved past becomes a gap after the grace time. */
static int on_damage(pt_cursor_t *c, int64_t now_ms, int64_t grace_ms)
{
    uint64_t off;
    int why;
    fw_segr_damage(c->reader, &off, &why);
    uint64_t next;
    if (segment_after(c, c->pos.segment_id, &next) < 0)
        return PT_CURSOR_AGAIN; /* the open segment: its writer or a recovery will settle it */
    if (c->damage_segment != c->pos.segment_id || c->damage_offset != off) {
        c->damage_segment = c->pos.segment_id;
        c->damage_offset = off;
        c->damage_since_ms = now_ms;
    }
    if (now_ms - c->damage_since_ms < grace_ms)
        return PT_CURSOR_AGAIN;
    set_gap(c, next, "damaged block at offset %" PRIu64 " of segment %" PRIu64 ": %s", off,
            c->pos.segment_id, fw_strerror(why));
    return PT_CURSOR_GAP;
}

int pt_cursor_next(pt_cursor_t *c, int64_t now_ms, int64_t damage_grace_ms)
{
    for (;;) {
        if (c->reader == NULL) {
            if (c->pos.segment_id == 0) {
                uint64_t first;
                int rc = segment_after(c, 0, &first);
                if (rc < 0)
                    return rc == -ENOENT ? PT_CURSOR_AGAIN : rc;
                move_to_segment(c, first);
            }
            int rc = open_at_pos(c);
            if (rc == -EAGAIN)
                return PT_CURSOR_AGAIN; /* its header is being written */
            if (rc == -ENOENT) {
                uint64_t next;
                if (segment_after(c, c->pos.segment_id, &next) < 0)
                    return PT_CURSOR_AGAIN;
                set_gap(c, next, "segment %" PRIu64 " no longer exists (retention?)",
                        c->pos.segment_id);
                return PT_CURSOR_GAP;
            }
            if (rc < 0)
                return rc;
        }
        if (c->at_seal) {
            uint64_t next;
            if (segment_after(c, c->pos.segment_id, &next) < 0)
                return PT_CURSOR_AGAIN;
            move_to_segment(c, next);
            continue;
        }
        fw_seg_block_t b;
        int rc = fw_segr_next(c->reader, &b);
        if (rc == FW_SEGR_AGAIN)
            return PT_CURSOR_AGAIN;
        if (rc == FW_SEGR_SEALED) {
            c->pos.offset = b.offset;
            c->pos.record_index = 0;
            c->at_seal = 1;
            continue;
        }
        if (rc == FW_ESEG_DAMAGED)
            return on_damage(c, now_ms, damage_grace_ms);
        if (rc < 0)
            return rc;
        uint32_t first = b.offset == c->pos.offset ? c->pos.record_index : 0;
        c->pos.offset = b.offset + b.len;
        c->pos.record_index = 0;
        if (first >= b.header.record_count)
            continue; /* delivered whole before a resume */
        c->block = b;
        c->first_record = first;
        return PT_CURSOR_BLOCK;
    }
}

int pt_cursor_seek_latest(pt_cursor_t *c)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = fw_seg_list(c->dir, &ids, &n);
    if (rc == -ENOENT || (rc == 0 && n == 0)) {
        if (rc == 0)
            free(ids);
        fw_position_t none = {.bucket = c->bucket};
        pt_cursor_seek(c, &none); /* every segment yet to come is new */
        return 0;
    }
    if (rc < 0)
        return rc;
    fw_position_t newest = {.bucket = c->bucket, .segment_id = ids[n - 1]};
    free(ids);
    pt_cursor_seek(c, &newest);
    /* Read through to the end; what follows is new. */
    for (;;) {
        rc = pt_cursor_next(c, 0, INT64_MAX);
        if (rc != PT_CURSOR_BLOCK && rc != PT_CURSOR_GAP)
            return rc < 0 ? rc : 0;
    }
}

/*
 * Finds, in one segment, the first block whose newest record is at or after
 * ts_ms by skimming block headers (64-byte reads, no payload). 1: found, at
 * *at; 0: the segment is sealed before any such block; 2: the segment ends
 * (for now) or is damaged before one, at *at.
 */
static int skim_segment(const pt_cursor_t *c, uint64_t id, int64_t ts_ms, uint64_t *at)
{
    char path[PT_CURSOR_PATH_MAX];
    pt_cursor_path(c, id, path);
    fw_segr_t *r;
    *at = c->first_block;
    if (fw_segr_open(path, &r) < 0)
        return 2; /* being created, or gone: let the normal reading say which */
    int rc;
    fw_block_header_t h;
    while ((rc = fw_segr_skim(r, &h, at)) == FW_SEGR_BLOCK) {
        if (h.max_ts >= ts_ms)
            break;
    }
    if (rc != FW_SEGR_BLOCK && rc != FW_SEGR_SEALED)
        *at = fw_segr_position(r);
    fw_segr_close(r);
    return rc == FW_SEGR_BLOCK ? 1 : rc == FW_SEGR_SEALED ? 0 : 2;
}

int pt_cursor_seek_time(pt_cursor_t *c, int64_t ts_ms)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = fw_seg_list(c->dir, &ids, &n);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    /*
     * The time index is in the files: each segment's header says when it was
     * created, each block's header (CRC-checked) its newest record. Records of
     * segments created before the newest one created at or before ts are
     * older, as far as the writers' clocks tell, so start there; then skim
     * block headers for the first block reaching ts.
     */
    size_t start = 0;
    for (size_t i = n; i-- > 0;) {
        char path[PT_CURSOR_PATH_MAX];
        pt_cursor_path(c, ids[i], path);
        fw_segr_t *r;
        if (fw_segr_open(path, &r) < 0)
            continue;
        int64_t created = fw_segr_header(r)->created_ms;
        fw_segr_close(r);
        if (created <= ts_ms) {
            start = i;
            break;
        }
    }
    fw_position_t at = {.bucket = c->bucket};
    for (size_t i = start; i < n; i++) {
        at.segment_id = ids[i];
        if (skim_segment(c, ids[i], ts_ms, &at.offset) != 0)
            break; /* found, or the end for now: wait there */
        /* Sealed before ts: stand at its seal, so reading moves on from there. */
    }
    free(ids);
    pt_cursor_seek(c, &at);
    return 0;
}
