/*
 * Connecting a TCP handle to an address as flags, config files and
 * ZooKeeper spell it: "IP:PORT", "[IPv6]:PORT" or "NAME:PORT". A name is
 * looked up at every connect, on a thread of its own that nothing waits for
 * (a lookup stuck on a silent DNS server holds up no close), so a machine
 * replaced under the same name is found again by the next connect.
 */
#ifndef FW_CONNECT_H
#define FW_CONNECT_H

#include <uv.h>

typedef struct fw_connect_s fw_connect_t;

/* status: 0 (tcp is connected) or a negative libuv error (a failed lookup too). */
typedef void (*fw_connect_cb)(void *arg, int status);

/*
 * Starts connecting tcp (initialised, not connected) to addr. Of a name's
 * addresses the first IPv4 one is used, else the first IPv6 one. cb runs once,
 * on the loop, unless fw_connect_abandon ran first; the request is freed when
 * cb returns, so cb forgets it first thing. 0 with *out set, or a negative
 * error (UV_EINVAL: addr is not HOST:PORT), and then cb never runs.
 */
int fw_connect_start(uv_tcp_t *tcp, const char *addr, fw_connect_cb cb, void *arg,
                     fw_connect_t **out);

/*
 * The caller gives the attempt up and closes tcp right after: cb will not
 * run, and the request frees itself (a lookup under way finishes on its
 * thread, unheard).
 */
void fw_connect_abandon(fw_connect_t *c);

#endif
