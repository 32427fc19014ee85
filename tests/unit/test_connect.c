/*
 * Connecting by address or host name (common/connect.c) on a real loop, to
 * a real listening socket on loopback. Names are spelt "LOCALHOST": found in
 * /etc/hosts whatever the case, so a real lookup runs and no query leaves
 * the host.
 */
#include "fwtest.h"

#include "connect.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

typedef struct server_s {
    uv_tcp_t listener;
    int port;
    int accepted;
    int two; /* two accepted */
} server_t;

typedef struct attempt_s {
    uv_tcp_t tcp;
    fw_connect_t *req;
    int calls;
    int status;
} attempt_t;

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_conn(uv_stream_t *listener, int status)
{
    server_t *s = listener->data;
    if (status < 0)
        return;
    uv_tcp_t *peer = malloc(sizeof(*peer));
    uv_tcp_init(listener->loop, peer);
    if (uv_accept(listener, (uv_stream_t *)peer) == 0)
        s->two = ++s->accepted >= 2;
    uv_close((uv_handle_t *)peer, free_handle);
}

static void server_start(uv_loop_t *loop, server_t *s)
{
    memset(s, 0, sizeof(*s));
    struct sockaddr_storage ss;
    FWT_ASSERT_OK(fw_addr_parse("127.0.0.1:0", &ss));
    FWT_ASSERT_OK(uv_tcp_init(loop, &s->listener));
    s->listener.data = s;
    FWT_ASSERT_OK(uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0));
    FWT_ASSERT_OK(uv_listen((uv_stream_t *)&s->listener, 16, on_conn));
    struct sockaddr_in bound;
    int len = sizeof(bound);
    FWT_ASSERT_OK(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len));
    s->port = ntohs(bound.sin_port);
}

static void on_attempt(void *arg, int status)
{
    attempt_t *a = arg;
    a->req = NULL;
    a->calls++;
    a->status = status;
}

static void attempt_start(uv_loop_t *loop, attempt_t *a, const char *addr)
{
    memset(a, 0, sizeof(*a));
    FWT_ASSERT_OK(uv_tcp_init(loop, &a->tcp));
    FWT_ASSERT_OK(fw_connect_start(&a->tcp, addr, on_attempt, a, &a->req));
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *done, or fails the test after 10 s. */
static void run_until_set(uv_loop_t *loop, const int *done, const char *what)
{
    int late = 0;
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    deadline.data = &late;
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    while (!*done && !late)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!*done)
        FWT_FAIL("no %s within 10 s", what);
}

static void attempt_wait(uv_loop_t *loop, attempt_t *a)
{
    run_until_set(loop, &a->calls, "answer");
    FWT_ASSERT_INT_EQ(a->calls, 1);
}

/* Closes everything and runs the loop until nothing, lookups included, is left. */
static void loop_finish(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    FWT_ASSERT_OK(uv_loop_close(loop));
}

FWT_TEST(an_address_and_a_name_connect_and_a_refusal_is_reported)
{
    uv_loop_t loop;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    server_t s;
    server_start(&loop, &s);
    char addr[64];
    attempt_t a[3];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
    attempt_start(&loop, &a[0], addr);
    attempt_wait(&loop, &a[0]);
    FWT_ASSERT_INT_EQ(a[0].status, 0);
    uv_close((uv_handle_t *)&a[0].tcp, NULL);

    snprintf(addr, sizeof(addr), "LOCALHOST:%d", s.port);
    attempt_start(&loop, &a[1], addr);
    attempt_wait(&loop, &a[1]);
    FWT_ASSERT_INT_EQ(a[1].status, 0);
    uv_close((uv_handle_t *)&a[1].tcp, NULL);
    run_until_set(&loop, &s.two, "two connections accepted");

    /* A port bound but not listening (held, so nothing else takes it): refused, and said so. */
    int held = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    FWT_ASSERT_OK(bind(held, (struct sockaddr *)&any, sizeof(any)));
    socklen_t len = sizeof(any);
    FWT_ASSERT_OK(getsockname(held, (struct sockaddr *)&any, &len));
    snprintf(addr, sizeof(addr), "LOCALHOST:%d", ntohs(any.sin_port));
    attempt_start(&loop, &a[2], addr);
    attempt_wait(&loop, &a[2]);
    FWT_ASSERT_INT_EQ(a[2].status, UV_ECONNREFUSED);
    close(held);
    uv_close((uv_handle_t *)&a[2].tcp, NULL);
    uv_close((uv_handle_t *)&s.listener, NULL);
    loop_finish(&loop);
}

FWT_TEST(what_is_no_address_is_refused_at_once)
{
    uv_loop_t loop;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    uv_tcp_t tcp;
    FWT_ASSERT_OK(uv_tcp_init(&loop, &tcp));
    fw_connect_t *req = NULL;
    attempt_t a = {0};
    FWT_ASSERT_INT_EQ(fw_connect_start(&tcp, "writer 1:7410", on_attempt, &a, &req), UV_EINVAL);
    FWT_ASSERT_INT_EQ(fw_connect_start(&tcp, "127.0.0.1", on_attempt, &a, &req), UV_EINVAL);
    FWT_ASSERT(req == NULL);
    uv_close((uv_handle_t *)&tcp, NULL);
    loop_finish(&loop);
    FWT_ASSERT_INT_EQ(a.calls, 0);
}

/*
 * An attempt given up while its name is being looked up, or while it
 * connects, never calls back and leaves nothing behind (LeakSanitizer
 * checks the second half under `make asan`).
 */
FWT_TEST(an_abandoned_attempt_never_calls_back)
{
    uv_loop_t loop;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    server_t s;
    server_start(&loop, &s);
    char name[64], number[64];
    snprintf(name, sizeof(name), "LOCALHOST:%d", s.port);
    snprintf(number, sizeof(number), "127.0.0.1:%d", s.port);
    attempt_t a[8];
    for (int i = 0; i < 8; i++) {
        attempt_start(&loop, &a[i], i % 2 ? name : number);
        fw_connect_abandon(a[i].req);
        uv_close((uv_handle_t *)&a[i].tcp, NULL);
    }
    uv_close((uv_handle_t *)&s.listener, NULL);
    loop_finish(&loop);
    for (int i = 0; i < 8; i++)
        FWT_ASSERT_INT_EQ(a[i].calls, 0);
}
