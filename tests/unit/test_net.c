/*
 * Addresses as flags spell them: splitting HOST:PORT, parsing listening
 * addresses without DNS, and the checks on an address a daemon publishes for
 * others to connect to.
 */
#include "fwtest.h"

#include "net.h"

#include <errno.h>
#include <string.h>

FWT_TEST(split_tells_addresses_from_names_and_refuses_the_rest)
{
    char host[FW_HOST_MAX];
    unsigned port;
    FWT_ASSERT_INT_EQ(fw_addr_split("10.1.2.3:7410", host, sizeof(host), &port), 0);
    FWT_ASSERT_STR_EQ(host, "10.1.2.3");
    FWT_ASSERT_UINT_EQ(port, 7410);
    FWT_ASSERT_INT_EQ(fw_addr_split("[fd00::1]:7420", host, sizeof(host), &port), 0);
    FWT_ASSERT_STR_EQ(host, "fd00::1");
    FWT_ASSERT_INT_EQ(fw_addr_split("writer-1.prod_a.example.com:7410", host, sizeof(host), &port),
                      1);
    FWT_ASSERT_STR_EQ(host, "writer-1.prod_a.example.com");
    FWT_ASSERT_INT_EQ(fw_addr_split("localhost:0", host, sizeof(host), &port), 1);
    FWT_ASSERT_UINT_EQ(port, 0);
    /* Digits and dots that are no IPv4 address are not looked up as a name either. */
    FWT_ASSERT_INT_EQ(fw_addr_split("10.1.2:7410", host, sizeof(host), &port), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_split("10.1.2.256:7410", host, sizeof(host), &port), -EINVAL);
    /* Nor numbers the resolver would read as an address (0.0.0.0, 127.0.0.1). */
    FWT_ASSERT_INT_EQ(fw_addr_split("0x0:7410", host, sizeof(host), &port), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_split("0x7f.1:7410", host, sizeof(host), &port), -EINVAL);
    const char *bad[] = {"writer1",       "writer1:",      ":7410",         "writer 1:7410",
                         "writer1:74x0",  "writer1:65536", "[fd00::1:7410", "[writer1]:7410",
                         "-writer1:7410", ".writer1:7410", "fd00::1:7410",  "wr/iter:7410",
                         "[fd00::1]7410", "writer1:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (fw_addr_split(bad[i], host, sizeof(host), &port) != -EINVAL)
            FWT_FAIL("%s was taken", bad[i]);
    /* A name longer than DNS allows, or than the caller's buffer. */
    char longname[300];
    memset(longname, 'a', 260);
    strcpy(longname + 260, ":1");
    FWT_ASSERT_INT_EQ(fw_addr_split(longname, host, sizeof(host), &port), -EINVAL);
    char small[8];
    FWT_ASSERT_INT_EQ(fw_addr_split("writer1.example.com:1", small, sizeof(small), &port), -EINVAL);
}

FWT_TEST(parse_takes_addresses_and_refuses_names)
{
    struct sockaddr_storage ss;
    char out[64];
    FWT_ASSERT_OK(fw_addr_parse("10.1.2.3:7410", &ss));
    fw_addr_format((struct sockaddr *)&ss, out, sizeof(out));
    FWT_ASSERT_STR_EQ(out, "10.1.2.3:7410");
    FWT_ASSERT_OK(fw_addr_parse("[::1]:7420", &ss));
    fw_addr_format((struct sockaddr *)&ss, out, sizeof(out));
    FWT_ASSERT_STR_EQ(out, "[::1]:7420");
    FWT_ASSERT_OK(fw_addr_parse("localhost:1", &ss));
    FWT_ASSERT_INT_EQ(fw_addr_parse("writer1.example.com:7410", &ss), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_parse("10.1.2.3", &ss), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_parse("10.1.2.3:65536", &ss), -EINVAL);
}

FWT_TEST(a_published_address_must_be_one_others_can_use)
{
    char why[200];
    FWT_ASSERT_OK(fw_addr_check_published("10.0.0.11:7410", why, sizeof(why)));
    FWT_ASSERT_OK(fw_addr_check_published("[fd00::1]:7410", why, sizeof(why)));
    FWT_ASSERT_OK(fw_addr_check_published("writer1.example.com:7410", why, sizeof(why)));
    FWT_ASSERT_INT_EQ(fw_addr_check_published("writer 1:7410", why, sizeof(why)), -EINVAL);
    FWT_ASSERT(strstr(why, "HOST:PORT") != NULL);
    FWT_ASSERT_INT_EQ(fw_addr_check_published("writer1.example.com:0", why, sizeof(why)), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_check_published("0.0.0.0:7410", why, sizeof(why)), -EINVAL);
    FWT_ASSERT(strstr(why, "wildcard") != NULL);
    FWT_ASSERT_INT_EQ(fw_addr_check_published("[::]:7410", why, sizeof(why)), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_addr_check_published("10.0.0.11:0", why, sizeof(why)), -EINVAL);
    FWT_ASSERT(strstr(why, "port") != NULL);
}

FWT_TEST(the_published_address_defaults_to_the_bound_one)
{
    char out[64];
    FWT_ASSERT_INT_EQ(fw_addr_published(NULL, "127.0.0.1:7410", out, sizeof(out)), 0);
    FWT_ASSERT_STR_EQ(out, "127.0.0.1:7410");
    /* Bound to every interface: published as is, and said to be a wildcard. */
    FWT_ASSERT_INT_EQ(fw_addr_published(NULL, "0.0.0.0:7410", out, sizeof(out)), 1);
    FWT_ASSERT_STR_EQ(out, "0.0.0.0:7410");
    FWT_ASSERT_INT_EQ(fw_addr_published(NULL, "[::]:7410", out, sizeof(out)), 1);
    FWT_ASSERT_INT_EQ(fw_addr_published("10.0.0.11:7410", "0.0.0.0:7410", out, sizeof(out)), 0);
    FWT_ASSERT_STR_EQ(out, "10.0.0.11:7410");
}
