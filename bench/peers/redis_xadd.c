/* The Redis Streams producer of the peer benchmark (bench/peers/README.md):
 * one connection, XADD of each line of a file, pipelined with a bounded
 * window of commands in flight. It measures; it does not start the server. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peer_input.h"

#define PROG "redis_xadd"

#include <hiredis/hiredis.h>

static void usage(void)
{
    fprintf(stderr, "usage: redis_xadd [--host H] --port P [--stream NAME] [--window N] "
                    "[--count N] FILE\n"
                    "  XADDs each line of FILE (newline stripped) as field r of a stream\n"
                    "  entry, keeping up to N commands in flight (default 1000), and\n"
                    "  prints one JSON line with the figures.\n");
}

/* An XADD reply is the new entry's id, "<ms>-<seq>". */
static int is_stream_id(const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || r->len < 3)
        return 0;
    const char *dash = memchr(r->str, '-', (size_t)r->len);
    if (dash == NULL || dash == r->str || dash == r->str + r->len - 1)
        return 0;
    for (const char *p = r->str; p < r->str + r->len; p++)
        if (p != dash && (*p < '0' || *p > '9'))
            return 0;
    return 1;
}

/* Only the first bad reply is printed: the rest are usually the same. */
static void report_bad_reply(long long n, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING ||
        r->type == REDIS_REPLY_STATUS)
        fprintf(stderr, "redis_xadd: reply %lld is not a stream id: %.*s\n", n, (int)r->len,
                r->str);
    else
        fprintf(stderr, "redis_xadd: reply %lld is not a stream id (reply type %d)\n", n, r->type);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    const char *stream = "bench";
    long long window = 1000;
    long long limit = -1;
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        }
        if (a[0] == '-' && a[1] == '-' && i + 1 >= argc) {
            fprintf(stderr, "redis_xadd: %s wants a value\n", a);
            return 2;
        }
        if (strcmp(a, "--host") == 0)
            host = argv[++i];
        else if (strcmp(a, "--port") == 0)
            port = (int)parse_count(PROG, a, argv[++i]);
        else if (strcmp(a, "--stream") == 0)
            stream = argv[++i];
        else if (strcmp(a, "--window") == 0)
            window = parse_count(PROG, a, argv[++i]);
        else if (strcmp(a, "--count") == 0)
            limit = parse_count(PROG, a, argv[++i]);
        else if (a[0] == '-' || path != NULL) {
            usage();
            return 2;
        } else
            path = a;
    }
    if (path == NULL || port == 0) {
        usage();
        return 2;
    }

    struct input in = {0};
    int rc = input_open(&in, path);
    if (rc < 0) {
        fprintf(stderr, "redis_xadd: %s: %s\n", path, strerror(-rc));
        return 1;
    }

    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "redis_xadd: connect %s:%d: %s\n", host, port,
                c ? c->errstr : "out of memory");
        return 1;
    }
    /* A server that stops answering ends the run instead of hanging it. */
    struct timeval rtv = {60, 0};
    redisSetTimeout(c, rtv);

    const char *argv_x[5] = {"XADD", stream, "*", "r", NULL};
    size_t lens[5] = {4, strlen(stream), 1, 1, 0};
    long long sent = 0, replies = 0, errors = 0, bytes = 0;
    int more = 1;
    double cpu0 = cpu_s();
    double t0 = now_s();
    while (more || replies < sent) {
        /* Fill the window, then take one reply: redisGetReply hands out
         * replies already read and only writes the queued commands and
         * blocks when it has none, so about a window stays in flight. */
        while (more && sent - replies < window) {
            if ((limit >= 0 && sent == limit) || !input_next(&in, &argv_x[4], &lens[4])) {
                more = 0;
                break;
            }
            if (redisAppendCommandArgv(c, 5, argv_x, lens) != REDIS_OK) {
                fprintf(stderr, "redis_xadd: append: %s\n", c->errstr);
                return 1;
            }
            sent++;
            bytes += (long long)lens[4];
        }
        if (replies == sent)
            break;
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
            fprintf(stderr, "redis_xadd: after %lld of %lld replies: %s\n", replies, sent,
                    c->errstr);
            return 1;
        }
        if (!is_stream_id(r)) {
            if (errors == 0)
                report_bad_reply(replies, r);
            errors++;
        }
        freeReplyObject(r);
        replies++;
    }
    double secs = now_s() - t0;
    double cpu = cpu_s() - cpu0;
    redisFree(c);

    if (limit >= 0 && sent < limit) {
        fprintf(stderr, "redis_xadd: %s has only %lld lines, %lld wanted\n", path, sent, limit);
        return 1;
    }
    if (secs <= 0)
        secs = 1e-9;
    printf("{\"tool\": \"redis_xadd\", \"client\": \"hiredis %d.%d.%d\", \"window\": %lld, "
           "\"records\": %lld, \"payload_bytes\": %lld, \"seconds\": %.6f, "
           "\"records_per_s\": %.1f, \"mb_per_s\": %.3f, \"client_cpu_s\": %.3f, "
           "\"errors\": %lld}\n",
           HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, window, sent, bytes, secs,
           (double)sent / secs, (double)bytes / MB / secs, cpu, errors);
    if (errors > 0) {
        fprintf(stderr, "redis_xadd: %lld of %lld replies were not stream ids\n", errors, sent);
        return 1;
    }
    return 0;
}
