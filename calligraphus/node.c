/* The writer in its cluster: session, lease, slots, balance (see node.h). */
#include "node.h"

#include "clock.h"
#include "crc32c.h"
#include "error.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS  500
#define KICK_MS  20
#define RETRY_MS 500
/* /readyz: a disk job waiting this long with none finishing is a stalled disk. */
#define DISK_STALL_MS 10000
/* Owner-node reads under way at once (see watch_owner). */
#define OWNER_READS_MAX 256
#define MAX_SLOTS_TOTAL (1u << 22)

static void kick(cal_node_t *n);
static void slot_release(cal_slot_t *s);
static void slot_drop(cal_slot_t *s);
static void maybe_finish_stop(cal_node_t *n);
static void handback_next(cal_node_t *n);

static const char *slot_name(const cal_slot_t *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%" PRIu32, s->cs->c->name, s->bucket);
    return buf;
}

static int slot_is_ours(const cal_slot_t *s)
{
    return s->state == CAL_SLOT_OPENING || s->state == CAL_SLOT_OWNED;
}

static int state_is_ours(cal_slot_state_t st)
{
    return st == CAL_SLOT_OPENING || st == CAL_SLOT_OWNED;
}

static int state_is_moving(cal_slot_state_t st)
{
    return st == CAL_SLOT_CLOSING || st == CAL_SLOT_RELEASING || st == CAL_SLOT_DROPPING;
}

/* Every state change goes through here, so the node's counts stay right. */
static void slot_set_state(cal_slot_t *s, cal_slot_state_t st)
{
    cal_node_t *n = s->node;
    int ours = state_is_ours(st) - state_is_ours(s->state);
    n->taking += (st == CAL_SLOT_TAKING) - (s->state == CAL_SLOT_TAKING);
    n->moving += state_is_moving(st) - state_is_moving(s->state);
    int open = (st == CAL_SLOT_OWNED) - (s->state == CAL_SLOT_OWNED);
    s->state = st;
    if (ours != 0) {
        n->owned_count += ours;
        fw_metric_set(n->stats->owned_buckets, n->owned_count);
    }
    if (open != 0) {
        n->open_count += open;
        fw_metric_set(n->stats->open_buckets, n->open_count);
    }
}

/* ---- the lease ---------------------------------------------------------------------- */

typedef void (*slot_fn)(cal_slot_t *s, void *arg);
static void each_slot(cal_node_t *n, slot_fn fn, void *arg);
static void each_pause(cal_slot_t *s, void *arg);

typedef struct beat_s {
    cal_node_t *node;
    int64_t sent_ns;
    int64_t session;
} beat_t;

static void on_beat(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)stat;
    beat_t *beat = arg;
    cal_node_t *n = beat->node;
    /* Any answer within the same session proves it was alive when we asked. */
    if ((rc == ZOK || rc == ZNONODE) && beat->session == fw_zk_session_id(zk) &&
        fw_zk_connected(zk) && beat->session == n->session) {
        int64_t timeout_ns = (int64_t)fw_zk_session_timeout(zk) * 1000000;
        int64_t until = beat->sent_ns + timeout_ns * 3 / 4;
        if (until > atomic_load(&n->lease_ns))
            atomic_store(&n->lease_ns, until);
        if (n->resume_pending && !n->suspended) {
            int resume = 0;
            n->resume_pending = 0;
            each_slot(n, each_pause, &resume);
        }
    }
    free(beat);
}

static void send_beat(cal_node_t *n)
{
    if (!fw_zk_connected(&n->zk))
        return;
    beat_t *beat = malloc(sizeof(*beat));
    if (beat == NULL)
        return;
    beat->node = n;
    beat->sent_ns = fw_clock_mono_ns();
    beat->session = fw_zk_session_id(&n->zk);
    if (fw_zk_exists(&n->zk, "/nodes/calligraphus", NULL, NULL, on_beat, beat) < 0)
        free(beat);
}

static void on_heartbeat(uv_timer_t *t)
{
    send_beat(t->data);
}

/* ---- slots ------------------------------------------------------------------------- */

static uint32_t slot_weight(const char *category, uint32_t bucket, const char *id)
{
    char key[512];
    int len = snprintf(key, sizeof(key), "%s/%" PRIu32 "@%s", category, bucket, id);
    return fw_hash32(key, (size_t)len);
}

/*
 * The owner node of every slot is watched, so that the writer knows who owns
 * each bucket (routing), which buckets are free (balance) and when it lost
 * one of its own. Reading them goes through a queue with at most
 * OWNER_READS_MAX under way: a new category of 10,000 buckets must not put
 * 10,000 requests ahead of the lease's heartbeat.
 *
 * A slot's first read is of the bucket node (a probe): its child count says
 * whether the bucket has an owner, and its data is what a takeover needs.
 * Watching the owner node starts with exists (it sets a watch on a missing
 * node too, so one request does for a free bucket) unless the node was there
 * when last seen; then with get (one request for an owned bucket). Either
 * falls back to the other when it guessed wrong.
 */
static void owner_read_start(cal_slot_t *s);

static void pump_owner_reads(cal_node_t *n)
{
    while (n->read_head != NULL && n->owner_reads < OWNER_READS_MAX && !n->stopping &&
           fw_zk_connected(&n->zk)) {
        cal_slot_t *s = n->read_head;
        n->read_head = s->owner_next;
        if (n->read_head == NULL)
            n->read_tail = NULL;
        s->owner_next = NULL;
        s->owner_queued = 0;
        owner_read_start(s);
    }
}

/*
 * Alone and short of its share, the writer takes a bucket that its probe
 * found free before watching it (on_taken does): watching first would cost
 * a request, and our own takeover would fire the watch and cost another.
 */
static int watch_later(const cal_slot_t *s)
{
    return s->node->claiming && s->probed && !s->owner_watch &&
           (s->state == CAL_SLOT_TAKING ||
            (s->state == CAL_SLOT_FREE && s->owner_known && s->owner_id[0] == '\0'));
}

/* Queues a read of the slot's owner node if it is not watched or not known. */
static void watch_owner(cal_slot_t *s)
{
    cal_node_t *n = s->node;
    if ((s->owner_watch && s->owner_known && !s->need_meta) || s->owner_reading ||
        s->owner_queued || (watch_later(s) && !s->need_meta))
        return;
    s->owner_queued = 1;
    if (n->read_tail != NULL)
        n->read_tail->owner_next = s;
    else
        n->read_head = s;
    n->read_tail = s;
    pump_owner_reads(n);
}

static void owner_read_end(cal_slot_t *s)
{
    cal_node_t *n = s->node;
    s->owner_reading = 0;
    n->owner_reads--;
    pump_owner_reads(n);
}

static void on_owner_noop(cal_owner_t *o, int status)
{
    (void)o;
    (void)status;
}

static void owner_absent(cal_slot_t *s);

static void on_owner_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)path;
    cal_slot_t *s = arg;
    s->owner_watch = 0;
    if (rc != ZOK || s->node->stopping)
        return; /* the session ended: the census watches again in the next one */
    if (type == ZOO_DELETED_EVENT)
        owner_absent(s); /* a read would only say so again */
    else
        s->owner_present = 1; /* there now: get reads it in one request */
    watch_owner(s);
}

/* The owner node says the bucket is someone else's (or nobody's) while we
 * think it is ours: we lost it (an expired session, an operator). */
static void check_lost(cal_slot_t *s)
{
    if (!slot_is_ours(s))
        return;
    int ours = strcmp(s->owner_id, s->node->cfg.id) == 0 &&
               s->owner_session == fw_zk_session_id(&s->node->zk);
    if (!ours) {
        char name[200];
        fw_log_warn("calligraphus", "%s: lost ownership (owner now %s)",
                    slot_name(s, name, sizeof(name)), s->owner_id[0] ? s->owner_id : "none");
        slot_drop(s);
    }
}

static void on_stale_owner_deleted(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    (void)rc;
    cal_slot_t *s = arg;
    kick(s->node);
}

/* No owner node. */
static void owner_absent(cal_slot_t *s)
{
    s->owner_known = 1;
    s->owner_present = 0;
    s->owner_id[0] = s->owner_address[0] = '\0';
    s->owner_session = 0;
    check_lost(s);
    kick(s->node);
}

/* The owner node as read. */
static void owner_present(cal_slot_t *s, const char *data, size_t len, const struct Stat *stat)
{
    cal_node_t *n = s->node;
    fw_zk_t *zk = &n->zk;
    ProtobufCMessage *m;
    char err[128];
    s->owner_known = 1;
    s->owner_present = 1;
    s->owner_session = stat->ephemeralOwner;
    /* A takeover after our read of the bucket node changed it. */
    if (stat->czxid > s->owner.meta_mzxid)
        cal_owner_forget(&s->owner);
    if (fw_pbtext_parse(&fwpb__owner_info__descriptor, data, len, &m, err, sizeof(err)) == 0) {
        Fwpb__OwnerInfo *info = (Fwpb__OwnerInfo *)m;
        snprintf(s->owner_id, sizeof(s->owner_id), "%s", info->node_id);
        /* Cut short, a name could still parse, as the wrong one: none instead. */
        if (strlen(info->address) < sizeof(s->owner_address))
            snprintf(s->owner_address, sizeof(s->owner_address), "%s", info->address);
        else
            s->owner_address[0] = '\0';
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        snprintf(s->owner_id, sizeof(s->owner_id), "?");
        s->owner_address[0] = '\0';
    }
    check_lost(s);
    /* Our own id from an earlier life of this process (kill -9, restart): that
     * session is dead to us; do not wait for ZooKeeper to expire it. (One of
     * this session that we let go is the census's: slot_stranded.) */
    if (s->state == CAL_SLOT_FREE && strcmp(s->owner_id, n->cfg.id) == 0 &&
        s->owner_session != fw_zk_session_id(zk) && !n->stopping) {
        char name[200], path[300];
        fw_log_info("calligraphus", "%s: removing the owner node of our previous session",
                    slot_name(s, name, sizeof(name)));
        cal_owner_path(&s->owner, path, sizeof(path));
        fw_zk_delete(zk, path, stat->version, on_stale_owner_deleted, s);
    }
    kick(n);
}

/* get without a watch, after exists found the node (and set the watch). */
static void on_owner_peek(fw_zk_t *zk, int rc, const char *data, size_t len,
                          const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_slot_t *s = arg;
    if (rc == ZOK)
        owner_present(s, data, len, stat);
    else if (rc == ZNONODE)
        owner_absent(s); /* gone again: the watch fires and we read once more */
    else
        s->owner_known = 0; /* watched but unread: the census asks again */
    owner_read_end(s);
}

static void on_owner_get(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg);

static void on_owner_exists(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)stat;
    cal_slot_t *s = arg;
    char path[300];
    cal_owner_path(&s->owner, path, sizeof(path));
    if (rc == ZNONODE) {
        owner_absent(s); /* the watch waits for its creation */
    } else if (rc == ZOK) {
        /* The watch is set; read who owns it. */
        if (fw_zk_get(zk, path, NULL, NULL, on_owner_peek, s) == 0)
            return;
        s->owner_known = 0;
    } else {
        s->owner_watch = 0;
    }
    owner_read_end(s);
}

/* get with a watch. */
static void on_owner_get(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg)
{
    cal_slot_t *s = arg;
    char path[300];
    cal_owner_path(&s->owner, path, sizeof(path));
    if (rc == ZOK) {
        owner_present(s, data, len, stat);
    } else if (rc == ZNONODE) {
        /* get sets no watch on a missing node; exists does. */
        if (fw_zk_exists(zk, path, on_owner_watch, s, on_owner_exists, s) == 0)
            return;
        s->owner_watch = 0;
    } else {
        s->owner_watch = 0;
    }
    owner_read_end(s);
}

/* Starts watching the owner node; 0 or a negative errno. */
static int owner_arm(cal_slot_t *s)
{
    fw_zk_t *zk = &s->node->zk;
    char path[300];
    cal_owner_path(&s->owner, path, sizeof(path));
    int rc = s->owner_present ? fw_zk_get(zk, path, on_owner_watch, s, on_owner_get, s)
                              : fw_zk_exists(zk, path, on_owner_watch, s, on_owner_exists, s);
    if (rc == 0)
        s->owner_watch = 1;
    return rc;
}

static void on_owner_probe(fw_zk_t *zk, int rc, const char *data, size_t len,
                           const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_slot_t *s = arg;
    int again = s->probed;
    s->need_meta = 0;
    s->meta_failed = rc != ZOK || cal_owner_learn(&s->owner, data, len, stat) < 0;
    if (rc == ZOK || rc == ZNONODE)
        s->no_bucket = rc == ZNONODE;
    if (again || s->owner_watch) {
        /* Only the data was wanted: the owner's watch says who owns it. */
        owner_read_end(s);
        kick(s->node);
        return;
    }
    if (rc == ZOK) {
        s->probed = 1;
        if (stat->numChildren == 0) {
            owner_absent(s); /* the census watches it, or takes it first */
            owner_read_end(s);
            return;
        }
        s->owner_present = 1; /* its only child is the owner node */
    } else if (rc == ZNONODE) {
        s->probed = 1; /* no bucket node (yet): the owner's watch will tell */
    } else {
        owner_read_end(s); /* the census asks again */
        return;
    }
    if (owner_arm(s) < 0)
        owner_read_end(s);
}

static void owner_read_start(cal_slot_t *s)
{
    cal_node_t *n = s->node;
    int rc;
    if (!s->need_meta && ((s->owner_watch && s->owner_known) || watch_later(s)))
        return;
    if (!s->probed || s->need_meta) {
        char path[300];
        cal_owner_bucket_path(&s->owner, path, sizeof(path));
        rc = fw_zk_get(&n->zk, path, NULL, NULL, on_owner_probe, s);
    } else if (s->owner_watch) {
        char path[300];
        cal_owner_path(&s->owner, path, sizeof(path));
        rc = fw_zk_get(&n->zk, path, NULL, NULL, on_owner_peek, s);
    } else {
        rc = owner_arm(s);
    }
    if (rc < 0)
        return; /* the census asks again */
    s->owner_reading = 1;
    n->owner_reads++;
}

/* ---- the bucket of an owned slot -------------------------------------------------- */

static void on_reserved(cal_owner_t *o, int status)
{
    cal_slot_t *s = o->data;
    s->reserving = 0;
    if (s->b == NULL)
        return;
    if (status == 0) {
        cal_bucket_give_segment_id(s->b, o->reserved_id);
    } else if (status == FW_ENOT_OWNER) {
        char name[200];
        fw_log_warn("calligraphus", "%s: fenced while reserving a segment id",
                    slot_name(s, name, sizeof(name)));
        if (slot_is_ours(s))
            slot_drop(s);
    } else {
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS; /* the tick asks again */
    }
}

static void reserve_id(cal_slot_t *s)
{
    if (s->reserving || s->b == NULL || s->b->next_segment_id != 0)
        return;
    s->owner.data = s;
    /* Files past ZooKeeper's counter (it was reset): reserve above them, so
     * the counter catches up instead of lagging behind forever. */
    if (s->b->last_segment_id >= s->owner.next_segment_id)
        s->owner.next_segment_id = s->b->last_segment_id + 1;
    if (cal_owner_reserve_segment(&s->owner, on_reserved) == 0)
        s->reserving = 1;
}

static void on_need_id(cal_bucket_t *b)
{
    reserve_id(b->data);
}

static void bucket_config(const cal_node_t *n, const cal_category_t *c, cal_bucket_config_t *cfg)
{
    cal_bucket_config_default(cfg);
    if (c->roll_bytes)
        cfg->roll_bytes = c->roll_bytes;
    if (c->roll_age_ms)
        cfg->roll_age_ms = c->roll_age_ms;
    cfg->sync_interval_ms = c->sync_interval_ms;
    if (n->cfg.batch_bytes)
        cfg->batch_bytes = n->cfg.batch_bytes;
    if (n->cfg.max_producers)
        cfg->max_producers = n->cfg.max_producers;
    if (n->cfg.dedup_segments)
        cfg->dedup_segments = n->cfg.dedup_segments;
}

static void on_bucket_closed(cal_bucket_t *b, int status);

static void after_bucket(cal_slot_t *s);

/* The bucket is closed: free it and its series. */
static void bucket_free(cal_slot_t *s)
{
    if (s->b->segment_id_gauge != NULL)
        cal_stats_bucket_forget(s->node->stats, s->cs->c->name, s->bucket);
    free(s->b);
    s->b = NULL;
}

static void on_failed_open_closed(cal_bucket_t *b, int status)
{
    (void)status;
    cal_slot_t *s = b->data;
    bucket_free(s);
    if (s->state != CAL_SLOT_OPENING)
        after_bucket(s); /* released or dropped meanwhile */
    /* else the tick opens it again after retry_at_ms */
}

static void on_bucket_open(cal_bucket_t *b, int status)
{
    cal_slot_t *s = b->data;
    char name[200];
    if (s->state != CAL_SLOT_OPENING)
        return; /* a drop or release already took over */
    if (status < 0) {
        /* The previous writer still holds a segment (it has not yet seen it
         * lost the bucket), or recovery failed: keep the bucket, try again. */
        fw_log_warn("calligraphus", "%s: cannot open yet (%s)", slot_name(s, name, sizeof(name)),
                    fw_strerror(status));
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
        cal_bucket_close(b, on_failed_open_closed);
        return;
    }
    slot_set_state(s, CAL_SLOT_OWNED);
    fw_log_info("calligraphus", "%s: open at epoch %" PRIu64, slot_name(s, name, sizeof(name)),
                s->owner.epoch);
    if (s->node->suspended)
        cal_bucket_pause(b);
    reserve_id(s);
}

static void open_bucket(cal_slot_t *s)
{
    cal_node_t *n = s->node;
    cal_bucket_config_t cfg;
    bucket_config(n, s->cs->c, &cfg);
    cal_bucket_t *b = calloc(1, sizeof(*b));
    char name[200];
    int rc = b == NULL
                 ? -ENOMEM
                 : cal_bucket_open(b, n->loop, &n->disk, n->cfg.root, s->cs->c->name, s->bucket,
                                   s->owner.epoch, s->owner.reserved_id, &cfg, on_bucket_open);
    slot_set_state(s, CAL_SLOT_OPENING);
    if (rc < 0) {
        fw_log_error("calligraphus", "%s: cannot open: %s", slot_name(s, name, sizeof(name)),
                     fw_strerror(rc));
        free(b);
        s->b = NULL;
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
        return;
    }
    b->data = s;
    b->need_segment_id = on_need_id;
    b->lease_ns = &n->lease_ns;
    b->sync_seconds = n->stats->fsync_seconds;
    if (s->cs->stats != NULL) {
        b->records_appended = s->cs->stats->records_appended;
        b->bytes_appended = s->cs->stats->bytes_appended;
    }
    if (cal_stats_bucket(n->stats, s->cs->c->name, s->bucket, &b->segment_id_gauge,
                         &b->segment_bytes_gauge) < 0)
        b->segment_id_gauge = b->segment_bytes_gauge = NULL;
    s->b = b;
}

/* ---- taking, handing back, dropping ------------------------------------------------ */

static void on_taken(cal_owner_t *o, int status)
{
    cal_slot_t *s = o->data;
    cal_node_t *n = s->node;
    if (s->state != CAL_SLOT_TAKING)
        return;
    slot_set_state(s, CAL_SLOT_FREE);
    if (status == 0 || status == FW_ENOT_OWNER || status == FW_EUNKNOWN_CATEGORY)
        s->no_bucket = status == FW_EUNKNOWN_CATEGORY;
    if (status == 0) {
        if (n->stopping || fw_zk_session_id(&n->zk) != n->session) {
            cal_owner_release(o, on_owner_noop);
        } else {
            snprintf(s->owner_id, sizeof(s->owner_id), "%s", n->cfg.id);
            snprintf(s->owner_address, sizeof(s->owner_address), "%s", n->cfg.address);
            s->owner_session = n->session;
            s->owner_known = 1;
            s->owner_present = 1;
            open_bucket(s);
            watch_owner(s); /* taken before it was watched (watch_later) */
        }
    } else {
        if (status == FW_ENOT_OWNER) {
            snprintf(s->owner_id, sizeof(s->owner_id), "%s", o->owner_node);
            snprintf(s->owner_address, sizeof(s->owner_address), "%s", o->owner_address);
            s->owner_present = 1;
        }
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
    }
    maybe_finish_stop(n);
    kick(n);
}

/* Takes n slots whose bucket nodes are known in one multi (cal_owner_take_many). */
static void slots_take_many(cal_slot_t **ss, int n)
{
    cal_owner_t *os[CAL_OWNER_BATCH] = {NULL};
    for (int i = 0; i < n; i++) {
        ss[i]->owner.data = ss[i];
        os[i] = &ss[i]->owner;
    }
    int rc = cal_owner_take_many(os, n, on_taken);
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            slot_set_state(ss[i], CAL_SLOT_TAKING);
        } else {
            ss[i]->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
        }
    }
}

static void slot_take(cal_slot_t *s)
{
    s->owner.data = s;
    if (cal_owner_take(&s->owner, on_taken) == 0) {
        slot_set_state(s, CAL_SLOT_TAKING);
    } else {
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
    }
}

static void on_released(cal_owner_t *o, int status)
{
    cal_slot_t *s = o->data;
    char name[200];
    if (status < 0)
        fw_log_warn("calligraphus",
                    "%s: could not delete the owner node (%s); it goes with our "
                    "session",
                    slot_name(s, name, sizeof(name)), fw_strerror(status));
    if (s->state == CAL_SLOT_RELEASING)
        slot_set_state(s, CAL_SLOT_FREE);
    maybe_finish_stop(s->node);
    handback_next(s->node);
    kick(s->node);
}

static void after_bucket(cal_slot_t *s)
{
    cal_node_t *n = s->node;
    if (s->state == CAL_SLOT_CLOSING && !n->stopping && s->owner.owned &&
        fw_zk_session_id(&n->zk) == n->session) {
        slot_set_state(s, CAL_SLOT_RELEASING);
        s->owner.data = s;
        if (cal_owner_release(&s->owner, on_released) == 0)
            return;
    }
    slot_set_state(s, CAL_SLOT_FREE);
    maybe_finish_stop(n);
    handback_next(n);
    kick(n);
}

static void on_bucket_closed(cal_bucket_t *b, int status)
{
    cal_slot_t *s = b->data;
    char name[200];
    if (status < 0)
        fw_log_warn("calligraphus", "%s: close: %s", slot_name(s, name, sizeof(name)),
                    fw_strerror(status));
    else
        fw_log_info("calligraphus", "%s: %s", slot_name(s, name, sizeof(name)),
                    s->state == CAL_SLOT_DROPPING ? "dropped" : "sealed and closed");
    bucket_free(s);
    after_bucket(s);
}

/* Hands the bucket back: seal, then delete our owner node. */
static void slot_release(cal_slot_t *s)
{
    if (!slot_is_ours(s))
        return;
    slot_set_state(s, CAL_SLOT_CLOSING);
    if (s->b != NULL)
        cal_bucket_close(s->b, on_bucket_closed);
    else
        after_bucket(s);
}

/* The bucket is someone else's now: close without a seal, delete nothing. */
static void slot_drop(cal_slot_t *s)
{
    s->owner.owned = 0;
    if (s->b == NULL) {
        if (slot_is_ours(s))
            slot_set_state(s, CAL_SLOT_FREE);
        return;
    }
    slot_set_state(s, CAL_SLOT_DROPPING);
    cal_bucket_abandon(s->b, on_bucket_closed);
}

/* ---- the catalog's categories as slots ----------------------------------------------- */

static cal_cat_state_t *cat_state(cal_node_t *n, cal_category_t *c)
{
    if (c->data != NULL)
        return c->data;
    cal_cat_state_t *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    cs->c = c;
    cs->stats = cal_stats_category(n->stats, c->name);
    c->data = cs;
    return cs;
}

/* Grows the category's slots to its bucket count. */
static void sync_slots(cal_node_t *n, cal_category_t *c)
{
    cal_cat_state_t *cs = cat_state(n, c);
    if (cs == NULL || !c->loaded)
        return;
    if (cs->czxid != c->czxid) {
        /* Created again: what we read of its bucket nodes was of the old
         * ones, and a takeover from it could lower an epoch. */
        for (uint32_t i = 0; i < cs->nslots; i++) {
            cal_slot_t *s = cs->slots[i];
            cal_owner_forget(&s->owner);
            s->meta_failed = 0;
            s->no_bucket = 0;
        }
        cs->czxid = c->czxid;
    }
    if (c->buckets <= cs->nslots || c->buckets > FW_BUCKETS_MAX)
        return;
    cal_slot_t **slots = realloc(cs->slots, c->buckets * sizeof(*slots));
    if (slots == NULL)
        return;
    cs->slots = slots;
    for (uint32_t i = cs->nslots; i < c->buckets; i++) {
        cal_slot_t *s = calloc(1, sizeof(*s));
        if (s == NULL)
            break;
        s->node = n;
        s->cs = cs;
        s->bucket = i;
        s->weight = slot_weight(c->name, i, n->cfg.id);
        cal_owner_init(&s->owner, &n->zk, c->name, i, n->cfg.id, n->cfg.address);
        s->owner.data = s;
        cs->slots[i] = s;
        cs->nslots = i + 1;
    }
}

static void on_catalog_changed(cal_catalog_t *cat, void *arg)
{
    cal_node_t *n = arg;
    for (int i = 0; i < cat->count; i++)
        sync_slots(n, cat->items[i]);
    kick(n);
}

static void on_members_changed(cal_members_t *m, void *arg)
{
    (void)m;
    kick(arg);
}

/* ---- balance ------------------------------------------------------------------------------ */

static void each_slot(cal_node_t *n, slot_fn fn, void *arg)
{
    for (int i = 0; i < n->catalog.count; i++) {
        cal_cat_state_t *cs = n->catalog.items[i]->data;
        if (cs == NULL)
            continue;
        for (uint32_t b = 0; b < cs->nslots; b++)
            fn(cs->slots[b], arg);
    }
}

/*
 * The cap best slots offered, by weight: the highest (takes, in our
 * rendezvous order) or the lowest (hand-backs). A heap whose root is the
 * worst kept, so one pass over n slots costs n log cap.
 */
typedef struct pick_s {
    cal_slot_t **v;
    uint32_t n, cap;
    int lowest;
} pick_t;

static int pick_before(const pick_t *p, const cal_slot_t *a, const cal_slot_t *b)
{
    return p->lowest ? a->weight < b->weight : a->weight > b->weight;
}

static void pick_sift_down(pick_t *p, uint32_t i)
{
    for (;;) {
        uint32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < p->n && pick_before(p, p->v[worst], p->v[l]))
            worst = l;
        if (r < p->n && pick_before(p, p->v[worst], p->v[r]))
            worst = r;
        if (worst == i)
            return;
        cal_slot_t *t = p->v[i];
        p->v[i] = p->v[worst];
        p->v[worst] = t;
        i = worst;
    }
}

static void pick_offer(pick_t *p, cal_slot_t *s)
{
    if (p->n < p->cap) {
        uint32_t i = p->n++;
        p->v[i] = s;
        while (i > 0 && pick_before(p, p->v[(i - 1) / 2], p->v[i])) {
            cal_slot_t *t = p->v[i];
            p->v[i] = p->v[(i - 1) / 2];
            p->v[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (p->cap > 0 && pick_before(p, s, p->v[0])) {
        p->v[0] = s;
        pick_sift_down(p, 0);
    }
}

/* Empties the heap into v, best first. */
static void pick_sort(pick_t *p)
{
    uint32_t n = p->n;
    while (p->n > 1) {
        cal_slot_t *t = p->v[0];
        p->v[0] = p->v[--p->n];
        p->v[p->n] = t;
        pick_sift_down(p, 0);
    }
    p->n = n;
}

typedef struct census_s {
    int64_t now;
    uint32_t total, mine, opening;
    uint32_t unowned; /* buckets with no owner, as far as we know */
    pick_t take;      /* the unowned slots we weigh highest */
    pick_t give;      /* the owned slots we weigh lowest */
} census_t;

/*
 * The owner node names us but the slot is free, so nobody serves the bucket
 * and no other writer can take it while the node is there. We let the
 * bucket go and the node stayed: a suspension longer than the session
 * timeout after which the same session came back (ZooKeeper expires no
 * session while it is down itself, and a restarted server restores them), a
 * failed bucket, a hand-back whose delete was lost; or the node is from an
 * earlier life of this process (owner_present deletes those).
 */
static int slot_stranded(const cal_slot_t *s)
{
    return s->state == CAL_SLOT_FREE && s->owner_known && strcmp(s->owner_id, s->node->cfg.id) == 0;
}

static void on_stranded_released(cal_owner_t *o, int status)
{
    cal_slot_t *s = o->data;
    char name[200];
    if (status < 0) {
        fw_log_warn("calligraphus", "%s: could not delete our stale owner node (%s); trying again",
                    slot_name(s, name, sizeof(name)), fw_strerror(status));
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
    }
    /* Else the owner's watch sees the node go, and the census takes the
     * bucket again: a new epoch, a recovered segment. */
    kick(s->node);
}

/* Deletes a stranded slot's owner node of this session (fenced like any release). */
static void stranded_release(cal_slot_t *s)
{
    char name[200];
    fw_log_info("calligraphus", "%s: still ours in ZooKeeper but not open; handing it back",
                slot_name(s, name, sizeof(name)));
    s->owner.data = s;
    if (cal_owner_release(&s->owner, on_stranded_released) < 0)
        s->retry_at_ms = fw_clock_mono_ms() + RETRY_MS;
}

/* The slot is of a bucket the category has now. */
static int slot_in_category(const cal_slot_t *s)
{
    return !s->cs->c->deleted && s->bucket < s->cs->c->buckets;
}

static void count_slot(cal_slot_t *s, void *arg)
{
    census_t *c = arg;
    cal_node_t *n = s->node;
    if (!slot_in_category(s)) {
        if (slot_is_ours(s))
            slot_release(s);
        return;
    }
    c->total++;
    watch_owner(s);
    if (s->state == CAL_SLOT_OWNED && s->b != NULL && s->b->state == CAL_BUCKET_FAILED) {
        slot_release(s); /* unusable (a failed sync, a lapsed lease): recover afresh */
        return;
    }
    if (s->state == CAL_SLOT_OWNED && s->b != NULL && s->b->next_segment_id == 0 &&
        c->now >= s->retry_at_ms)
        reserve_id(s);
    if (s->state == CAL_SLOT_OPENING && s->b == NULL && c->now >= s->retry_at_ms && !n->suspended)
        open_bucket(s);
    if (s->state == CAL_SLOT_OWNED && s->b != NULL)
        cal_bucket_seal_if_idle(s->b);
    if (slot_is_ours(s) || s->state == CAL_SLOT_TAKING)
        c->mine++;
    if (s->state == CAL_SLOT_OPENING && s->b != NULL)
        c->opening++;
    /* A bucket without its node (a category half deleted by hand) cannot
     * be owned by anyone: waiting for it would keep every writer unready. */
    if (s->state == CAL_SLOT_FREE && !s->no_bucket &&
        (!s->owner_known || s->owner_id[0] == '\0' || slot_stranded(s)))
        c->unowned++;
    if (slot_stranded(s) && s->owner_session == n->session && s->owner.cb == NULL &&
        c->now >= s->retry_at_ms)
        stranded_release(s);
    if (s->state == CAL_SLOT_FREE && s->owner_known && s->owner_id[0] == '\0' &&
        c->now >= s->retry_at_ms)
        pick_offer(&c->take, s);
    if (s->state == CAL_SLOT_OWNED)
        pick_offer(&c->give, s);
}

static int can_balance(cal_node_t *n)
{
    return !n->stopping && !n->suspended && fw_zk_connected(&n->zk) &&
           fw_zk_session_id(&n->zk) == n->session && cal_members_registered(&n->members) &&
           n->members.listed && n->catalog.listed;
}

/* Starts the next hand-backs the last rebalance chose, while we still own more than our share. */
static void handback_next(cal_node_t *n)
{
    while (can_balance(n) && n->moving < n->cfg.max_parallel_moves && n->give_at < n->ngive) {
        cal_slot_t *s = n->give[n->give_at++];
        uint32_t mine = (uint32_t)(n->owned_count + n->taking);
        if (mine <= n->give_share) {
            n->ngive = 0;
            return;
        }
        if (s->state != CAL_SLOT_OWNED)
            continue;
        char name[200];
        fw_log_info("calligraphus", "%s: handing back (own %u, share %u of %u over %u writers)",
                    slot_name(s, name, sizeof(name)), mine, n->give_share, n->give_total,
                    n->give_live);
        slot_release(s);
    }
}

/*
 * One pass over the slots, then as many moves as the share and the limits
 * allow: takes of unowned buckets up to max_parallel_takes claimed or
 * opening at once (a take makes nothing less available, and the open of a
 * new bucket is cheap, so they run in parallel: 10,000 buckets are claimed
 * in seconds, not four at a time), hand-backs up to max_parallel_moves
 * (each seals a segment on the disk thread and leaves the bucket unwritable
 * until the next owner has it).
 */
static void rebalance(cal_node_t *n)
{
    n->ngive = 0;
    pump_owner_reads(n); /* slots queued while the session was down */
    if (!can_balance(n))
        return;
    uint32_t takes = (uint32_t)n->cfg.max_parallel_takes;
    /* Decided before the pass, which watches (or not) by it. */
    uint32_t live = (uint32_t)n->members.count, slots = 0;
    if (cal_members_find(&n->members, n->cfg.id) == NULL)
        live++;
    for (int i = 0; i < n->catalog.count; i++) {
        cal_cat_state_t *cs = n->catalog.items[i]->data;
        if (cs != NULL && !cs->c->deleted)
            slots += cal_cat_state_live(cs);
    }
    n->claiming = live == 1 && (uint32_t)(n->owned_count + n->taking) < slots;
    census_t c = {.now = fw_clock_mono_ms()};
    c.take.v = n->picks;
    c.take.cap = takes > (uint32_t)n->taking ? takes - (uint32_t)n->taking : 0;
    c.give.v = n->picks + takes;
    c.give.cap = takes;
    c.give.lowest = 1;
    each_slot(n, count_slot, &c);
    n->unowned = c.unowned;
    n->census_ms = c.now;
    uint32_t target = live ? (c.total + live - 1) / live : c.total;
    if (c.mine > target) {
        /* Hand-backs run max_parallel_moves at a time; the next starts as
         * soon as one ends (handback_next), not at the next rebalance. */
        pick_sort(&c.give);
        n->give = c.give.v;
        n->ngive = c.give.n;
        n->give_at = 0;
        n->give_share = target;
        n->give_total = c.total;
        n->give_live = live;
        handback_next(n);
    } else if (c.mine < target) {
        uint32_t busy = (uint32_t)n->taking + c.opening;
        uint32_t budget = target - c.mine;
        if (budget > (takes > busy ? takes - busy : 0))
            budget = takes > busy ? takes - busy : 0;
        pick_sort(&c.take);
        /* Buckets whose nodes we know go CAL_OWNER_BATCH to a multi: one
         * request instead of sixteen, a fraction of ZooKeeper's work. */
        cal_slot_t *batch[CAL_OWNER_BATCH];
        int nbatch = 0;
        for (uint32_t i = 0; i < budget && i < c.take.n; i++) {
            cal_slot_t *s = c.take.v[i];
            if (!s->owner.meta_known && !s->meta_failed) {
                /* Its node changed since we read it (someone else owned it):
                 * read it again, and it joins a multi in a later round. */
                s->need_meta = 1;
                watch_owner(s);
                continue;
            }
            if (!s->owner.meta_known || s->owner.cb != NULL) {
                slot_take(s);
                continue;
            }
            batch[nbatch++] = s;
            if (nbatch == CAL_OWNER_BATCH) {
                slots_take_many(batch, nbatch);
                nbatch = 0;
            }
        }
        if (nbatch > 0)
            slots_take_many(batch, nbatch);
    }
}

static void on_kick(uv_timer_t *t)
{
    rebalance(t->data);
}

static void kick(cal_node_t *n)
{
    if (!n->stopping && !uv_is_active((uv_handle_t *)&n->kick))
        uv_timer_start(&n->kick, on_kick, KICK_MS, 0);
}

static void on_tick(uv_timer_t *t)
{
    cal_node_t *n = t->data;
    if (n->stopping)
        return;
    cal_members_sync(&n->members);
    cal_catalog_sync(&n->catalog);
    rebalance(n);
    int64_t now = fw_clock_mono_ms();
    for (int i = 0; i < n->catalog.count; i++) {
        cal_cat_state_t *cs = n->catalog.items[i]->data;
        if (cs != NULL && cs->stats != NULL)
            cal_stats_category_tick(cs->stats, now);
    }
}

/* ---- the session ------------------------------------------------------------------------ */

static void each_pause(cal_slot_t *s, void *arg)
{
    int pause = *(int *)arg;
    if (s->b != NULL && s->state == CAL_SLOT_OWNED) {
        if (pause)
            cal_bucket_pause(s->b);
        else
            cal_bucket_resume(s->b);
    }
}

static void each_drop(cal_slot_t *s, void *arg)
{
    (void)arg;
    if (slot_is_ours(s) || s->state == CAL_SLOT_CLOSING)
        slot_drop(s);
}

static void on_suspend_timeout(uv_timer_t *t)
{
    cal_node_t *n = t->data;
    if (!n->suspended)
        return;
    /* The session has surely expired on the server by now: free the files
     * for whoever takes the buckets. */
    fw_log_warn("calligraphus", "ZooKeeper unreachable for a session timeout; dropping buckets");
    atomic_store(&n->lease_ns, 0);
    each_slot(n, each_drop, NULL);
}

static void on_path(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    cal_node_t *n = arg;
    if (rc == ZOK && !n->stopping) {
        cal_members_sync(&n->members);
        cal_catalog_sync(&n->catalog);
    }
}

static void on_zk_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    cal_node_t *n = arg;
    int pause = 1;
    switch (state) {
    case FW_ZK_CONNECTED:
        if (session_id != n->session) {
            /* A new session: nothing from the old one is ours any more. */
            atomic_store(&n->lease_ns, 0);
            each_slot(n, each_drop, NULL);
            n->session = session_id;
        }
        n->suspended = 0;
        uv_timer_stop(&n->suspend_timer);
        send_beat(n);
        uv_timer_start(&n->heartbeat, on_heartbeat, (uint64_t)fw_zk_session_timeout(zk) / 4,
                       (uint64_t)fw_zk_session_timeout(zk) / 4);
        /* Paused buckets resume once a round trip has renewed the lease
         * (on_beat): a write before that would find it lapsed. */
        n->resume_pending = 1;
        fw_log_info("calligraphus", "ZooKeeper session 0x%" PRIx64 " up", (uint64_t)session_id);
        /* The tree exists on a fresh ensemble only once someone made it. */
        fw_zk_ensure_path(zk, "/categories", on_path, n);
        fw_zk_ensure_path(zk, "/buckets", on_path, n);
        fw_zk_ensure_path(zk, "/nodes/calligraphus", on_path, n);
        kick(n);
        break;
    case FW_ZK_SUSPENDED:
        fw_log_warn("calligraphus", "ZooKeeper connection lost; appends pause");
        n->suspended = 1;
        uv_timer_stop(&n->heartbeat);
        each_slot(n, each_pause, &pause);
        uv_timer_start(&n->suspend_timer, on_suspend_timeout,
                       (uint64_t)(fw_zk_session_timeout(zk) ? fw_zk_session_timeout(zk)
                                                            : n->cfg.session_timeout_ms),
                       0);
        break;
    case FW_ZK_EXPIRED:
        fw_log_warn("calligraphus", "ZooKeeper session expired; dropping every bucket");
        n->suspended = 1;
        atomic_store(&n->lease_ns, 0);
        uv_timer_stop(&n->heartbeat);
        each_slot(n, each_drop, NULL);
        break;
    default:
        break;
    }
}

/* ---- routing ------------------------------------------------------------------------------ */

int cal_node_category(cal_node_t *n, const char *category, cal_category_t **out)
{
    cal_category_t *c = cal_catalog_find(&n->catalog, category);
    *out = c;
    if (c != NULL && !c->deleted && c->loaded && c->data != NULL)
        return 0;
    /*
     * Not known yet is not "does not exist": a writer just started, or
     * without ZooKeeper, has not read the catalog. A producer gives a block
     * up after two UNKNOWN_CATEGORY answers, and a block from its spool
     * was already acked as spooled to its application: that would be a loss.
     */
    if ((c == NULL && !n->catalog.listed) || (c != NULL && !c->deleted))
        return FW_ERETRY_LATER;
    return FW_EUNKNOWN_CATEGORY;
}

int cal_node_route(cal_node_t *n, const char *category, uint32_t bucket, cal_route_t *r)
{
    memset(r, 0, sizeof(*r));
    if (n->stopping)
        return FW_ESHUTTING_DOWN;
    cal_category_t *c;
    int known = cal_node_category(n, category, &c);
    if (known < 0)
        return known;
    r->cs = c->data;
    if (bucket >= c->buckets || bucket >= r->cs->nslots)
        return FW_EBUCKET_RANGE;
    cal_slot_t *s = r->cs->slots[bucket];
    if (s->state == CAL_SLOT_OWNED && s->b != NULL && s->b->state == CAL_BUCKET_READY &&
        !s->b->paused) {
        r->bucket = s->b;
        return 0;
    }
    if (s->state != CAL_SLOT_FREE)
        return FW_ERETRY_LATER; /* ours, or moving: soon settled */
    if (s->owner_known && s->owner_id[0] != '\0' && s->owner_address[0] != '\0' &&
        strcmp(s->owner_id, n->cfg.id) != 0)
        r->owner_address = s->owner_address;
    return FW_ENOT_OWNER;
}

int cal_node_ready(cal_node_t *n, char *reason, size_t cap)
{
    if (n->stopping) {
        snprintf(reason, cap, "shutting down");
        return 0;
    }
    if (!fw_zk_connected(&n->zk)) {
        snprintf(reason, cap, "ZooKeeper session %s", fw_zk_state_name(fw_zk_state(&n->zk)));
        return 0;
    }
    if (!cal_members_registered(&n->members)) {
        snprintf(reason, cap, "not registered yet");
        return 0;
    }
    if (!cal_disk_ready(&n->disk, DISK_STALL_MS, reason, cap))
        return 0;
    /* Buckets owned: every bucket has an owner and ours are open, as of
     * the last rebalance (a fresh one, so a stalled loop is not ready). */
    if (fw_clock_mono_ms() - n->census_ms > 4 * TICK_MS) {
        snprintf(reason, cap, "bucket ownership not checked for %.1f s",
                 (double)(fw_clock_mono_ms() - n->census_ms) / 1000);
        return 0;
    }
    int settling = n->owned_count - n->open_count + n->taking;
    if (n->unowned > 0 || settling > 0) {
        snprintf(reason, cap, "buckets settling: %u without an owner, %d of ours opening",
                 n->unowned, settling);
        return 0;
    }
    return 1;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static double read_zk_requests(void *arg)
{
    return (double)fw_zk_requests(&((cal_node_t *)arg)->zk);
}

static double read_zk_waiting(void *arg)
{
    return fw_zk_requests_waiting(&((cal_node_t *)arg)->zk);
}

static double read_zk_peak(void *arg)
{
    return fw_zk_requests_peak(&((cal_node_t *)arg)->zk);
}

/* The session's request counts, read at scrape time. */
static int register_zk_metrics(cal_node_t *n)
{
    fw_metrics_t *reg = n->stats->reg;
    int rc = fw_metrics_counter_fn(reg, "freeway_calligraphus_zookeeper_requests_total",
                                   "Requests sent to ZooKeeper (a multi counts one).",
                                   read_zk_requests, n, NULL);
    if (rc == 0)
        rc = fw_metrics_gauge_fn(reg, "freeway_calligraphus_zookeeper_requests_waiting",
                                 "Requests sent to ZooKeeper and not answered yet.",
                                 read_zk_waiting, n, NULL);
    if (rc == 0)
        rc = fw_metrics_gauge_fn(reg, "freeway_calligraphus_zookeeper_requests_peak",
                                 "The most requests ever waiting for ZooKeeper at once.",
                                 read_zk_peak, n, NULL);
    return rc;
}

int cal_node_init(cal_node_t *n, uv_loop_t *loop, const cal_node_config_t *cfg, cal_stats_t *stats)
{
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->cfg = *cfg;
    n->stats = stats;
    if (n->cfg.max_parallel_moves <= 0)
        n->cfg.max_parallel_moves = 4;
    if (n->cfg.max_parallel_takes <= 0)
        n->cfg.max_parallel_takes = 256;
    n->picks = calloc(2 * (size_t)n->cfg.max_parallel_takes, sizeof(*n->picks));
    if (n->picks == NULL)
        return -ENOMEM;
    int rc = register_zk_metrics(n);
    if (rc == 0)
        rc = cal_disk_init(&n->disk, loop);
    if (rc < 0) {
        free(n->picks);
        return rc;
    }
    fw_zk_options_t zo = {
        .connect = cfg->zk_connect,
        .create_chroot = 1, /* a daemon: the tree is ours to make */
        .auth = cfg->zk_auth,
        .session_timeout_ms = cfg->session_timeout_ms,
        .state_cb = on_zk_state,
        .state_arg = n,
        .loop_watchdog = 1,
    };
    cal_catalog_init(&n->catalog, &n->zk, on_catalog_changed, n);
    if (cal_members_init(&n->members, &n->zk, cfg->id, cfg->address, cfg->metrics_address,
                         cfg->root, on_members_changed, n) < 0) {
        free(n->picks);
        return -ENOMEM;
    }
    uv_timer_t *timers[] = {&n->tick, &n->kick, &n->heartbeat, &n->suspend_timer};
    for (size_t i = 0; i < 4; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = n;
    }
    rc = fw_zk_init(&n->zk, loop, &zo);
    if (rc < 0) {
        for (size_t i = 0; i < 4; i++)
            uv_close((uv_handle_t *)timers[i], NULL);
        cal_disk_close(&n->disk, NULL);
        free(n->picks);
        return rc;
    }
    n->zk.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    return 0;
}

static void each_close(cal_slot_t *s, void *arg)
{
    (void)arg;
    if (slot_is_ours(s))
        slot_release(s);
}

typedef struct busy_s {
    int busy;
} busy_t;

static void each_busy(cal_slot_t *s, void *arg)
{
    busy_t *b = arg;
    if (s->b != NULL || s->state == CAL_SLOT_TAKING || s->state == CAL_SLOT_CLOSING ||
        s->state == CAL_SLOT_DROPPING)
        b->busy = 1;
}

static void each_free(cal_slot_t *s, void *arg)
{
    (void)arg;
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    cal_node_t *n = h->data;
    if (--n->closing_handles > 0)
        return;
    each_slot(n, each_free, NULL);
    for (int i = 0; i < n->catalog.count; i++) {
        cal_cat_state_t *cs = n->catalog.items[i]->data;
        if (cs == NULL)
            continue;
        free(cs->slots);
        free(cs->stats);
        free(cs);
    }
    cal_catalog_free(&n->catalog);
    cal_members_free(&n->members);
    free(n->picks);
    if (n->stopped_cb != NULL)
        n->stopped_cb(n);
}

static void on_disk_closed(cal_disk_t *disk)
{
    cal_node_t *n = (cal_node_t *)((char *)disk - offsetof(cal_node_t, disk));
    uv_timer_t *timers[] = {&n->tick, &n->kick, &n->heartbeat, &n->suspend_timer};
    n->closing_handles = 4;
    for (size_t i = 0; i < 4; i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
}

static void on_zk_closed(fw_zk_t *zk)
{
    cal_node_t *n = zk->data;
    cal_disk_close(&n->disk, on_disk_closed);
}

static void maybe_finish_stop(cal_node_t *n)
{
    if (!n->stopping || n->stopping == 2)
        return;
    busy_t b = {0};
    each_slot(n, each_busy, &b);
    if (b.busy)
        return;
    n->stopping = 2;
    fw_log_info("calligraphus", "every bucket sealed; closing the ZooKeeper session");
    uv_timer_stop(&n->heartbeat);
    fw_zk_close(&n->zk, on_zk_closed);
}

void cal_node_stop(cal_node_t *n, cal_node_cb cb)
{
    if (n->stopping)
        return;
    n->stopping = 1;
    n->stopped_cb = cb;
    uv_timer_stop(&n->tick);
    uv_timer_stop(&n->kick);
    each_slot(n, each_close, NULL);
    maybe_finish_stop(n);
}
