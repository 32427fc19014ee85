/* Network addresses as flags and config files spell them. */
#ifndef FW_NET_H
#define FW_NET_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * Parses "HOST:PORT" (IPv4 dotted quad, "localhost", or "[IPv6]:PORT") into
 * *out. No DNS lookups: daemons bind and connect by address. Port 0 means
 * "any free port". 0 or -EINVAL.
 */
int fw_addr_parse(const char *text, struct sockaddr_storage *out);

/* Formats an address as "HOST:PORT" (IPv6 in brackets). */
void fw_addr_format(const struct sockaddr *sa, char *out, size_t cap);

#endif
