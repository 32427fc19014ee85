/*
 * libcurl's multi_socket API on a libuv loop (see curl_uv.h). The shape is
 * curl's docs/examples/multi-uv.c; what is added is the bookkeeping that
 * makes close and socket reuse safe.
 *
 * Sockets. libcurl tells the socket callback what to wait for on each of its
 * sockets; the first time, a sock_t with a uv_poll_t is made and tied to the
 * socket with curl_multi_assign, later calls change its events, and
 * CURL_POLL_REMOVE (which libcurl sends before it closes a socket) stops and
 * closes it at once, so libuv never polls an fd libcurl closed. If libcurl
 * ever hands out a socket number we still poll without a REMOVE first, the
 * old watcher is dropped before the new one is made (libuv allows one per fd).
 *
 * Transfers. Each added easy handle gets an xfer_t (its CURLOPT_PRIVATE).
 * After every curl_multi_socket_action the finished ones are read with
 * curl_multi_info_read, removed from the multi handle and reported; that
 * drain is the only place transfers leave the multi handle, and nothing here
 * calls curl_multi_* from inside a libcurl callback.
 */
#include "curl_uv.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct cp_curl_xfer_s {
    CURL *easy;
    cp_curl_done_cb cb;
    void *arg;
    struct cp_curl_xfer_s *prev, *next;
} xfer_t;

typedef struct cp_curl_sock_s {
    uv_poll_t poll;
    cp_curl_t *c;
    curl_socket_t fd;
    /* What libcurl last asked to wait for (UV_READABLE, UV_WRITABLE). */
    int events;
    struct cp_curl_sock_s *prev, *next;
} sock_t;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- handles and close ---------------------------------------------------------- */

static void maybe_closed(cp_curl_t *c)
{
    if (c->closing && c->multi == NULL && c->handles == 0 && c->close_cb != NULL) {
        cp_curl_close_cb cb = c->close_cb;
        c->close_cb = NULL;
        cb(c);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    cp_curl_t *c = h->data;
    c->handles--;
    maybe_closed(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    cp_curl_t *c = s->c;
    free(s);
    c->handles--;
    maybe_closed(c);
}

/* Stops polling s now (before libcurl closes the fd) and frees it once libuv lets go. */
static void sock_close(sock_t *s)
{
    cp_curl_t *c = s->c;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* The multi handle goes; then the sockets it left and the timer. */
static void finish_close(cp_curl_t *c)
{
    /* curl_multi_cleanup closes the connections it cached; their sockets get
     * CURL_POLL_REMOVE first if they were being polled. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL)
        sock_close(c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* ---- transfers ---------------------------------------------------------------------- */

static void xfer_unlink(cp_curl_t *c, xfer_t *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
}

/* Takes easy out of the multi handle and reports it; frees its xfer_t. */
static void xfer_end(cp_curl_t *c, xfer_t *x, CURLcode result)
{
    xfer_unlink(c, x);
    curl_multi_remove_handle(c->multi, x->easy);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
    CURL *easy = x->easy;
    cp_curl_done_cb cb = x->cb;
    void *arg = x->arg;
    free(x);
    cb(easy, result, arg);
}

/* Reports every finished transfer. A callback may add transfers or close c. */
static void drain(cp_curl_t *c)
{
    c->draining = 1;
    CURLMsg *m;
    int left;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is gone once the handle is removed: copy what is needed first. */
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        if (priv != NULL)
            xfer_end(c, (xfer_t *)priv, result);
    }
    c->draining = 0;
    if (c->closing && c->multi != NULL)
        finish_close(c);
}

static void socket_action(cp_curl_t *c, curl_socket_t fd, int flags)
{
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    drain(c);
}

/* ---- libuv callbacks ------------------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    cp_curl_t *c = s->c;
    int flags = 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if (status < 0) {
        /* POLLERR (a reset, say): libuv has stopped the handle. Let libcurl read
         * and write, so it meets the error itself and names it ("Connection
         * reset by peer", not "select/poll returned error"). */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT | CURL_CSELECT_ERR;
    }
    socket_action(c, s->fd, flags);
    /* s is freed only in its close callback, so it can still be looked at. If
     * libcurl kept the socket after an error, watch it again. */
    if (status < 0 && !uv_is_closing((uv_handle_t *)&s->poll) &&
        !uv_is_active((uv_handle_t *)&s->poll))
        uv_poll_start(&s->poll, s->events, on_poll);
}

static void on_timer(uv_timer_t *t)
{
    cp_curl_t *c = t->data;
    socket_action(c, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- libcurl callbacks (no curl_multi_* calls in here but curl_multi_assign) ---------- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    cp_curl_t *c = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL)
            sock_close(s);
        return 0;
    }
    if (c->closing)
        return 0;
    if (s == NULL) {
        for (sock_t *old = c->socks; old != NULL; old = old->next) {
            if (old->fd == fd) {
                sock_close(old); /* a stale watcher for a number libcurl reused */
                break;
            }
        }
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
            free(s);
            return -1; /* libcurl fails the transfers on this socket */
        }
        s->poll.data = s;
        s->c = c;
        s->fd = fd;
        s->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = s;
        c->socks = s;
        c->handles++;
        /* The documented way to hang context on a socket; it only sets a pointer. */
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    s->events = events;
    if (uv_poll_start(&s->poll, events, on_poll) < 0)
        return -1;
    return 0;
}

static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    cp_curl_t *c = userp;
    if (timeout_ms < 0 || c->closing) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* 0 means "as soon as possible"; 1 ms keeps it out of this loop turn's timers. */
    uv_timer_start(&c->timer, on_timer, timeout_ms > 0 ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

/* ---- API ------------------------------------------------------------------------------ */

int cp_curl_init(cp_curl_t *c, uv_loop_t *loop)
{
    memset(c, 0, sizeof(*c));
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return -EIO;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        return -ENOMEM;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    int rc = uv_timer_init(loop, &c->timer);
    if (rc < 0) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
        return rc;
    }
    c->timer.data = c;
    c->handles = 1;
    return 0;
}

int cp_curl_add(cp_curl_t *c, CURL *easy, cp_curl_done_cb cb, void *arg)
{
    if (c->closing)
        return -ESHUTDOWN;
    xfer_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->easy = easy;
    x->cb = cb;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
    /* libcurl answers by setting a 0 ms timeout: the transfer starts from the timer. */
    CURLMcode mc = curl_multi_add_handle(c->multi, easy);
    if (mc != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
    }
    x->next = c->xfers;
    if (c->xfers != NULL)
        c->xfers->prev = x;
    c->xfers = x;
    return 0;
}

void cp_curl_close(cp_curl_t *c, cp_curl_close_cb cb)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    uv_timer_stop(&c->timer);
    while (c->xfers != NULL)
        xfer_end(c, c->xfers, CURLE_ABORTED_BY_CALLBACK);
    /* Inside the drain the multi handle is still being read: it ends there. */
    if (!c->draining)
        finish_close(c);
}
