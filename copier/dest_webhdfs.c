/* webhdfs:// destinations: not built yet (a stand-in until the backend lands). */
#include "dest.h"

#include <errno.h>
#include <stdio.h>

int cp_dest_webhdfs_open(uv_loop_t *loop, const char *url, const char *host, int port,
                         const char *path, const cp_dest_options_t *opts, cp_dest_t **out,
                         char *err, size_t errlen)
{
    (void)loop;
    (void)url;
    (void)host;
    (void)port;
    (void)path;
    (void)opts;
    *out = NULL;
    snprintf(err, errlen, "webhdfs destinations are not supported yet");
    return -ENOTSUP;
}
