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

/* A host name as DNS and /etc/hosts spell them: letters, digits, '-', '_' and dots. */
static int is_host_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > FW_HOST_MAX - 1 || h[0] == '.' || h[0] == '-')
        return 0;
    int letter = 0;
    for (const char *c = h; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '-' || *c == '_')
            letter = 1;
        else if (!(*c >= '0' && *c <= '9') && *c != '.')
            return 0;
    }
    /* All digits and dots is an IPv4 address or nothing: never a name to look up. */
    return letter;
}

int fw_addr_split(const char *text, char *host, size_t cap, unsigned *port)
{
    const char *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - text - 1);
        if (hlen >= cap)
            return -EINVAL;
        memcpy(host, text + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || colon == text || (size_t)(colon - text) >= cap)
            return -EINVAL;
        hlen = (size_t)(colon - text);
        memcpy(host, text, hlen);
    }
    host[hlen] = '\0';
    if (parse_port(colon + 1, port) < 0)
        return -EINVAL;
    unsigned char bin[sizeof(struct in6_addr)];
    if (text[0] == '[')
        return inet_pton(AF_INET6, host, bin) == 1 ? 0 : -EINVAL;
    if (inet_pton(AF_INET, host, bin) == 1)
        return 0;
    /* "0x0", "127.1": getaddrinfo would take these as addresses (0.0.0.0, 127.0.0.1). */
    struct in_addr legacy;
    if (inet_aton(host, &legacy) != 0)
        return -EINVAL;
    return is_host_name(host) ? 1 : -EINVAL;
}

int fw_addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[FW_HOST_MAX];
    unsigned port;
    memset(out, 0, sizeof(*out));
    int kind = fw_addr_split(text, host, sizeof(host), &port);
    if (kind < 0)
        return -EINVAL;
    if (kind == 1) {
        /* The one name every host spells the same way; binding takes no other. */
        if (strcmp(host, "localhost") != 0)
            return -EINVAL;
        strcpy(host, "127.0.0.1");
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (text[0] == '[') {
        inet_pton(AF_INET6, host, &v6->sin6_addr);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    } else {
        inet_pton(AF_INET, host, &v4->sin_addr);
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    }
    return 0;
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
    char host[FW_HOST_MAX];
    unsigned port;
    int kind = fw_addr_split(text, host, sizeof(host), &port);
    if (kind < 0) {
        snprintf(why, cap, "want HOST:PORT (a host name, an IPv4 address or [IPv6]) with a port");
        return -EINVAL;
    }
    if (strlen(text) >= FW_ADDR_MAX) {
        snprintf(why, cap, "longer than the %d characters clients keep", FW_ADDR_MAX - 1);
        return -EINVAL;
    }
    if (port == 0) {
        snprintf(why, cap, "a published address needs its port (not 0)");
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    if (kind == 0 && fw_addr_parse(text, &ss) == 0 && fw_addr_is_wildcard((struct sockaddr *)&ss)) {
        snprintf(why, cap, "a wildcard address names no host: give this host's own name or IP");
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
