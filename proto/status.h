/*
 * The wire's status codes (fwpb.Status in proto/common.proto) and freeway's
 * error codes (common/error.h), one to one where a code crosses the wire.
 */
#ifndef FW_STATUS_H
#define FW_STATUS_H

#include "proto/common.pb-c.h"

/* The status a peer is told for code (0 -> STATUS_OK). */
Fwpb__Status fw_status_from_error(int code);
/* The error code a status stands for (STATUS_OK -> 0; unknown values -> FW_EPROTOCOL). */
int fw_status_to_error(int status);

/* The status's name as in proto/common.proto, without its prefix ("RETRY_LATER"). */
const char *fw_status_name(int status);

#endif
