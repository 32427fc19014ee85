/* The Scribe listener's memory of calls that may come again (see scribe_retry.h). */
#include "scribe_retry.h"

#include "crc32c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the digest -------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A 64-bit multiply-mix hash over 8-byte words; the length goes in first. */
static uint64_t hash64(const uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t h = mix64(seed ^ (uint64_t)len);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix64(h ^ w) * 0x9e3779b97f4a7c15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    return mix64(h ^ w ^ ((uint64_t)len << 56));
}

void cal_scribe_digest(const void *buf, size_t len, uint64_t out[2])
{
    out[0] = hash64(buf, len, 0x5c71be0d1a2b3c4dull);
    /* A second hash of another kind: a collision needs both to collide. */
    out[1] = ((uint64_t)fw_crc32c(0, buf, len) << 32) ^ hash64(buf, len, 0x243f6a8885a308d3ull);
}

/* ---- the table --------------------------------------------------------------------------- */

static size_t slot_of(const cal_scribe_retry_t *r, const cal_scribe_key_t *k)
{
    uint64_t h = k->digest[0] ^ hash64((const uint8_t *)k->ip, strlen(k->ip), 1);
    return (size_t)h & (r->table_cap - 1);
}

static int key_equal(const cal_scribe_key_t *a, const cal_scribe_key_t *b)
{
    return a->digest[0] == b->digest[0] && a->digest[1] == b->digest[1] &&
           strcmp(a->ip, b->ip) == 0;
}

int cal_scribe_retry_init(cal_scribe_retry_t *r, size_t max, int64_t window_ms)
{
    memset(r, 0, sizeof(*r));
    size_t cap = 64;
    while (cap < max && cap < ((size_t)1 << 24))
        cap <<= 1;
    r->table = calloc(cap, sizeof(*r->table));
    if (r->table == NULL)
        return -ENOMEM;
    r->table_cap = cap;
    r->max = max > 0 ? max : 1;
    r->window_ms = window_ms;
    return 0;
}

void cal_scribe_plan_free(cal_scribe_plan_t *p)
{
    free(p->cats);
    free(p->blocks);
    memset(p, 0, sizeof(*p));
}

static void list_unlink(cal_scribe_retry_t *r, cal_scribe_memo_t *e)
{
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        r->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        r->newest = e->older;
    e->older = e->newer = NULL;
}

static void list_push_newest(cal_scribe_retry_t *r, cal_scribe_memo_t *e)
{
    e->older = r->newest;
    e->newer = NULL;
    if (r->newest != NULL)
        r->newest->newer = e;
    else
        r->oldest = e;
    r->newest = e;
}

void cal_scribe_retry_remove(cal_scribe_retry_t *r, cal_scribe_memo_t *e)
{
    cal_scribe_memo_t **pp = &r->table[slot_of(r, &e->key)];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    list_unlink(r, e);
    cal_scribe_plan_free(&e->plan);
    free(e);
    r->count--;
}

void cal_scribe_retry_free(cal_scribe_retry_t *r)
{
    while (r->oldest != NULL)
        cal_scribe_retry_remove(r, r->oldest);
    free(r->table);
    memset(r, 0, sizeof(*r));
}

void cal_scribe_retry_expire(cal_scribe_retry_t *r, int64_t now_ms)
{
    cal_scribe_memo_t *e = r->oldest;
    /* The list is in the order of expiry times: stop at the first one still in its window. */
    while (e != NULL && e->expires_ms <= now_ms) {
        cal_scribe_memo_t *next = e->newer;
        if (!e->busy)
            cal_scribe_retry_remove(r, e);
        e = next;
    }
}

cal_scribe_memo_t *cal_scribe_retry_find(cal_scribe_retry_t *r, const cal_scribe_key_t *key,
                                         int64_t now_ms)
{
    for (cal_scribe_memo_t *e = r->table[slot_of(r, key)]; e != NULL; e = e->hnext) {
        if (!key_equal(&e->key, key))
            continue;
        if (!e->busy && e->expires_ms <= now_ms) {
            cal_scribe_retry_remove(r, e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

cal_scribe_memo_t *cal_scribe_retry_add(cal_scribe_retry_t *r, const cal_scribe_key_t *key,
                                        int64_t now_ms)
{
    if (r->count >= r->max) {
        cal_scribe_memo_t *idle = r->oldest;
        while (idle != NULL && idle->busy)
            idle = idle->newer;
        if (idle == NULL)
            return NULL;
        cal_scribe_retry_remove(r, idle);
    }
    cal_scribe_memo_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->key = *key;
    e->busy = 1;
    e->expires_ms = now_ms + r->window_ms;
    size_t slot = slot_of(r, key);
    e->hnext = r->table[slot];
    r->table[slot] = e;
    list_push_newest(r, e);
    r->count++;
    return e;
}

void cal_scribe_retry_keep(cal_scribe_retry_t *r, cal_scribe_memo_t *e, int64_t now_ms)
{
    e->busy = 0;
    e->expires_ms = now_ms + r->window_ms;
    list_unlink(r, e);
    list_push_newest(r, e);
}
