/*
 * cp_curl: libcurl's multi interface driven by a libuv loop (the
 * multi_socket API: one uv_poll_t per socket libcurl asks about, one
 * uv_timer_t for libcurl's timeouts). It runs transfers and says when each
 * ended; what the requests are and what their answers mean is the caller's
 * business (dest_webhdfs.c).
 *
 * Rules it keeps (engineering-notes §1.3, §5.2): a poll handle is stopped
 * before libcurl closes its socket (CURL_POLL_REMOVE comes first) and a new
 * one is made when a socket number is reused; curl_multi_* is never called
 * from inside a libcurl callback; finished transfers are collected with
 * curl_multi_info_read after every curl_multi_socket_action, and removed
 * from the multi handle only there.
 *
 * Everything runs on the loop's thread; cp_curl_t is not thread-safe.
 */
#ifndef CP_CURL_UV_H
#define CP_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct cp_curl_s cp_curl_t;

/*
 * A transfer ended: result is libcurl's code for it (CURLE_OK also for an
 * HTTP error status: read CURLINFO_RESPONSE_CODE), or CURLE_ABORTED_BY_CALLBACK
 * if cp_curl_close cut it short. The easy handle has left the multi handle
 * and belongs to the caller again (curl_easy_cleanup it, or reuse it).
 */
typedef void (*cp_curl_done_cb)(CURL *easy, CURLcode result, void *arg);
typedef void (*cp_curl_close_cb)(cp_curl_t *c);

struct cp_curl_xfer_s;
struct cp_curl_sock_s;

/* Embedded in its owner, who frees it after the close callback ran. */
struct cp_curl_s {
    /** For the owner; cp_curl never touches it. */
    void *data;
    /* The rest is private. */
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    /* Transfers added and not yet ended. */
    struct cp_curl_xfer_s *xfers;
    /* Sockets being polled (a closing poll handle has left the list). */
    struct cp_curl_sock_s *socks;
    /* Open uv handles: the timer and each poll handle until its close callback. */
    int handles;
    /* Inside the info-read drain: a close there finishes after it. */
    int draining;
    int closing;
    cp_curl_close_cb close_cb;
};

/*
 * Sets up c on loop. The first call in a process also runs
 * curl_global_init(CURL_GLOBAL_DEFAULT) (once, under pthread_once; it is
 * never undone: libcurl's global state lives as long as the process, and
 * curl_global_cleanup is not safe while anything else may use libcurl).
 * 0, or -ENOMEM / -EIO; on failure nothing is left to close.
 */
int cp_curl_init(cp_curl_t *c, uv_loop_t *loop);

/*
 * Starts the transfer easy (set up by the caller, who must not set
 * CURLOPT_PRIVATE: cp_curl uses it). 0, and cb(easy, result, arg) runs
 * exactly once later, from the loop (never from inside this call); or a
 * negative errno (-ESHUTDOWN once closing) and cb never runs.
 */
int cp_curl_add(cp_curl_t *c, CURL *easy, cp_curl_done_cb cb, void *arg);

/*
 * Ends every transfer still running (each callback gets
 * CURLE_ABORTED_BY_CALLBACK, before this returns), cleans up the multi
 * handle and closes the uv handles; cb(c) runs once the last one is closed,
 * from the loop. May be called from a done callback, not from inside a
 * libcurl callback (a read or write function). Only the first call counts.
 */
void cp_curl_close(cp_curl_t *c, cp_curl_close_cb cb);

#endif
