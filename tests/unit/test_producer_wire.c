/*
 * The producer end to end against fake writers: a thread per fake that
 * speaks the wire protocol over real loopback sockets (metadata, produce,
 * the writers' dedup rules) and misbehaves on request: RETRY_LATER,
 * connections dropped after storing, NOT_OWNER, silence, an unknown
 * category, and a crash that loses acked blocks. Checks that every record's
 * callback runs once, that every delivered record is stored once, and that
 * keyed records keep their order in the bucket fw_key_bucket(key) names.
 * (The real calligraphus is exercised by tests/integration.)
 */
#include "fwtest.h"

#include "block.h"
#include "crc32c.h"
#include "error.h"
#include "frame.h"
#include "freeway.h"
#include "proto/produce.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the fake writer ------------------------------------------------------------------------ */

#define FAKE_CONNS   16
#define FAKE_BUCKETS 64
#define FAKE_DROPS   8

typedef struct frec_s {
    uint32_t bucket;
    uint64_t seq;
    int has_key;
    int lost;
    char key[32];
    char value[64];
} frec_t;

typedef struct fake_s {
    int lfd;
    char addr[64];
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    /* knobs */
    const char *category;
    uint32_t nbuckets;
    uint32_t max_record;
    int retry_first;         /* answer RETRY_LATER to this many blocks first */
    int drop_at[FAKE_DROPS]; /* the Nth requests that store a block: unanswered, then closed */
    int ndrop;
    int silent;         /* never answer produce requests */
    char not_owner[64]; /* answer NOT_OWNER naming this address */
    /* state */
    uint64_t producer;
    uint64_t last[FAKE_BUCKETS]; /* last stored sequence per bucket */
    frec_t *recs;
    size_t nrecs, caprecs;
    int produce_reqs, storing_reqs, meta_reqs, blocks, dups, gaps, retries, accepts, drops;
    int fds[FAKE_CONNS];
    fw_buf_t in[FAKE_CONNS];
} fake_t;

static void fake_close_conn(fake_t *f, int i)
{
    close(f->fds[i]);
    f->fds[i] = -1;
    fw_buf_free(&f->in[i]);
}

static void send_all_bytes(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void fake_reply(int fd, uint8_t type, const ProtobufCMessage *m)
{
    fw_buf_t out = FW_BUF_INIT;
    if (fw_frame_append(&out, type, m, NULL, 0, FW_FRAME_MAX_DEFAULT) == 0)
        send_all_bytes(fd, out.data, out.len);
    fw_buf_free(&out);
}

static void fake_store(fake_t *f, uint32_t bucket, uint64_t seq, fw_record_iter_t *it)
{
    fw_record_t rec;
    while (fw_record_next(it, &rec)) {
        if (f->nrecs == f->caprecs) {
            f->caprecs = f->caprecs ? f->caprecs * 2 : 1024;
            f->recs = realloc(f->recs, f->caprecs * sizeof(*f->recs));
        }
        frec_t *r = &f->recs[f->nrecs++];
        memset(r, 0, sizeof(*r));
        r->bucket = bucket;
        r->seq = seq;
        r->has_key = rec.has_key;
        snprintf(r->key, sizeof(r->key), "%.*s", (int)rec.key_len, (const char *)rec.key);
        snprintf(r->value, sizeof(r->value), "%.*s", (int)rec.value_len, (const char *)rec.value);
    }
}

/* Returns 1 if the connection is to be dropped. */
static int fake_produce(fake_t *f, int i, const fw_frame_t *fr)
{
    Fwpb__ProduceRequest *req = fwpb__produce_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    f->produce_reqs++;
    int stored = 0;
    Fwpb__BlockResult *res = calloc(req->n_blocks, sizeof(*res));
    Fwpb__BlockResult **resp = calloc(req->n_blocks, sizeof(*resp));
    const uint8_t *body = fr->body;
    size_t left = fr->body_len;
    fw_buf_t scratch = FW_BUF_INIT;
    for (size_t b = 0; b < req->n_blocks; b++) {
        Fwpb__BlockRef *ref = req->blocks[b];
        Fwpb__BlockResult *r = &res[b];
        fwpb__block_result__init(r);
        resp[b] = r;
        FWT_ASSERT(ref->length <= left);
        FWT_ASSERT_STR_EQ(ref->category, f->category);
        FWT_ASSERT(ref->bucket < f->nbuckets);
        fw_block_header_t h;
        fw_record_iter_t it;
        FWT_ASSERT_OK(fw_block_decode(body, ref->length, 0, &scratch, &h, &it));
        FWT_ASSERT_UINT_EQ(fw_block_size(&h), ref->length);
        body += ref->length;
        left -= ref->length;
        if (f->producer == 0)
            f->producer = h.producer_id;
        FWT_ASSERT_UINT_EQ(h.producer_id, f->producer);
        uint64_t *last = &f->last[ref->bucket];
        if (f->not_owner[0] != '\0') {
            r->status = FWPB__STATUS__STATUS_NOT_OWNER;
            r->owner = f->not_owner;
        } else if (f->retry_first > 0) {
            f->retry_first--;
            f->retries++;
            r->status = FWPB__STATUS__STATUS_RETRY_LATER;
            r->message = "busy";
        } else if (*last != 0 && h.sequence <= *last) {
            f->dups++;
            r->status = FWPB__STATUS__STATUS_OK;
            r->has_duplicate = r->duplicate = 1;
        } else if (*last != 0 && h.sequence > *last + 1) {
            f->gaps++;
            r->status = FWPB__STATUS__STATUS_SEQUENCE_GAP;
            r->has_expected_sequence = 1;
            r->expected_sequence = *last + 1;
        } else {
            /* The next block, or the first of a producer this bucket does not know. */
            *last = h.sequence;
            f->blocks++;
            stored++;
            fake_store(f, ref->bucket, h.sequence, &it);
            r->status = FWPB__STATUS__STATUS_OK;
            r->has_segment_id = r->has_offset = 1;
            r->segment_id = 1;
            r->offset = (uint64_t)f->blocks * 100;
        }
    }
    FWT_ASSERT_UINT_EQ(left, 0);
    int drop = 0;
    if (stored > 0) {
        f->storing_reqs++;
        for (int k = 0; k < f->ndrop; k++)
            drop |= f->drop_at[k] == f->storing_reqs;
    }
    if (!drop && !f->silent) {
        Fwpb__ProduceResponse out = FWPB__PRODUCE_RESPONSE__INIT;
        out.request_id = req->request_id;
        out.n_results = req->n_blocks;
        out.results = resp;
        fake_reply(f->fds[i], FW_FRAME_PRODUCE_RESP, &out.base);
    }
    fw_buf_free(&scratch);
    free(res);
    free(resp);
    fwpb__produce_request__free_unpacked(req, NULL);
    return drop;
}

static void fake_metadata(fake_t *f, int i, const fw_frame_t *fr)
{
    Fwpb__MetadataRequest *req = fwpb__metadata_request__unpack(NULL, fr->meta_len, fr->meta);
    FWT_ASSERT(req != NULL);
    f->meta_reqs++;
    Fwpb__CategoryMetadata *cms = calloc(req->n_categories, sizeof(*cms));
    Fwpb__CategoryMetadata **cmp = calloc(req->n_categories, sizeof(*cmp));
    for (size_t k = 0; k < req->n_categories; k++) {
        Fwpb__CategoryMetadata *cm = &cms[k];
        fwpb__category_metadata__init(cm);
        cmp[k] = cm;
        cm->category = req->categories[k];
        if (f->category == NULL || strcmp(req->categories[k], f->category) != 0) {
            cm->status = FWPB__STATUS__STATUS_UNKNOWN_CATEGORY;
            continue;
        }
        cm->status = FWPB__STATUS__STATUS_OK;
        cm->has_buckets = 1;
        cm->buckets = f->nbuckets;
        cm->has_max_record_bytes = 1;
        cm->max_record_bytes = f->max_record;
        cm->has_codec = 1;
        cm->codec = FWPB__CODEC__CODEC_LZ4;
    }
    char *writers[] = {f->addr};
    Fwpb__MetadataResponse out = FWPB__METADATA_RESPONSE__INIT;
    out.request_id = req->request_id;
    out.n_categories = req->n_categories;
    out.categories = cmp;
    out.n_writers = 1;
    out.writers = writers;
    fake_reply(f->fds[i], FW_FRAME_METADATA_RESP, &out.base);
    free(cms);
    free(cmp);
    fwpb__metadata_request__free_unpacked(req, NULL);
}

static void fake_input(fake_t *f, int i)
{
    uint8_t buf[65536];
    ssize_t n = recv(f->fds[i], buf, sizeof(buf), 0);
    if (n <= 0) {
        fake_close_conn(f, i);
        return;
    }
    fw_buf_append(&f->in[i], buf, (size_t)n);
    size_t off = 0;
    for (;;) {
        fw_frame_t fr;
        size_t need;
        ssize_t m = fw_frame_decode(f->in[i].data + off, f->in[i].len - off, FW_FRAME_MAX_DEFAULT,
                                    &fr, &need);
        FWT_ASSERT(m >= 0);
        if (m == 0)
            break;
        int drop = 0;
        if (fr.type == FW_FRAME_PRODUCE_REQ)
            drop = fake_produce(f, i, &fr);
        else if (fr.type == FW_FRAME_METADATA_REQ)
            fake_metadata(f, i, &fr);
        else
            FWT_FAIL("unexpected frame type %u", fr.type);
        off += (size_t)m;
        if (drop) {
            f->drops++;
            fake_close_conn(f, i);
            return;
        }
    }
    memmove(f->in[i].data, f->in[i].data + off, f->in[i].len - off);
    f->in[i].len -= off;
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FAKE_CONNS + 1];
        int idx[FAKE_CONNS + 1];
        int n = 0;
        pfd[n].fd = f->lfd;
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < FAKE_CONNS; i++) {
            if (f->fds[i] >= 0) {
                pfd[n].fd = f->fds[i];
                pfd[n].events = POLLIN;
                idx[n++] = i;
            }
        }
        pthread_mutex_unlock(&f->mu);
        if (poll(pfd, (nfds_t)n, 20) <= 0)
            continue;
        pthread_mutex_lock(&f->mu);
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] >= 0 && f->fds[idx[k]] != pfd[k].fd)
                continue; /* closed meanwhile by fake_crash */
            if (idx[k] < 0) {
                int fd = accept(f->lfd, NULL, NULL);
                int slot = -1;
                for (int i = 0; i < FAKE_CONNS && slot < 0; i++)
                    slot = f->fds[i] < 0 ? i : -1;
                if (fd >= 0 && slot >= 0) {
                    f->fds[slot] = fd;
                    f->accepts++;
                } else if (fd >= 0) {
                    close(fd);
                }
            } else if (f->fds[idx[k]] >= 0) {
                fake_input(f, idx[k]);
            }
        }
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

static void fake_stop(void *arg)
{
    fake_t *f = arg;
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (f->fds[i] >= 0)
            fake_close_conn(f, i);
    }
    close(f->lfd);
    free(f->recs);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static fake_t *fake_start(const char *category, uint32_t nbuckets)
{
    fake_t *f = calloc(1, sizeof(*f));
    FWT_ASSERT(f != NULL);
    f->category = category;
    f->nbuckets = nbuckets;
    f->max_record = 1 << 20;
    for (int i = 0; i < FAKE_CONNS; i++)
        f->fds[i] = -1;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    FWT_ASSERT(f->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FWT_ASSERT(listen(f->lfd, 16) == 0);
    socklen_t len = sizeof(sa);
    FWT_ASSERT(getsockname(f->lfd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    FWT_ASSERT(pthread_create(&f->thread, NULL, fake_main, f) == 0);
    fwt_defer(fake_stop, f);
    return f;
}

/* Orders the fake's past work before what the test reads next (its state changes under mu). */
static void fake_sync(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* Forgets the last k blocks stored in bucket (a crash at a weak ack level) and drops every
 * connection. */
static void fake_crash(fake_t *f, uint32_t bucket, uint64_t k)
{
    pthread_mutex_lock(&f->mu);
    uint64_t keep = f->last[bucket] - k;
    for (size_t i = 0; i < f->nrecs; i++) {
        if (f->recs[i].bucket == bucket && f->recs[i].seq > keep)
            f->recs[i].lost = 1;
    }
    f->last[bucket] = keep;
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (f->fds[i] >= 0)
            fake_close_conn(f, i);
    }
    pthread_mutex_unlock(&f->mu);
}

/* A loopback address where nobody listens (a port just bound and released). */
static void dead_addr(char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    socklen_t len = sizeof(sa);
    FWT_ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(out, cap, "127.0.0.1:%u", ntohs(sa.sin_port));
    close(fd);
}

/* ---- the producer side ------------------------------------------------------------------------
 */

typedef struct tally_s {
    pthread_mutex_t mu;
    uint64_t calls, ok, failed, dups;
    int last_error;
    int errors_seen[8];
    int nerrors;
    uint8_t *seen; /* per record id: callbacks run */
    size_t nseen;
    char log[8192];
    size_t loglen;
} tally_t;

static void tally_free(void *arg)
{
    tally_t *t = arg;
    free(t->seen);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static tally_t *tally_new(size_t records)
{
    tally_t *t = calloc(1, sizeof(*t));
    FWT_ASSERT(t != NULL);
    pthread_mutex_init(&t->mu, NULL);
    t->seen = calloc(records ? records : 1, 1);
    t->nseen = records;
    fwt_defer(tally_free, t);
    return t;
}

typedef struct rec_arg_s {
    tally_t *t;
    size_t id;
} rec_arg_t;

static tally_t *the_tally;

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    tally_t *t = the_tally;
    size_t id = (size_t)(uintptr_t)arg;
    pthread_mutex_lock(&t->mu);
    t->calls++;
    if (id < t->nseen)
        t->seen[id]++;
    if (d->status == 0) {
        t->ok++;
        t->dups += d->duplicate != 0;
    } else {
        t->failed++;
        t->last_error = d->status;
        FWT_ASSERT(d->message != NULL && d->message[0] != '\0');
    }
    pthread_mutex_unlock(&t->mu);
}

static void on_log(fw_producer_log_level_t level, const char *msg, void *arg)
{
    tally_t *t = arg;
    (void)level;
    if (getenv("FW_TEST_LOG") != NULL) /* the producer's log on stderr, for debugging */
        fprintf(stderr, "producer: %s\n", msg);
    pthread_mutex_lock(&t->mu);
    int n = snprintf(t->log + t->loglen, sizeof(t->log) - t->loglen, "%s\n", msg);
    if (n > 0 && t->loglen + (size_t)n < sizeof(t->log))
        t->loglen += (size_t)n;
    pthread_mutex_unlock(&t->mu);
}

static fw_producer_t *producer(tally_t *t, const char *bootstrap,
                               void (*tweak)(fw_producer_options_t *))
{
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.bootstrap = bootstrap;
    o.log_cb = on_log;
    o.log_arg = t;
    o.log_level = FW_PRODUCER_LOG_DEBUG;
    o.batch_bytes = 4096; /* many blocks, so retries and pipelining happen */
    if (tweak != NULL)
        tweak(&o);
    fw_producer_t *p = NULL;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    return p;
}

static int send_record(fw_producer_t *p, const char *cat, size_t id, int keyed)
{
    char key[32], value[64];
    int klen = snprintf(key, sizeof(key), "key-%zu", id % 97);
    int vlen = snprintf(value, sizeof(value), "%s|%zu", keyed ? key : "-", id);
    return fw_producer_send(p, cat, keyed ? key : NULL, keyed ? (size_t)klen : 0, value,
                            (size_t)vlen, 0, on_delivery, (void *)(uintptr_t)id);
}

/* Every record 0..n-1 is stored exactly once (lost ones excepted), keyed ones in order in their
 * key's bucket. Returns the number stored. */
static size_t check_stored(fake_t *f, size_t n, int allow_lost)
{
    uint8_t *count = calloc(n, 1);
    size_t last_for_key[97];
    memset(last_for_key, 0xff, sizeof(last_for_key));
    size_t stored = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nrecs; i++) {
        frec_t *r = &f->recs[i];
        if (r->lost)
            continue;
        const char *bar = strchr(r->value, '|');
        FWT_ASSERT(bar != NULL);
        size_t id = strtoull(bar + 1, NULL, 10);
        FWT_ASSERT(id < n);
        count[id]++;
        if (count[id] > 1)
            FWT_FAIL("record %zu stored twice", id);
        stored++;
        if (r->has_key) {
            FWT_ASSERT_UINT_EQ(r->bucket, fw_key_bucket(r->key, strlen(r->key), f->nbuckets));
            size_t k = id % 97;
            if (last_for_key[k] != (size_t)-1 && last_for_key[k] > id)
                FWT_FAIL("key %zu: record %zu stored after %zu", k, id, last_for_key[k]);
            last_for_key[k] = id;
        }
    }
    pthread_mutex_unlock(&f->mu);
    if (!allow_lost) {
        for (size_t id = 0; id < n; id++) {
            if (count[id] != 1)
                FWT_FAIL("record %zu stored %u times", id, count[id]);
        }
    }
    free(count);
    return stored;
}

static void check_callbacks_once(tally_t *t)
{
    for (size_t id = 0; id < t->nseen; id++) {
        if (t->seen[id] != 1)
            FWT_FAIL("record %zu: callback ran %u times", id, t->seen[id]);
    }
}

/* ---- tests --------------------------------------------------------------------------------------
 */

FWT_TEST(delivers_every_record_once_in_key_order)
{
    fake_t *f = fake_start("web", 8);
    size_t n = 20000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, NULL);
    for (size_t id = 0; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, id % 2));
    fw_producer_stats_t s;
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    fw_producer_stats(p, &s);
    FWT_ASSERT_UINT_EQ(s.records_acked, n);
    FWT_ASSERT_UINT_EQ(s.records_queued + s.records_in_flight, 0);
    FWT_ASSERT_UINT_EQ(s.bytes_buffered, 0);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    fake_sync(f);
    FWT_ASSERT_UINT_EQ(t->ok, n);
    FWT_ASSERT_UINT_EQ(t->failed, 0);
    check_callbacks_once(t);
    FWT_ASSERT_UINT_EQ(check_stored(f, n, 0), n);
    /* Records without a key were spread over several buckets. */
    int used[8] = {0}, nused = 0;
    for (size_t i = 0; i < f->nrecs; i++) {
        if (!f->recs[i].has_key && !used[f->recs[i].bucket]++)
            nused++;
    }
    FWT_ASSERT_INT_OP(nused, >=, 4);
    FWT_ASSERT_INT_EQ(f->dups, 0);
}

static void tweak_fast_retries(fw_producer_options_t *o)
{
    o->max_in_flight = 3;
}

FWT_TEST(retries_and_dropped_connections_store_each_block_once)
{
    fake_t *f = fake_start("web", 4);
    f->retry_first = 7;
    f->drop_at[0] = 1;
    f->drop_at[1] = 2;
    f->drop_at[2] = 3;
    f->ndrop = 3;
    size_t n = 20000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, tweak_fast_retries);
    for (size_t id = 0; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, id % 3 != 0));
    FWT_ASSERT_OK(fw_producer_flush(p, 20000));
    fw_producer_stats_t s;
    fw_producer_stats(p, &s);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    fake_sync(f);
    FWT_ASSERT_UINT_EQ(t->ok, n);
    check_callbacks_once(t);
    check_stored(f, n, 0);
    FWT_ASSERT_INT_EQ(f->retries, 7);
    FWT_ASSERT_INT_EQ(f->drops, 3);
    FWT_ASSERT_INT_OP(f->accepts, >=, 1 + f->drops); /* reconnected after each drop */
    FWT_ASSERT_INT_OP(s.blocks_retried, >, 0);
    /* Blocks stored before a dropped answer came back as duplicates. */
    FWT_ASSERT_INT_OP(f->dups, >, 0);
    FWT_ASSERT_UINT_EQ(s.records_duplicate, t->dups);
    FWT_ASSERT_INT_OP(s.disconnects, >=, (uint64_t)f->drops);
}

static void tweak_written_one_bucket(fw_producer_options_t *o)
{
    o->acks = FW_ACKS_WRITTEN;
    o->linger_ms = 0;
}

FWT_TEST(renumbers_after_writer_loses_acked_blocks)
{
    fake_t *f = fake_start("web", 1);
    size_t n = 4000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, tweak_written_one_bucket);
    for (size_t id = 0; id < n / 2; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, 1));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    pthread_mutex_lock(&f->mu);
    uint64_t stored_before = f->last[0];
    pthread_mutex_unlock(&f->mu);
    FWT_ASSERT_INT_OP(stored_before, >, 3);
    fake_crash(f, 0, 2);
    for (size_t id = n / 2; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, 1));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    fw_producer_stats_t s;
    fw_producer_stats(p, &s);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    fake_sync(f);
    FWT_ASSERT_UINT_EQ(t->ok, n);
    check_callbacks_once(t);
    size_t stored = check_stored(f, n, 1);
    /* Only the two lost blocks are missing; nothing is stored twice. */
    FWT_ASSERT_INT_OP(stored, <, n);
    FWT_ASSERT_INT_OP(s.blocks_renumbered, >, 0);
    FWT_ASSERT(strstr(t->log, "lost blocks it had acked") != NULL);
    FWT_ASSERT_INT_OP(f->gaps, >, 0);
}

FWT_TEST(unknown_category_fails_its_records)
{
    fake_t *f = fake_start("web", 2);
    size_t n = 50;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, NULL);
    for (size_t id = 0; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "nosuch", id, id % 2));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    FWT_ASSERT_UINT_EQ(t->failed, n);
    FWT_ASSERT_INT_EQ(t->last_error, FW_EUNKNOWN_CATEGORY);
    check_callbacks_once(t);
    FWT_ASSERT(strstr(t->log, "category nosuch does not exist") != NULL);
}

static void tweak_short_timeouts(fw_producer_options_t *o)
{
    o->delivery_timeout_ms = 600;
    o->request_timeout_ms = 300;
}

FWT_TEST(delivery_timeout_fails_records_a_silent_writer_never_answers)
{
    fake_t *f = fake_start("web", 2);
    f->silent = 1;
    size_t n = 100;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, tweak_short_timeouts);
    int64_t t0 = fwt_now_ms();
    for (size_t id = 0; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, 1));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    int64_t took = fwt_now_ms() - t0;
    FWT_ASSERT_INT_OP(took, >=, 600);
    FWT_ASSERT_INT_OP(took, <, 5000);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 1000), 0);
    FWT_ASSERT_UINT_EQ(t->failed, n);
    FWT_ASSERT_INT_EQ(t->last_error, -ETIMEDOUT);
    check_callbacks_once(t);
    FWT_ASSERT(strstr(t->log, "unanswered") != NULL);
}

static void tweak_tiny_buffer(fw_producer_options_t *o)
{
    o->max_buffer_bytes = 8192;
    o->send_timeout_ms = 0;
}

FWT_TEST(full_buffer_fails_fast_and_close_cancels_the_rest)
{
    /* A writer address where nobody listens. */
    char addr[64];
    dead_addr(addr, sizeof(addr));
    size_t n = 1000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, addr, tweak_tiny_buffer);
    size_t accepted = 0;
    int rc = 0;
    for (size_t id = 0; id < n; id++) {
        rc = send_record(p, "web", id, 0);
        if (rc < 0)
            break;
        accepted++;
    }
    FWT_ASSERT_INT_EQ(rc, FW_ERETRY_LATER);
    FWT_ASSERT_INT_OP(accepted, >, 10);
    FWT_ASSERT_INT_OP(accepted, <, 8192 / 32);
    fw_producer_stats_t s;
    fw_producer_stats(p, &s);
    FWT_ASSERT_INT_OP(s.bytes_buffered, <=, 8192);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 200), -ETIMEDOUT);
    FWT_ASSERT_UINT_EQ(t->calls, accepted);
    FWT_ASSERT_UINT_EQ(t->failed, accepted);
    FWT_ASSERT_INT_EQ(t->last_error, -ECANCELED);
    for (size_t id = 0; id < accepted; id++)
        FWT_ASSERT_INT_EQ(t->seen[id], 1);
    FWT_ASSERT(strstr(t->log, "cannot connect") != NULL);
}

FWT_TEST(not_owner_sends_to_the_owner_named)
{
    fake_t *owner = fake_start("web", 4);
    fake_t *front = fake_start("web", 4);
    snprintf(front->not_owner, sizeof(front->not_owner), "%s", owner->addr);
    size_t n = 3000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, front->addr, NULL);
    for (size_t id = 0; id < n; id++)
        FWT_ASSERT_OK(send_record(p, "web", id, 1));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    FWT_ASSERT_UINT_EQ(t->ok, n);
    check_callbacks_once(t);
    check_stored(owner, n, 0);
    pthread_mutex_lock(&front->mu);
    FWT_ASSERT_UINT_EQ(front->nrecs, 0);
    pthread_mutex_unlock(&front->mu);
}

static void tweak_small_records(fw_producer_options_t *o)
{
    (void)o;
}

FWT_TEST(rejects_bad_arguments_and_oversized_records)
{
    fake_t *f = fake_start("web", 2);
    f->max_record = 20;
    tally_t *t = the_tally = tally_new(4);
    fw_producer_t *p = producer(t, f->addr, tweak_small_records);
    FWT_ASSERT_INT_EQ(fw_producer_send(p, "bad/name", NULL, 0, "x", 1, 0, on_delivery, NULL),
                      FW_EBAD_CATEGORY);
    FWT_ASSERT_INT_EQ(fw_producer_send(p, NULL, NULL, 0, "x", 1, 0, on_delivery, NULL), -EINVAL);
    static char big[(16u << 20) + 1];
    FWT_ASSERT_INT_EQ(fw_producer_send(p, "web", NULL, 0, big, sizeof(big), 0, NULL, NULL),
                      FW_ERECORD_TOO_LARGE);
    /* Before the category's limit is known the record is accepted, then fails. */
    char v[40];
    memset(v, 'v', sizeof(v));
    FWT_ASSERT_OK(fw_producer_send(p, "web", NULL, 0, v, sizeof(v), 0, on_delivery, (void *)0));
    FWT_ASSERT_OK(fw_producer_send(p, "web", "k", 1, v, 10, 0, on_delivery, (void *)1));
    FWT_ASSERT_OK(fw_producer_flush(p, 10000));
    FWT_ASSERT_UINT_EQ(t->failed, 1);
    FWT_ASSERT_UINT_EQ(t->ok, 1);
    FWT_ASSERT_INT_EQ(t->last_error, FW_ERECORD_TOO_LARGE);
    /* Once it is known, send refuses at once. */
    FWT_ASSERT_INT_EQ(fw_producer_send(p, "web", NULL, 0, v, sizeof(v), 0, on_delivery, NULL),
                      FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 5000), 0);
    FWT_ASSERT_INT_EQ(fw_producer_flush(NULL, 0), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_producer_close(NULL, 0), 0);
}

/* A callback that sends again (never blocks) and tries to flush (refused). */
static fw_producer_t *chain_p;
static atomic_int chain_left;
static atomic_int chain_flush_rc;

static void on_chain(const fw_delivery_t *d, void *arg)
{
    (void)arg;
    FWT_ASSERT_INT_EQ(d->status, 0);
    atomic_store(&chain_flush_rc, fw_producer_flush(chain_p, 0));
    if (atomic_fetch_sub(&chain_left, 1) > 1)
        FWT_ASSERT_OK(fw_producer_send(chain_p, "web", NULL, 0, "again", 5, 0, on_chain, NULL));
}

FWT_TEST(callbacks_may_send_but_not_flush)
{
    fake_t *f = fake_start("web", 2);
    tally_t *t = the_tally = tally_new(0);
    chain_p = producer(t, f->addr, NULL);
    atomic_store(&chain_left, 20);
    FWT_ASSERT_OK(fw_producer_send(chain_p, "web", NULL, 0, "first", 5, 0, on_chain, NULL));
    int64_t deadline = fwt_now_ms() + 10000;
    while (atomic_load(&chain_left) > 0 && fwt_now_ms() < deadline)
        usleep(1000);
    FWT_ASSERT_INT_EQ(atomic_load(&chain_left), 0);
    FWT_ASSERT_INT_EQ(atomic_load(&chain_flush_rc), -EDEADLK);
    FWT_ASSERT_INT_EQ(fw_producer_close(chain_p, 5000), 0);
    pthread_mutex_lock(&f->mu);
    FWT_ASSERT_UINT_EQ(f->nrecs, 20);
    pthread_mutex_unlock(&f->mu);
}

/* Several threads send at once; flush in one waits for its own records. */
typedef struct sender_arg_s {
    fw_producer_t *p;
    size_t from, to;
} sender_arg_t;

static void *sender_main(void *arg)
{
    sender_arg_t *a = arg;
    for (size_t id = a->from; id < a->to; id++)
        FWT_ASSERT_OK(send_record(a->p, "web", id, id % 2));
    return NULL;
}

FWT_TEST(concurrent_senders)
{
    fake_t *f = fake_start("web", 16);
    size_t n = 40000;
    tally_t *t = the_tally = tally_new(n);
    fw_producer_t *p = producer(t, f->addr, NULL);
    pthread_t th[4];
    sender_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i].p = p;
        args[i].from = n / 4 * (size_t)i;
        args[i].to = n / 4 * (size_t)(i + 1);
        FWT_ASSERT(pthread_create(&th[i], NULL, sender_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    FWT_ASSERT_INT_EQ(fw_producer_close(p, 10000), 0);
    fake_sync(f);
    FWT_ASSERT_UINT_EQ(t->ok, n);
    check_callbacks_once(t);
    /* Per key order holds within each sender's records only; check storage counts. */
    pthread_mutex_lock(&f->mu);
    FWT_ASSERT_UINT_EQ(f->nrecs, n);
    pthread_mutex_unlock(&f->mu);
}
