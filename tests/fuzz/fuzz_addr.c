/*
 * libFuzzer target: addresses as flags, config files and ZooKeeper nodes
 * spell them (common/net.c). Writers' and ptails' published addresses come
 * from ZooKeeper, so any bytes may arrive. On arbitrary text: fw_addr_split
 * answers 0, 1 or -EINVAL and never writes past its buffer; what it takes
 * has a port up to 65535 and a host of the allowed characters that is part
 * of the text; an IP literal it takes, fw_addr_parse takes too, and formats
 * back to the same address; a name it takes is no number getaddrinfo would
 * read as an address; fw_addr_check_published agrees with both.
 */
#include "fuzz.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int allowed_in_name(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 600)
        return 0;
    char text[601];
    memcpy(text, data, size);
    text[size] = '\0';
    if (strlen(text) != size)
        return 0; /* addresses are C strings: an inner NUL ends them anyway */

    /* A buffer with a guard after it: split must stay inside cap. */
    char buf[FW_HOST_MAX + 8];
    memset(buf, 0x5a, sizeof(buf));
    unsigned port = 99999;
    int kind = fw_addr_split(text, buf, FW_HOST_MAX, &port);
    for (size_t i = FW_HOST_MAX; i < sizeof(buf); i++)
        if (buf[i] != 0x5a)
            abort();
    if (kind != 0 && kind != 1 && kind != -EINVAL)
        abort();

    struct sockaddr_storage ss;
    int parsed = fw_addr_parse(text, &ss);
    char why[200];
    int published = fw_addr_check_published(text, why, sizeof(why));
    if (kind < 0) {
        if (parsed == 0 || published == 0)
            abort(); /* nothing split refuses is taken elsewhere */
        return 0;
    }
    if (port > 65535 || strlen(buf) >= FW_HOST_MAX || strstr(text, buf) == NULL)
        abort();
    if (kind == 1) {
        for (const char *c = buf; *c; c++)
            if (!allowed_in_name(*c))
                abort();
        struct in_addr legacy;
        if (inet_aton(buf, &legacy) != 0)
            abort(); /* a "name" the resolver would read as an address */
        if ((parsed == 0) != (strcmp(buf, "localhost") == 0))
            abort(); /* listening takes no name but localhost */
    } else {
        if (parsed != 0)
            abort();
        char out[80], again[80];
        fw_addr_format((struct sockaddr *)&ss, out, sizeof(out));
        struct sockaddr_storage ss2;
        if (fw_addr_parse(out, &ss2) != 0)
            abort();
        fw_addr_format((struct sockaddr *)&ss2, again, sizeof(again));
        if (strcmp(out, again) != 0)
            abort();
    }
    /* Published: taken unless port 0, a wildcard IP or too long for clients to keep. */
    int wildcard = kind == 0 && fw_addr_is_wildcard((struct sockaddr *)&ss);
    int want = port != 0 && !wildcard && size < FW_ADDR_MAX;
    if ((published == 0) != want)
        abort();
    return 0;
}
