/*
 * cal_owner: bucket ownership in ZooKeeper, fenced by the bucket's epoch.
 *
 *   buckets/<category>/<bucket>        persistent: epoch, next_segment_id (BucketMeta)
 *   buckets/<category>/<bucket>/owner  ephemeral: node id, address, epoch (OwnerInfo)
 *
 * Taking a bucket is one atomic multi: check(bucket node, version read),
 * create(owner, ephemeral), set(bucket node: epoch + 1). Every later write
 * the owner makes to the bucket node (reserving segment ids) is conditional
 * on the version its own last write produced, so a writer that lost the
 * bucket (paused, partitioned, expired) can change nothing: the check on
 * the ephemeral owner node alone would not fence, since every new owner
 * node starts at version 0 (engineering-notes 1.6).
 *
 * The read before a takeover may be one done earlier (cal_owner_learn, or
 * our own last write): the multi's check on the version it saw is what
 * makes the new epoch and segment id right, however old the read, and a
 * stale one only costs a failed multi and a fresh read. Takeovers of many
 * buckets may share one multi (cal_owner_take_many): all or nothing, each
 * bucket fenced exactly as alone.
 */
#ifndef CAL_OWNER_H
#define CAL_OWNER_H

#include <stdint.h>

#include "names.h"
#include "zk.h"

typedef struct cal_owner_s cal_owner_t;

/*
 * status: 0 (owned: epoch and next_segment_id are set), FW_ENOT_OWNER
 * (another node owns it; owner_node / owner_address say who, if readable),
 * FW_EUNKNOWN_CATEGORY (no bucket node), FW_ERETRY_LATER (ZooKeeper did
 * not answer), or a negative errno.
 */
typedef void (*cal_owner_cb)(cal_owner_t *o, int status);

struct cal_owner_s {
    char category[FW_CATEGORY_MAX + 1];
    uint32_t bucket;
    char node_id[128];
    char address[128];
    fw_zk_t *zk;
    /* what we hold */
    int owned;
    uint64_t epoch;
    uint64_t next_segment_id;
    int version; /* of the bucket node, after our last write */
    /* who holds it, after FW_ENOT_OWNER */
    char owner_node[128];
    char owner_address[128];
    /* The bucket node as last read or written by us: a takeover starts from
     * it. meta_mzxid is the write it reflects: an owner node created after
     * it (a newer takeover) makes it stale. */
    int meta_known;
    int meta_version;
    int64_t meta_mzxid;
    uint64_t meta_epoch;
    uint64_t meta_next;
    /* private */
    cal_owner_cb cb;
    int attempts;
    int releasing; /* the fenced write under way is a release, not a reservation */
    uint64_t reserved_id;
    void *data; /* the caller's */
};

/* The bucket's owner node, buckets/<category>/<bucket>/owner, into out. */
void cal_owner_path(const cal_owner_t *o, char *out, size_t cap);
/* The bucket node, buckets/<category>/<bucket>, into out. */
void cal_owner_bucket_path(const cal_owner_t *o, char *out, size_t cap);

/* Fills in who we are; no ZooKeeper traffic yet. */
void cal_owner_init(cal_owner_t *o, fw_zk_t *zk, const char *category, uint32_t bucket,
                    const char *node_id, const char *address);

/*
 * Remembers a read of the bucket node (buckets/<category>/<bucket>: data and
 * stat) for the next takeover. 0, or -EINVAL for malformed data.
 */
int cal_owner_learn(cal_owner_t *o, const char *data, size_t len, const struct Stat *stat);

/* Forgets it: someone else has written the bucket node since. */
void cal_owner_forget(cal_owner_t *o);

/*
 * Tries to take the bucket (reading the bucket node first unless it is
 * known); cb follows on the loop. On success the takeover has also
 * reserved one segment id: o->reserved_id. 0 or a negative errno (then no
 * cb).
 */
int cal_owner_take(cal_owner_t *o, cal_owner_cb cb);

/* The most buckets cal_owner_take_many puts in one multi. */
#define CAL_OWNER_BATCH 16

/*
 * Takes n (1..CAL_OWNER_BATCH) buckets whose nodes are known (meta_known)
 * in one multi; cb follows for each, as after cal_owner_take. If the multi
 * fails on one bucket (taken by someone else, or changed since it was
 * read), that one goes on alone and the others are tried again together.
 * 0 or a negative errno (then no cb).
 */
int cal_owner_take_many(cal_owner_t *const *os, int n, cal_owner_cb cb);

/*
 * Reserves a segment id for a new segment: writes next_segment_id + 1 to the
 * bucket node, fenced by our version. On 0, o->reserved_id is the id to use;
 * FW_ENOT_OWNER means we were replaced (stop writing at once).
 */
int cal_owner_reserve_segment(cal_owner_t *o, cal_owner_cb cb);

/* Gives the bucket up (deletes the owner node if it is still ours). */
int cal_owner_release(cal_owner_t *o, cal_owner_cb cb);

#endif
