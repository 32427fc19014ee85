/* Network addresses as flags and config files spell them. */
#ifndef FW_NET_H
#define FW_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest host name, with its terminating NUL. */
#define FW_HOST_MAX 254

/* The longest "HOST:PORT" a client keeps for a writer or a ptail, with its NUL. */
#define FW_ADDR_MAX 128

/*
 * Splits "HOST:PORT" or "[IPv6]:PORT" into host (no brackets) and port,
 * checking the spelling only. 0 if the host is an IP address, 1 if it is a
 * name (to be resolved when connecting: see connect.h), -EINVAL if neither.
 */
int fw_addr_split(const char *text, char *host, size_t cap, unsigned *port);

/*
 * Parses "HOST:PORT" (IPv4 dotted quad, "localhost", or "[IPv6]:PORT") into
 * *out, as a listening address. No DNS lookups: a daemon binds by address.
 * Port 0 means "any free port". 0 or -EINVAL.
 */
int fw_addr_parse(const char *text, struct sockaddr_storage *out);

/* Formats an address as "HOST:PORT" (IPv6 in brackets). */
void fw_addr_format(const struct sockaddr *sa, char *out, size_t cap);

/* 1 if sa is 0.0.0.0 or [::]: bound to every interface, an address no other host can use. */
int fw_addr_is_wildcard(const struct sockaddr *sa);

/*
 * Checks an address a daemon publishes for others to connect to: HOST:PORT
 * with a host name or an IP address (not a wildcard) and a port (not 0),
 * shorter than FW_ADDR_MAX.
 * 0, or -EINVAL with why in why[0..cap).
 */
int fw_addr_check_published(const char *text, char *why, size_t cap);

/*
 * The address a daemon publishes: advertise if given, else the bound one,
 * into out. 1 if that is a wildcard (only this host can use it: worth a
 * warning), else 0.
 */
int fw_addr_published(const char *advertise, const char *bound, char *out, size_t cap);

#endif
