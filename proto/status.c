/* Status <-> error code (see status.h). */
#include "status.h"

#include "error.h"

#include <errno.h>
#include <string.h>

Fwpb__Status fw_status_from_error(int code)
{
    switch (code) {
    case 0:
        return FWPB__STATUS__STATUS_OK;
    case FW_ERETRY_LATER:
    case -ENOSPC:
    case -EDQUOT:
    case -ENOMEM:
    case -EAGAIN:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
        return FWPB__STATUS__STATUS_RETRY_LATER;
    case FW_ENOT_OWNER:
        return FWPB__STATUS__STATUS_NOT_OWNER;
    case FW_EUNKNOWN_CATEGORY:
    case FW_EBAD_CATEGORY:
        return FWPB__STATUS__STATUS_UNKNOWN_CATEGORY;
    case FW_EBUCKET_RANGE:
        return FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE;
    case FW_ERECORD_TOO_LARGE:
        return FWPB__STATUS__STATUS_RECORD_TOO_LARGE;
    case FW_EBLOCK_HEADER:
    case FW_EBLOCK_CRC:
    case FW_EBLOCK_CORRUPT:
    case FW_EBLOCK_TOO_LARGE:
        return FWPB__STATUS__STATUS_BAD_BLOCK;
    case FW_ESEQUENCE_GAP:
        return FWPB__STATUS__STATUS_SEQUENCE_GAP;
    case FW_EFRAME_BAD:
    case FW_EFRAME_TOO_LARGE:
    case FW_EPROTOCOL:
        return FWPB__STATUS__STATUS_BAD_REQUEST;
    case FW_ETOKEN_BAD:
    case FW_ETOKEN_VERSION:
    case FW_ETOKEN_CRC:
        return FWPB__STATUS__STATUS_BAD_TOKEN;
    case FW_ESHUTTING_DOWN:
        return FWPB__STATUS__STATUS_SHUTTING_DOWN;
    default:
        return FWPB__STATUS__STATUS_INTERNAL;
    }
}

int fw_status_to_error(int status)
{
    switch (status) {
    case FWPB__STATUS__STATUS_OK:
        return 0;
    case FWPB__STATUS__STATUS_RETRY_LATER:
        return FW_ERETRY_LATER;
    case FWPB__STATUS__STATUS_NOT_OWNER:
        return FW_ENOT_OWNER;
    case FWPB__STATUS__STATUS_UNKNOWN_CATEGORY:
        return FW_EUNKNOWN_CATEGORY;
    case FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE:
        return FW_EBUCKET_RANGE;
    case FWPB__STATUS__STATUS_RECORD_TOO_LARGE:
        return FW_ERECORD_TOO_LARGE;
    case FWPB__STATUS__STATUS_BAD_BLOCK:
        return FW_EBLOCK_CORRUPT;
    case FWPB__STATUS__STATUS_SEQUENCE_GAP:
        return FW_ESEQUENCE_GAP;
    case FWPB__STATUS__STATUS_BAD_REQUEST:
        return FW_EPROTOCOL;
    case FWPB__STATUS__STATUS_BAD_TOKEN:
        return FW_ETOKEN_BAD;
    case FWPB__STATUS__STATUS_SHUTTING_DOWN:
        return FW_ESHUTTING_DOWN;
    case FWPB__STATUS__STATUS_INTERNAL:
        return -EIO;
    default:
        return FW_EPROTOCOL;
    }
}

const char *fw_status_name(int status)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&fwpb__status__descriptor, status);
    if (v == NULL)
        return "UNKNOWN_STATUS";
    /* "STATUS_RETRY_LATER" -> "RETRY_LATER" */
    return strncmp(v->name, "STATUS_", 7) == 0 ? v->name + 7 : v->name;
}
