/*
 * copier/task.c's claim step, white-box: the task's static callbacks are
 * driven by hand on a copier whose session is only a state (no server), so
 * the answers ZooKeeper gives rarely (a claim gone between our create and
 * our read, a connection loss) can be given on demand.
 */
#include "fwtest.h"

#include "../../copier/task.c"

#include <limits.h>

static cp_task_t *fake_task(cp_copier_t *c, cp_bucket_t *b, cp_dest_t *d)
{
    memset(c, 0, sizeof(*c));
    memset(b, 0, sizeof(*b));
    memset(d, 0, sizeof(*d));
    c->cfg.id = "c1";
    c->zk.state = FW_ZK_CONNECTED;
    c->zk.session_id = 42;
    snprintf(b->name, sizeof(b->name), "web/0");
    snprintf(d->key, sizeof(d->key), "file:%%2F%%2F%%2Fcopy");
    cp_task_t *t = calloc(1, sizeof(*t));
    t->copier = c;
    t->bucket = b;
    t->dest = d;
    t->wanted = 1;
    return t;
}

/*
 * on_claim_exists sets claim_watch = 1 and sends a get with a watch. If the
 * other copier's claim is deleted before the get arrives, the get answers
 * ZNONODE, and by zk.h's contract the watch is then not set and never runs.
 * on_claim_read leaves claim_watch at 1, so cp_task_step(IDLE) never claims
 * again: the bucket is copied by nobody.
 */
FWT_TEST(a_claim_gone_before_the_get_leaves_no_watch_pending)
{
    cp_copier_t c;
    cp_bucket_t b;
    cp_dest_t d;
    cp_task_t *t = fake_task(&c, &b, &d);
    /* As on_claim_exists leaves it just before the get is answered. */
    t->state = CP_TASK_CLAIMING;
    t->claim_watch = 1;
    t->retry_at_ms = INT64_MAX; /* keep a fixed cp_task_step from issuing a real claim here */
    on_claim_read(&c.zk, ZNONODE, NULL, 0, NULL, t);
    FWT_ASSERT_INT_EQ(t->state, CP_TASK_IDLE);
    if (t->claim_watch)
        FWT_FAIL("claim_watch is still 1 after ZNONODE: no watch was set, nothing will "
                 "clear it, and cp_task_step(IDLE) never claims again");
    /* The same after a failed get (ZCONNECTIONLOSS: no watch set either). */
    t->state = CP_TASK_CLAIMING;
    t->claim_watch = 1;
    on_claim_read(&c.zk, ZCONNECTIONLOSS, NULL, 0, NULL, t);
    FWT_ASSERT_INT_EQ(t->claim_watch, 0);
    free(t);
}
