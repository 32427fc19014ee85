/* One owned bucket: recovery, group commit, acks, rolls, seal (see bucket.h). */
#include "bucket.h"

#include "clock.h"
#include "error.h"
#include "fsutil.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { JOB_OPEN, JOB_APPEND, JOB_CLOSE };

/* An open or close job, or an append job, is on the disk threads. */
static int disk_busy(const cal_bucket_t *b)
{
    return b->job_busy || b->appends_out > 0;
}

/* 1 while this writer may still act as the bucket's owner. Any thread. */
static int lease_ok(const cal_bucket_t *b)
{
    return b->lease_ns == NULL || fw_clock_mono_ns() < atomic_load(b->lease_ns);
}

void cal_bucket_config_default(cal_bucket_config_t *cfg)
{
    cfg->roll_bytes = 256u << 20;
    cfg->roll_age_ms = 3600 * 1000;
    cfg->sync_interval_ms = 5;
    cfg->batch_bytes = 1u << 20;
    cfg->max_producers = 4096;
    cfg->dedup_segments = 4;
}

/* ---- opening: recovery and the sequence table, on the disk thread ------ */

static void seg_path(const cal_bucket_t *b, uint64_t id, char *out, size_t cap)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, cap, "%s/%s", b->dir, name);
}

/* Learns every block's (producer, sequence) of one segment. */
static int learn_segment(cal_bucket_t *b, const char *path)
{
    fw_segr_t *r;
    int rc = fw_segr_open(path, &r);
    if (rc < 0)
        return rc;
    fw_seg_block_t blk;
    int64_t now = fw_clock_wall_ms();
    while ((rc = fw_segr_next(r, &blk)) == FW_SEGR_BLOCK) {
        rc = cal_dedup_learn(&b->dedup, blk.header.producer_id, blk.header.sequence,
                             blk.header.payload_crc, now);
        if (rc < 0)
            break;
    }
    fw_segr_close(r);
    /* Recovery sealed it: anything else than the seal at the end is an error. */
    return rc == FW_SEGR_SEALED ? 0 : (rc < 0 ? rc : FW_ESEG_DAMAGED);
}

static void open_work(cal_disk_job_t *dj)
{
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    cal_bucket_t *b = dj->data;
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = fw_mkdir_p(b->dir);
    if (rc == 0)
        rc = fw_seg_list(b->dir, &ids, &n);
    int removed = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[4096];
        fw_seg_scan_t s;
        seg_path(b, ids[i], path, sizeof(path));
        /* An earlier owner that still has the segment open holds its lock:
         * wait for it to let go (it stops once it sees it lost the bucket)
         * rather than recover under its feet. */
        int lock_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
            rc = errno == EWOULDBLOCK ? FW_ERETRY_LATER : -errno;
            close(lock_fd);
            fw_log_warn("calligraphus", "%s: still held by its previous writer; retrying", path);
            break;
        }
        rc = fw_seg_recover_seal(path, fw_clock_wall_ms(), &s);
        if (lock_fd >= 0)
            close(lock_fd);
        if (rc == -EAGAIN || rc == FW_ESEG_HEADER) {
            /* A segment whose header never became durable was never acked into:
             * the writer syncs the header and the directory before the first ack.
             * A bad header with data behind it is left for an operator. */
            struct stat st;
            if (stat(path, &st) == 0 && (size_t)st.st_size <= FW_SEG_HEADER_MAX) {
                fw_log_warn("calligraphus", "%s: removing a segment with a torn header", path);
                rc = unlink(path) < 0 ? -errno : 0;
                removed = 1;
                ids[i] = 0;
            }
        } else if (rc == 0 && s.truncated > 0) {
            fw_log_warn("calligraphus", "%s: cut a torn tail of %llu bytes after %llu blocks", path,
                        (unsigned long long)s.truncated, (unsigned long long)s.blocks);
        }
    }
    if (rc == 0 && removed)
        rc = fw_fsync_dir(b->dir);
    /* The newest segments hold every sequence a producer may still retry. */
    size_t first = n > (size_t)b->cfg.dedup_segments ? n - (size_t)b->cfg.dedup_segments : 0;
    for (size_t i = first; rc == 0 && i < n; i++) {
        if (ids[i] == 0)
            continue;
        char path[4096];
        seg_path(b, ids[i], path, sizeof(path));
        rc = learn_segment(b, path);
    }
    job->max_segment_id = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > job->max_segment_id)
            job->max_segment_id = ids[i];
    free(ids);
    job->open_rc = rc;
}

/* ---- appending: the job's two stages, on the disk threads ----------------- */

static void append_work(cal_disk_job_t *dj)
{
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    cal_bucket_t *b = dj->data;
    job->write_rc = job->sync_rc = 0;
    /* Until its file exists, a roll's id is still free (on_appended keeps it). */
    job->id_unused = job->new_segment_id != 0;
    if (atomic_load(&b->sync_failed)) {
        job->write_rc = FW_ESEG_FAILED;
        return;
    }
    /* Checked here, just before the write: a writer resumed from a long
     * pause must not append to a bucket that may have a new owner. */
    if (!lease_ok(b)) {
        job->write_rc = FW_ENOT_OWNER;
        return;
    }
    if (job->new_segment_id != 0) {
        if (b->seg != NULL) {
            int rc = b->seg->failed ? 0 : fw_segw_seal(b->seg, fw_clock_wall_ms());
            fw_segw_close(b->seg);
            b->seg = NULL;
            if (rc < 0) {
                job->write_rc = rc;
                return;
            }
        }
        fw_seg_header_t h = {
            .segment_id = job->new_segment_id,
            .epoch = b->epoch,
            .created_ms = fw_clock_wall_ms(),
            .bucket = b->bucket,
        };
        memcpy(h.category, b->category, sizeof(h.category));
        int rc = fw_segw_create(b->dir, &h, &b->seg);
        job->id_unused = rc < 0 && rc != -EEXIST; /* a failed create removes what it made */
        if (rc < 0) {
            job->write_rc = rc;
            return;
        }
    }
    job->write_rc =
        fw_segw_append(b->seg, job->iov, job->iovcnt, job->nblocks, job->nrecords, &job->offset);
    job->seg_failed = b->seg->failed;
    if (job->write_rc < 0)
        return;
    job->segment_id = b->seg->header.segment_id;
    job->sync_fd = b->seg->fd;
    job->write_no = atomic_fetch_add(&b->writes_done, 1) + 1;
    cal_disk_progress(dj);
}

/*
 * Group commit across the pipeline: an fdatasync covers every write that
 * finished before it started, so a job whose write an earlier job's sync
 * already covered has nothing left to do. After a failed sync nothing
 * written since the last good one can be trusted (fsyncgate), so every later
 * sync of the bucket fails too. It calls fdatasync itself, not fw_segw_sync,
 * which updates the segment's fields: those belong to the write thread.
 */
static void sync_work(cal_disk_job_t *dj)
{
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    cal_bucket_t *b = dj->data;
    if (job->write_rc < 0)
        return;
    if (atomic_load(&b->sync_failed)) {
        job->sync_rc = FW_ESEG_FAILED;
        return;
    }
    if (job->write_no <= b->writes_synced)
        return;
    uint64_t covers = atomic_load(&b->writes_done);
    int64_t t0 = fw_clock_mono_ns();
    if (fdatasync(job->sync_fd) < 0) {
        job->sync_rc = -errno;
        atomic_store(&b->sync_failed, 1);
        return;
    }
    job->sync_ns = fw_clock_mono_ns() - t0;
    job->synced = 1;
    b->writes_synced = covers;
}

static void close_work(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    job->write_rc = 0;
    if (b->seg != NULL) {
        if (!b->seg->failed && !atomic_load(&b->sync_failed) && !b->abandon && lease_ok(b))
            job->write_rc = fw_segw_seal(b->seg, fw_clock_wall_ms());
        fw_segw_close(b->seg);
        b->seg = NULL;
    }
}

/* ---- the loop side ----------------------------------------------------------- */

static void flush(cal_bucket_t *b);
static void start_close(cal_bucket_t *b);

/* Answers a list of appends with status, rolling back their producers' accepted sequences. */
static void fail_list(cal_bucket_t *b, cal_append_t *a, int status)
{
    while (a != NULL) {
        cal_append_t *next = a->next;
        cal_dedup_abort(&b->dedup, a->header.producer_id);
        if (!a->acked) {
            a->acked = 1;
            a->cb(a, status);
        }
        a = next;
    }
}

/* Answers every append still waiting for a write with status. */
static void fail_pending(cal_bucket_t *b, int status)
{
    cal_append_t *all = b->pending_head;
    b->pending_head = b->pending_tail = NULL;
    b->pending_bytes = 0;
    fail_list(b, all, status);
}

static void on_timer(uv_timer_t *t)
{
    flush(t->data);
}

/*
 * A new append job may start: something waits, no open or close job is out,
 * the newest append job has been written (its iov and the segment's end are
 * the write thread's until then) and fewer than two are out.
 */
static int can_flush(const cal_bucket_t *b)
{
    return b->pending_head != NULL && !b->job_busy && !cal_bucket_writing(b) && b->appends_out < 2;
}

static void schedule(cal_bucket_t *b)
{
    if (!can_flush(b) || b->paused)
        return;
    if (b->pending_bytes >= b->cfg.batch_bytes || b->cfg.sync_interval_ms == 0 ||
        b->state == CAL_BUCKET_CLOSING) {
        flush(b);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&b->timer))
        uv_timer_start(&b->timer, on_timer, b->cfg.sync_interval_ms, 0);
}

/* Space left in the open segment before it reaches roll_bytes (0 if it must roll). */
static uint64_t room_left(const cal_bucket_t *b)
{
    if (b->seg == NULL)
        return 0;
    uint64_t used = b->seg->end - b->seg->header.header_len;
    if (used > 0 && fw_clock_wall_ms() - b->seg_opened_ms >= b->cfg.roll_age_ms)
        return 0;
    return b->seg->end < b->cfg.roll_bytes ? b->cfg.roll_bytes - b->seg->end : 0;
}

static void on_written(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    job->written = 1;
    if (job->new_segment_id != 0)
        b->seg_opened_ms = fw_clock_wall_ms(); /* the next batch may go to it while this syncs */
    uint64_t off = job->offset;
    /* Not after an earlier batch's sync failed: its blocks were answered retry-later. */
    int ack_written = lease_ok(b) && !atomic_load(&b->sync_failed);
    /* An append acked here is its submitter's again once its callback runs
     * (it may be freed there), so it leaves the in-flight list first; its
     * sequence counts as stored from now on (that is what the ack says). */
    cal_append_t *keep = NULL, **tail = &keep, *acked = NULL;
    for (cal_append_t *a = job->blocks, *next; a != NULL; a = next) {
        next = a->next;
        a->segment_id = job->segment_id;
        a->offset = off;
        off += a->len;
        if (a->ack == CAL_ACK_WRITTEN && !a->acked && ack_written) {
            cal_dedup_stored(&b->dedup, a->header.producer_id, a->header.sequence,
                             a->header.payload_crc);
            a->next = acked;
            acked = a;
        } else {
            a->next = NULL;
            *tail = a;
            tail = &a->next;
        }
    }
    job->blocks = keep;
    /* (acked is in reverse; answer in block order) */
    cal_append_t *ordered = NULL;
    while (acked != NULL) {
        cal_append_t *next = acked->next;
        acked->next = ordered;
        ordered = acked;
        acked = next;
    }
    while (ordered != NULL) {
        cal_append_t *next = ordered->next;
        ordered->acked = 1;
        ordered->cb(ordered, 0);
        ordered = next;
    }
    /* What arrived meanwhile is written while this write's sync runs. */
    schedule(b);
}

static void on_appended(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    cal_append_t *done = job->blocks;
    job->blocks = NULL;
    b->appends_out--;
    if (job->id_unused) {
        /* No file took the id: the next roll uses it without reserving another in ZooKeeper,
         * which a full disk would otherwise do at every flush. */
        b->spare_segment_id = job->new_segment_id;
        b->last_segment_id = job->prev_last_segment_id;
    }

    if (job->write_rc == 0 && job->sync_rc == 0 && !lease_ok(b))
        job->write_rc = FW_ENOT_OWNER; /* stored perhaps, but not ours to ack */
    if (job->write_rc == FW_ENOT_OWNER) {
        cal_append_t *pending = b->pending_head;
        b->pending_head = b->pending_tail = NULL;
        b->pending_bytes = 0;
        fail_list(b, done, FW_ERETRY_LATER);
        fail_list(b, pending, FW_ERETRY_LATER);
        fw_log_warn("calligraphus", "%s/%u: lease lapsed; appending stops", b->category, b->bucket);
        if (b->state == CAL_BUCKET_READY)
            b->state = CAL_BUCKET_FAILED;
    } else if (job->write_rc < 0 || job->sync_rc < 0) {
        int rc = job->write_rc < 0 ? job->write_rc : job->sync_rc;
        cal_disk_report(b->disk, rc);
        /* Later blocks may not overtake the failed ones: fail what waits too. */
        cal_append_t *pending = b->pending_head;
        b->pending_head = b->pending_tail = NULL;
        b->pending_bytes = 0;
        fail_list(b, done, FW_ERETRY_LATER);
        fail_list(b, pending, FW_ERETRY_LATER);
        if (job->sync_rc < 0 || job->seg_failed) {
            /* fsyncgate: after a failed sync nothing written since the last good
             * one can be trusted. A write that failed after whole blocks landed
             * (readers may have them) cannot be cut back either. Stop here;
             * the bucket is recovered afresh, keeping every whole block.
             * A closing bucket stays closing: its close goes on below (the
             * close job skips the seal of a failed segment) and close_cb runs. */
            fw_log_error("calligraphus", "%s/%u: %s failed (%s); bucket stops accepting",
                         b->category, b->bucket, job->sync_rc < 0 ? "sync" : "write",
                         fw_strerror(rc));
            if (b->state == CAL_BUCKET_READY)
                b->state = CAL_BUCKET_FAILED;
        } else {
            fw_log_warn("calligraphus", "%s/%u: write failed (%s); producers retry later",
                        b->category, b->bucket, fw_strerror(rc));
        }
    } else {
        cal_disk_report(b->disk, 0);
        if (b->segment_id_gauge != NULL) {
            fw_metric_set(b->segment_id_gauge, (double)job->segment_id);
            fw_metric_set(b->segment_bytes_gauge, (double)(job->offset + job->bytes));
        }
        if (job->synced) {
            b->syncs++;
            b->last_sync_ns = job->sync_ns;
            if (b->sync_seconds != NULL)
                fw_metric_observe(b->sync_seconds, (double)job->sync_ns / 1e9);
        }
        if (b->records_appended != NULL) {
            fw_metric_add(b->records_appended, job->nrecords);
            fw_metric_add(b->bytes_appended, job->bytes);
        }
        b->appended_blocks += job->nblocks;
        b->appended_records += job->nrecords;
        b->appended_bytes += job->bytes;
        for (cal_append_t *a = done, *next; a != NULL; a = next) {
            next = a->next;
            cal_dedup_stored(&b->dedup, a->header.producer_id, a->header.sequence,
                             a->header.payload_crc);
            if (!a->acked) {
                a->acked = 1;
                a->cb(a, 0);
            }
        }
    }
    if (b->state == CAL_BUCKET_CLOSING && b->pending_head == NULL) {
        if (!disk_busy(b))
            start_close(b);
    } else {
        schedule(b);
    }
}

static void flush(cal_bucket_t *b)
{
    if (!can_flush(b))
        return;
    uv_timer_stop(&b->timer);
    uint64_t room = room_left(b);
    int fresh = b->seg != NULL && b->seg->end == b->seg->header.header_len;
    int roll = room < b->pending_head->len && !fresh;
    if (roll && b->appends_out > 0)
        return; /* the sync stage still holds the segment: on_appended flushes again */
    if (roll && b->next_segment_id == 0 && b->spare_segment_id == 0) {
        /* The id for the next segment is still being reserved in ZooKeeper;
         * cal_bucket_give_segment_id flushes again. A bucket being closed or
         * abandoned does not wait. */
        if (b->state == CAL_BUCKET_CLOSING) {
            fail_pending(b, FW_ERETRY_LATER);
            start_close(b);
        }
        return;
    }
    int n = 0;
    for (cal_append_t *a = b->pending_head; a != NULL; a = a->next)
        n++;
    if (n > b->iov_cap) {
        struct iovec *iov = realloc(b->iov, (size_t)n * sizeof(*iov));
        if (iov == NULL) {
            fail_pending(b, FW_ERETRY_LATER);
            if (b->state == CAL_BUCKET_CLOSING && !disk_busy(b))
                start_close(b);
            return;
        }
        b->iov = iov;
        b->iov_cap = n;
    }
    cal_bucket_job_t *job = &b->appends[b->next_append];
    b->next_append ^= 1;
    memset(job, 0, sizeof(*job));
    job->kind = JOB_APPEND;
    job->iov = b->iov;
    /* Take what fits the open segment; roll first if not even one block fits.
     * A segment exceeds roll_bytes only to hold a single block larger than it. */
    int spare = roll && b->spare_segment_id != 0;
    if (roll) {
        uint64_t id = spare ? b->spare_segment_id : b->next_segment_id;
        if (id <= b->last_segment_id) {
            /* ZooKeeper's counter is behind the files (it was reset). Readers
             * take segments in id order: ids must keep rising. */
            fw_log_warn("calligraphus", "%s: segment id %llu is not above %llu; using %llu", b->dir,
                        (unsigned long long)id, (unsigned long long)b->last_segment_id,
                        (unsigned long long)b->last_segment_id + 1);
            id = b->last_segment_id + 1;
        }
        job->prev_last_segment_id = b->last_segment_id;
        job->new_segment_id = b->last_segment_id = id;
        if (spare)
            b->spare_segment_id = 0;
        else
            b->next_segment_id = b->need_segment_id != NULL ? 0 : id + 1;
        room = b->cfg.roll_bytes > FW_SEG_HEADER_MAX ? b->cfg.roll_bytes - FW_SEG_HEADER_MAX : 0;
    }
    cal_append_t *last = NULL;
    for (cal_append_t *a = b->pending_head; a != NULL; a = a->next) {
        if (job->iovcnt > 0 && job->bytes + a->len > room)
            break;
        b->iov[job->iovcnt].iov_base = (void *)a->data;
        b->iov[job->iovcnt].iov_len = a->len;
        job->iovcnt++;
        job->nblocks++;
        job->nrecords += a->header.record_count;
        job->bytes += a->len;
        last = a;
    }
    job->blocks = b->pending_head;
    b->pending_head = last->next;
    if (b->pending_head == NULL)
        b->pending_tail = NULL;
    last->next = NULL;
    b->pending_bytes -= job->bytes;
    b->appends_out++;
    job->disk.work = append_work;
    job->disk.sync_work = sync_work;
    job->disk.progress_cb = on_written;
    job->disk.done_cb = on_appended;
    job->disk.data = b;
    cal_disk_submit(b->disk, &job->disk);
    /* Reserve the id after this one before it is needed. Only now that the
     * job is on its way: an owner that gives the id from inside the callback
     * must find the bucket busy, not re-enter flush. */
    if (roll && !spare && b->need_segment_id != NULL)
        b->need_segment_id(b);
}

void cal_bucket_append(cal_bucket_t *b, cal_append_t *a)
{
    a->next = NULL;
    a->acked = 0;
    a->duplicate = 0;
    a->conflict = 0;
    if (b->state != CAL_BUCKET_READY || b->paused) {
        a->acked = 1;
        a->cb(a, FW_ERETRY_LATER);
        return;
    }
    uint64_t expected = 0;
    switch (cal_dedup_check(&b->dedup, a->header.producer_id, a->header.sequence, &expected)) {
    case CAL_SEQ_DUPLICATE:
        b->duplicates++;
        if (cal_dedup_conflicts(&b->dedup, a->header.producer_id, a->header.sequence,
                                a->header.payload_crc)) {
            a->conflict = 1;
            fw_log_error("calligraphus",
                         "%s: producer %016llx sent sequence %llu again with other contents "
                         "(payload CRC %08x, stored %08x): acked as the duplicate it claims to "
                         "be, so its records are not stored; the producer reuses sequences",
                         b->dir, (unsigned long long)a->header.producer_id,
                         (unsigned long long)a->header.sequence, a->header.payload_crc,
                         cal_dedup_stored_crc(&b->dedup, a->header.producer_id));
        }
        a->duplicate = 1;
        a->acked = 1;
        a->cb(a, 0);
        return;
    case CAL_SEQ_IN_FLIGHT:
        a->acked = 1;
        a->cb(a, FW_ERETRY_LATER);
        return;
    case CAL_SEQ_GAP:
        a->expected_seq = expected;
        a->acked = 1;
        a->cb(a, FW_ESEQUENCE_GAP);
        return;
    case CAL_SEQ_ACCEPT:
        break;
    }
    if (cal_dedup_accept(&b->dedup, a->header.producer_id, a->header.sequence, fw_clock_wall_ms()) <
        0) {
        a->acked = 1;
        a->cb(a, FW_ERETRY_LATER);
        return;
    }
    if (b->pending_tail != NULL)
        b->pending_tail->next = a;
    else
        b->pending_head = a;
    b->pending_tail = a;
    b->pending_bytes += a->len;
    schedule(b);
}

static void on_opened(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    cal_bucket_job_t *job = (cal_bucket_job_t *)dj;
    b->job_busy = 0;
    b->last_segment_id = job->max_segment_id;
    if (job->max_segment_id >= b->next_segment_id) {
        /* Only if ZooKeeper's counter was reset: files on disk are the truth. */
        if (b->need_segment_id != NULL)
            fw_log_warn("calligraphus", "%s: segment %llu on disk is past the reserved id %llu",
                        b->dir, (unsigned long long)job->max_segment_id,
                        (unsigned long long)b->next_segment_id);
        b->next_segment_id = job->max_segment_id + 1;
    }
    if (b->state == CAL_BUCKET_CLOSING) {
        start_close(b);
        return;
    }
    b->state = job->open_rc == 0 ? CAL_BUCKET_READY : CAL_BUCKET_FAILED;
    if (job->open_rc < 0)
        fw_log_error("calligraphus", "%s: cannot recover: %s", b->dir, fw_strerror(job->open_rc));
    if (b->open_cb != NULL)
        b->open_cb(b, job->open_rc);
}

int cal_bucket_open(cal_bucket_t *b, uv_loop_t *loop, cal_disk_t *disk, const char *root,
                    const char *category, uint32_t bucket, uint64_t epoch,
                    uint64_t first_segment_id, const cal_bucket_config_t *cfg,
                    cal_bucket_cb open_cb)
{
    memset(b, 0, sizeof(*b));
    char dir[4096];
    int rc = fw_seg_bucket_dir(dir, sizeof(dir), root, category, bucket);
    if (rc < 0)
        return rc;
    if ((b->dir = strdup(dir)) == NULL)
        return -ENOMEM;
    snprintf(b->category, sizeof(b->category), "%s", category);
    b->bucket = bucket;
    b->epoch = epoch;
    b->cfg = *cfg;
    b->loop = loop;
    b->disk = disk;
    b->next_segment_id = first_segment_id ? first_segment_id : 1;
    b->open_cb = open_cb;
    b->state = CAL_BUCKET_OPENING;
    cal_dedup_init(&b->dedup, cfg->max_producers);
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    b->job_busy = 1;
    b->job.kind = JOB_OPEN;
    b->job.disk.work = open_work;
    b->job.disk.progress_cb = NULL;
    b->job.disk.done_cb = on_opened;
    b->job.disk.data = b;
    cal_disk_submit(disk, &b->job.disk);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    cal_bucket_t *b = h->data;
    int rc = b->job.write_rc;
    b->state = CAL_BUCKET_CLOSED;
    cal_dedup_free(&b->dedup);
    free(b->dir);
    free(b->iov);
    b->dir = NULL;
    b->iov = NULL;
    if (b->close_cb != NULL)
        b->close_cb(b, rc);
}

static void on_sealed(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    b->job_busy = 0;
    uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}

static void on_idle_sealed(cal_disk_job_t *dj)
{
    cal_bucket_t *b = dj->data;
    b->job_busy = 0;
    if (b->job.write_rc < 0)
        fw_log_warn("calligraphus", "%s: sealing an idle segment: %s", b->dir,
                    fw_strerror(b->job.write_rc));
    if (b->state == CAL_BUCKET_CLOSING) {
        if (b->pending_head != NULL)
            flush(b);
        else
            start_close(b);
        return;
    }
    schedule(b);
}

int cal_bucket_seal_if_idle(cal_bucket_t *b)
{
    if (b->state != CAL_BUCKET_READY || b->paused || disk_busy(b) || b->pending_head != NULL ||
        b->seg == NULL || b->seg->end == b->seg->header.header_len ||
        fw_clock_wall_ms() - b->seg_opened_ms < b->cfg.roll_age_ms)
        return 0;
    /* The next append opens a new segment (with the id reserved ahead). */
    cal_bucket_job_t *job = &b->job;
    memset(job, 0, sizeof(*job));
    job->kind = JOB_CLOSE;
    job->disk.work = close_work;
    job->disk.done_cb = on_idle_sealed;
    job->disk.data = b;
    b->job_busy = 1;
    cal_disk_submit(b->disk, &job->disk);
    return 1;
}

static void start_close(cal_bucket_t *b)
{
    uv_timer_stop(&b->timer);
    cal_bucket_job_t *job = &b->job;
    memset(job, 0, sizeof(*job));
    job->kind = JOB_CLOSE;
    job->disk.work = close_work;
    job->disk.done_cb = on_sealed;
    job->disk.data = b;
    b->job_busy = 1;
    cal_disk_submit(b->disk, &job->disk);
}

void cal_bucket_close(cal_bucket_t *b, cal_bucket_cb close_cb)
{
    if (b->state == CAL_BUCKET_CLOSING || b->state == CAL_BUCKET_CLOSED)
        return;
    int was_failed = b->state == CAL_BUCKET_FAILED;
    b->state = CAL_BUCKET_CLOSING;
    b->close_cb = close_cb;
    if (disk_busy(b))
        return; /* the running job's done handler continues the close */
    if (b->pending_head != NULL && !was_failed)
        flush(b);
    else
        start_close(b);
}

void cal_bucket_pause(cal_bucket_t *b)
{
    if (b->paused)
        return;
    b->paused = 1;
    uv_timer_stop(&b->timer);
    fail_pending(b, FW_ERETRY_LATER);
    /* fail_list rolled those producers back to their last stored sequence,
     * but a job may still be writing some of their blocks: accept those
     * again, or a retry of one would be queued a second time after resume. */
    /* Oldest job first (with two out, the older is in the slot used next),
     * so each producer ends at its newest sequence in flight. */
    for (int k = 0; k < 2; k++)
        for (cal_append_t *a = b->appends[b->next_append ^ k].blocks; a != NULL; a = a->next)
            (void)cal_dedup_accept(&b->dedup, a->header.producer_id, a->header.sequence,
                                   fw_clock_wall_ms());
}

void cal_bucket_resume(cal_bucket_t *b)
{
    b->paused = 0;
    schedule(b);
}

void cal_bucket_abandon(cal_bucket_t *b, cal_bucket_cb close_cb)
{
    b->abandon = 1;
    uv_timer_stop(&b->timer);
    fail_pending(b, FW_ERETRY_LATER);
    if (b->state == CAL_BUCKET_CLOSING || b->state == CAL_BUCKET_CLOSED)
        return; /* a close is under way; it now skips the seal */
    b->state = CAL_BUCKET_CLOSING;
    b->close_cb = close_cb;
    if (!disk_busy(b))
        start_close(b);
}

void cal_bucket_give_segment_id(cal_bucket_t *b, uint64_t id)
{
    b->next_segment_id = id;
    if (b->state == CAL_BUCKET_CLOSING && !disk_busy(b) && b->pending_head != NULL)
        flush(b);
    else
        schedule(b);
}
