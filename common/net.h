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

/* 1 if sa is 0.0.0.0 or [::]: bound to every interface, an address no other host can use. */
int fw_addr_is_wildcard(const struct sockaddr *sa);

/*
 * Checks an address a daemon publishes for others to connect to: it must
 * parse as fw_addr_parse takes it (clients resolve no host names), with a
 * port, and not be a wildcard. 0, or -EINVAL with why in why[0..cap).
 */
int fw_addr_check_published(const char *text, char *why, size_t cap);

/*
 * The address a daemon publishes: advertise if given, else the bound one,
 * into out. 1 if that is a wildcard (only this host can use it: worth a
 * warning), else 0.
 */
int fw_addr_published(const char *advertise, const char *bound, char *out, size_t cap);

#endif
