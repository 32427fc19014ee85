/*
 * scribe_stub: a stand-in Scribe server on calligraphus's Thrift codec
 * (calligraphus/scribe_thrift.h), for checking real Scribe clients against
 * the codec before calligraphus serves the interface. Loopback only, one
 * thread, poll(). It stores nothing: each Log entry is counted and, with
 * --out, written as "category<TAB>message<LF>".
 *
 *   scribe_stub [--port N] [--out FILE] [--try-later-every N] [--max-frame B]
 *
 * It prints "listening 127.0.0.1:PORT" once bound (--port 0, the default,
 * picks a free port). fb303 calls are answered (getStatus ALIVE, counters
 * "received good" and "try later"); shutdown makes it exit 0 once every
 * connection has gone; SIGTERM at once. A malformed frame is logged on
 * stderr and closes its own connection only.
 */
#include "buf.h"
#include "error.h"
#include "scribe_thrift.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64

typedef struct conn_s {
    int fd;
    fw_buf_t in, out;
    size_t out_off;
} conn_t;

static conn_t conns[MAX_CONNS];
static volatile sig_atomic_t stop;
static FILE *out_file;
static long try_later_every;
static long log_calls;
static long long received_good, try_later;
static int shutting_down;
static int64_t started;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_close(conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    fw_buf_free(&c->in);
    fw_buf_free(&c->out);
    c->out_off = 0;
}

static int answer(conn_t *c, const cal_scribe_call_t *call)
{
    int rc = 0;
    switch (call->method) {
    case CAL_SCRIBE_LOG: {
        log_calls++;
        if (try_later_every > 0 && log_calls % try_later_every == 0) {
            try_later += call->n_entries;
            return cal_scribe_call_wants_reply(call)
                       ? cal_scribe_reply_log(&c->out, call, CAL_SCRIBE_TRY_LATER)
                       : 0;
        }
        cal_scribe_entry_iter_t it;
        cal_scribe_entry_t e;
        cal_scribe_entries_begin(call, &it);
        while ((rc = cal_scribe_entries_next(&it, &e)) == 1) {
            if (out_file != NULL)
                fprintf(out_file, "%.*s\t%.*s\n", (int)e.category.len,
                        e.category.p ? e.category.p : "", (int)e.message.len,
                        e.message.p ? e.message.p : "");
            received_good++;
        }
        if (rc < 0)
            return rc;
        if (!cal_scribe_call_wants_reply(call))
            return 0;
        return cal_scribe_reply_log(&c->out, call, CAL_SCRIBE_OK);
    }
    case CAL_SCRIBE_GET_STATUS:
        return cal_scribe_reply_status(&c->out, call,
                                       shutting_down ? CAL_FB_STOPPING : CAL_FB_ALIVE);
    case CAL_SCRIBE_GET_STATUS_DETAILS:
        return cal_scribe_reply_string(&c->out, call, "", 0);
    case CAL_SCRIBE_GET_NAME:
        return cal_scribe_reply_string(&c->out, call, "scribe_stub", 11);
    case CAL_SCRIBE_GET_VERSION:
        return cal_scribe_reply_string(&c->out, call, "freeway-test", 12);
    case CAL_SCRIBE_ALIVE_SINCE:
        return cal_scribe_reply_i64(&c->out, call, started);
    case CAL_SCRIBE_GET_COUNTERS: {
        cal_scribe_counter_t cs[] = {{"received good", received_good}, {"try later", try_later}};
        return cal_scribe_reply_counters(&c->out, call, cs, 2);
    }
    case CAL_SCRIBE_GET_COUNTER: {
        int64_t v = 0;
        if (call->key.len == 13 && memcmp(call->key.p, "received good", 13) == 0)
            v = received_good;
        return cal_scribe_reply_i64(&c->out, call, v);
    }
    case CAL_SCRIBE_SHUTDOWN:
        shutting_down = 1;
        return 0;
    case CAL_SCRIBE_REINITIALIZE:
        return 0;
    default:
        if (!cal_scribe_call_wants_reply(call))
            return 0;
        return cal_scribe_reply_unknown_method(&c->out, call);
    }
}

/* Decodes and answers every whole frame in c->in; a negative code closes c. */
static int process(conn_t *c, const cal_scribe_limits_t *lim)
{
    size_t off = 0;
    int rc = 0;
    while (off < c->in.len) {
        cal_scribe_call_t call;
        size_t need;
        ssize_t n = cal_scribe_call_decode(c->in.data + off, c->in.len - off, lim, &call, &need);
        if (n == 0)
            break;
        if (n < 0) {
            fprintf(stderr, "scribe_stub: fd %d: %s (%s), frame of %zu bytes; closing it\n", c->fd,
                    fw_strerror((int)n), fw_err_name((int)n), need);
            rc = (int)n;
            break;
        }
        rc = answer(c, &call);
        if (rc < 0) {
            fprintf(stderr, "scribe_stub: answer: %s\n", fw_strerror(rc));
            break;
        }
        off += (size_t)n;
    }
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: scribe_stub [--port N] [--out FILE] [--try-later-every N] "
                    "[--max-frame BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0;
    cal_scribe_limits_t lim = {0};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0) {
            out_file = fopen(argv[++i], "w");
            if (out_file == NULL) {
                perror(argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--try-later-every") == 0)
            try_later_every = atol(argv[++i]);
        else if (strcmp(argv[i], "--max-frame") == 0)
            lim.max_frame = (uint32_t)strtoul(argv[++i], NULL, 10);
        else
            usage();
    }
    started = (int64_t)time(NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t salen = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
        perror("scribe_stub: listen");
        return 1;
    }
    printf("listening 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].fd = -1;

    while (!stop) {
        struct pollfd pfd[MAX_CONNS + 1];
        int idx[MAX_CONNS + 1], np = 0, open_conns = 0;
        pfd[np] = (struct pollfd){.fd = lfd, .events = POLLIN};
        idx[np++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i].fd < 0)
                continue;
            open_conns++;
            short ev = POLLIN;
            if (conns[i].out.len > conns[i].out_off)
                ev |= POLLOUT;
            pfd[np] = (struct pollfd){.fd = conns[i].fd, .events = ev};
            idx[np++] = i;
        }
        if (shutting_down && open_conns == 0)
            break;
        if (poll(pfd, (nfds_t)np, 200) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            return 1;
        }
        for (int k = 0; k < np; k++) {
            if (pfd[k].revents == 0)
                continue;
            if (idx[k] < 0) {
                int fd = accept(lfd, NULL, NULL);
                int slot = -1;
                for (int i = 0; fd >= 0 && i < MAX_CONNS && slot < 0; i++)
                    slot = conns[i].fd < 0 ? i : -1;
                if (fd >= 0 && slot < 0)
                    close(fd);
                else if (fd >= 0)
                    conns[slot] = (conn_t){.fd = fd, .in = FW_BUF_INIT, .out = FW_BUF_INIT};
                continue;
            }
            conn_t *c = &conns[idx[k]];
            if (pfd[k].revents & POLLOUT) {
                ssize_t w = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
                if (w > 0)
                    c->out_off += (size_t)w;
                if (c->out_off == c->out.len) {
                    c->out.len = 0;
                    c->out_off = 0;
                }
            }
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (fw_buf_reserve(&c->in, 65536) < 0)
                    return 1;
                ssize_t r = read(c->fd, c->in.data + c->in.len, 65536);
                if (r <= 0) {
                    conn_close(c);
                    continue;
                }
                c->in.len += (size_t)r;
                if (process(c, &lim) < 0) {
                    /* Whatever was answered before the bad frame still goes out. */
                    if (c->out.len > c->out_off) {
                        ssize_t w = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
                        (void)w;
                    }
                    conn_close(c);
                }
            }
        }
    }
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].fd >= 0)
            conn_close(&conns[i]);
    }
    if (out_file != NULL)
        fclose(out_file);
    fprintf(stderr, "scribe_stub: %lld entries received good, %lld answered try later\n",
            received_good, try_later);
    return 0;
}
