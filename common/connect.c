/* Connecting by address or host name (see connect.h). */
#include "connect.h"

#include "net.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fw_connect_s {
    uv_getaddrinfo_t lookup;
    uv_connect_t req;
    uv_tcp_t *tcp;
    fw_connect_cb cb;
    void *arg;
    int looking_up;
    int abandoned;
};

static void finish(fw_connect_t *c, int status)
{
    if (!c->abandoned)
        c->cb(c->arg, status);
    free(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    /* An abandoned attempt ends here too, with UV_ECANCELED, when tcp is closed. */
    finish(req->data, status);
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

static void on_looked_up(uv_getaddrinfo_t *lookup, int status, struct addrinfo *res)
{
    fw_connect_t *c = lookup->data;
    c->looking_up = 0;
    if (c->abandoned) {
        uv_freeaddrinfo(res);
        free(c);
        return;
    }
    if (status < 0) {
        finish(c, status);
        return;
    }
    const struct addrinfo *a = pick(res);
    int rc = a != NULL ? uv_tcp_connect(&c->req, c->tcp, a->ai_addr, on_connected) : UV_EAI_NONAME;
    uv_freeaddrinfo(res);
    if (rc < 0)
        finish(c, rc);
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
    c->lookup.data = c;
    int rc;
    if (kind == 0) {
        struct sockaddr_storage ss;
        rc = fw_addr_parse(addr, &ss);
        if (rc == 0)
            rc = uv_tcp_connect(&c->req, tcp, (const struct sockaddr *)&ss, on_connected);
    } else {
        char service[8];
        snprintf(service, sizeof(service), "%u", port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        c->looking_up = 1;
        rc = uv_getaddrinfo(tcp->loop, &c->lookup, on_looked_up, host, service, &hints);
    }
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fw_connect_abandon(fw_connect_t *c)
{
    c->abandoned = 1;
    /* A lookup not yet begun ends at once (UV_EAI_CANCELED); a running one finishes unseen. */
    if (c->looking_up)
        uv_cancel((uv_req_t *)&c->lookup);
}
