/* Connecting by address or host name (see connect.h). */
#include "connect.h"

#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lookups under way in the process at most: more fail at once (UV_EAI_AGAIN), so names stuck
 * in DNS cannot pile up threads while callers retry them. */
#define LOOKUPS_MAX 64

static atomic_int lookups_running;

/*
 * A name's lookup runs on a thread of its own, not on libuv's pool: a
 * getaddrinfo stuck on an unanswering DNS server can take tens of seconds
 * and cannot be cancelled, and neither the loop's teardown (a producer's or
 * consumer's close, a daemon's SIGTERM) nor other lookups may wait for it.
 * The thread and the attempt share the lookup; whichever lets go of it last
 * frees it.
 */
typedef struct lookup_s {
    pthread_mutex_t mu;
    int refs;         /* the thread's and the attempt's */
    uv_async_t *wake; /* the attempt's, NULL once it no longer waits */
    int status;       /* getaddrinfo's */
    int sys_errno;    /* errno, for EAI_SYSTEM */
    struct addrinfo *res;
    char host[FW_HOST_MAX];
    char service[8];
} lookup_t;

struct fw_connect_s {
    uv_connect_t req;
    uv_async_t wake; /* the lookup is done */
    uv_tcp_t *tcp;
    fw_connect_cb cb;
    void *arg;
    lookup_t *lookup; /* while looking up */
    int wake_open;    /* wake is a handle still to be closed */
    int ended;        /* cb ran, or never will */
    int abandoned;
};

static void lookup_release(lookup_t *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last)
        return;
    if (l->res != NULL)
        freeaddrinfo(l->res);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void *lookup_main(void *arg)
{
    lookup_t *l = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(l->host, l->service, &hints, &res);
    int sys_errno = rc == EAI_SYSTEM ? errno : 0;
    atomic_fetch_sub(&lookups_running, 1);
    pthread_mutex_lock(&l->mu);
    l->status = rc;
    l->sys_errno = sys_errno;
    l->res = res;
    if (l->wake != NULL)
        uv_async_send(l->wake);
    pthread_mutex_unlock(&l->mu);
    lookup_release(l);
    return NULL;
}

/* Frees c once its callback is settled and its wake handle closed. */
static void maybe_free(fw_connect_t *c)
{
    if (c->ended && !c->wake_open)
        free(c);
}

static void finish(fw_connect_t *c, int status)
{
    c->ended = 1;
    if (!c->abandoned)
        c->cb(c->arg, status);
    maybe_free(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    /* An abandoned attempt ends here too, with UV_ECANCELED, when tcp is closed. */
    finish(req->data, status);
}

static void on_wake_closed(uv_handle_t *h)
{
    fw_connect_t *c = h->data;
    c->wake_open = 0;
    maybe_free(c);
}

/* The attempt lets go of its lookup (the thread may still be in getaddrinfo). */
static struct addrinfo *lookup_drop(fw_connect_t *c, int *status, int *sys_errno)
{
    lookup_t *l = c->lookup;
    c->lookup = NULL;
    pthread_mutex_lock(&l->mu);
    l->wake = NULL;
    struct addrinfo *res = l->res;
    l->res = NULL;
    *status = l->status;
    *sys_errno = l->sys_errno;
    pthread_mutex_unlock(&l->mu);
    lookup_release(l);
    uv_close((uv_handle_t *)&c->wake, on_wake_closed);
    return res;
}

/* IPv4 first: a daemon listening on 127.0.0.1 is not found at ::1 that "localhost" may give first.
 */
static const struct addrinfo *pick(const struct addrinfo *res)
{
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next)
        if (a->ai_family == AF_INET)
            return a;
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            return a;
    return NULL;
}

/* getaddrinfo's error as libuv's (negative, with uv_strerror's words). */
static int lookup_error(int gai, int sys_errno)
{
    switch (gai) {
    case EAI_NONAME:
        return UV_EAI_NONAME;
    case EAI_AGAIN:
        return UV_EAI_AGAIN;
    case EAI_FAIL:
        return UV_EAI_FAIL;
    case EAI_MEMORY:
        return UV_ENOMEM;
    case EAI_SERVICE:
        return UV_EAI_SERVICE;
    case EAI_FAMILY:
        return UV_EAI_FAMILY;
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return UV_EAI_ADDRFAMILY;
#endif
#ifdef EAI_NODATA
    case EAI_NODATA:
        return UV_EAI_NODATA;
#endif
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : UV_EAI_FAIL;
    default:
        return UV_EAI_FAIL;
    }
}

static void on_wake(uv_async_t *h)
{
    fw_connect_t *c = h->data;
    if (c->lookup == NULL)
        return; /* a second wake-up, or after giving up */
    int gai, sys_errno;
    struct addrinfo *res = lookup_drop(c, &gai, &sys_errno);
    const struct addrinfo *a = gai == 0 ? pick(res) : NULL;
    int rc = gai != 0    ? lookup_error(gai, sys_errno)
             : a != NULL ? uv_tcp_connect(&c->req, c->tcp, a->ai_addr, on_connected)
                         : UV_EAI_NONAME;
    if (res != NULL)
        freeaddrinfo(res);
    if (rc < 0)
        finish(c, rc);
}

static int lookup_start(fw_connect_t *c, uv_loop_t *loop, const char *host, unsigned port)
{
    lookup_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    if (atomic_fetch_add(&lookups_running, 1) >= LOOKUPS_MAX) {
        atomic_fetch_sub(&lookups_running, 1);
        free(l);
        return UV_EAI_AGAIN;
    }
    snprintf(l->host, sizeof(l->host), "%s", host);
    snprintf(l->service, sizeof(l->service), "%u", port);
    l->refs = 2;
    l->wake = &c->wake;
    int rc = uv_async_init(loop, &c->wake, on_wake);
    if (rc < 0) {
        atomic_fetch_sub(&lookups_running, 1);
        free(l);
        return rc;
    }
    c->wake.data = c;
    c->wake_open = 1;
    c->lookup = l;
    pthread_mutex_init(&l->mu, NULL);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&thread, &attr, lookup_main, l);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        atomic_fetch_sub(&lookups_running, 1);
        l->refs = 1; /* no thread: the attempt's reference is the last */
        int ignored, ignored_errno;
        lookup_drop(c, &ignored, &ignored_errno);
        return -err;
    }
    return 0;
}

int fw_connect_start(uv_tcp_t *tcp, const char *addr, fw_connect_cb cb, void *arg,
                     fw_connect_t **out)
{
    char host[FW_HOST_MAX];
    unsigned port;
    int kind = fw_addr_split(addr, host, sizeof(host), &port);
    if (kind < 0)
        return UV_EINVAL;
    fw_connect_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return UV_ENOMEM;
    c->tcp = tcp;
    c->cb = cb;
    c->arg = arg;
    c->req.data = c;
    int rc;
    if (kind == 0) {
        struct sockaddr_storage ss;
        rc = fw_addr_parse(addr, &ss);
        if (rc == 0)
            rc = uv_tcp_connect(&c->req, tcp, (const struct sockaddr *)&ss, on_connected);
    } else {
        rc = lookup_start(c, tcp->loop, host, port);
    }
    if (rc < 0) {
        /* No callback will come; a wake handle already made is closed first. */
        c->ended = 1;
        c->abandoned = 1;
        maybe_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fw_connect_abandon(fw_connect_t *c)
{
    c->abandoned = 1;
    if (c->lookup != NULL) {
        /* The thread finishes on its own; its answer goes nowhere. */
        int ignored, ignored_errno;
        struct addrinfo *res = lookup_drop(c, &ignored, &ignored_errno);
        if (res != NULL)
            freeaddrinfo(res);
        c->ended = 1;
        maybe_free(c);
    }
    /* Connecting: closing tcp ends the request (on_connected, UV_ECANCELED). */
}
