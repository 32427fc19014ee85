/* Address parsing and formatting (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, unsigned *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -EINVAL;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

int fw_addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon == text)
            return -EINVAL;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
    }
    unsigned port;
    if (parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (text[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -EINVAL;
}

int fw_addr_is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

int fw_addr_check_published(const char *text, char *why, size_t cap)
{
    struct sockaddr_storage ss;
    if (fw_addr_parse(text, &ss) < 0) {
        snprintf(why, cap,
                 "want IP:PORT (an IPv4 address, localhost or [IPv6]): producers, consumers and "
                 "writers connect by address and resolve no host names");
        return -EINVAL;
    }
    unsigned port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                            : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (port == 0) {
        snprintf(why, cap, "a published address needs its port (not 0)");
        return -EINVAL;
    }
    if (fw_addr_is_wildcard((struct sockaddr *)&ss)) {
        snprintf(why, cap, "a wildcard address names no host: give this host's own IP");
        return -EINVAL;
    }
    return 0;
}

int fw_addr_published(const char *advertise, const char *bound, char *out, size_t cap)
{
    snprintf(out, cap, "%s", advertise != NULL ? advertise : bound);
    struct sockaddr_storage ss;
    return advertise == NULL && fw_addr_parse(bound, &ss) == 0 &&
           fw_addr_is_wildcard((struct sockaddr *)&ss);
}

void fw_addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        snprintf(out, cap, "?");
    }
}
