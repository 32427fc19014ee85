/*
 * UTF-8 (utf8.h): what is a character and what is not, and cutting text
 * to fit a buffer without ending inside a character.
 */
#include "fwtest.h"

#include "utf8.h"

#define S(lit) (lit), sizeof(lit) - 1

FWT_TEST(utf8_char_len_takes_characters_and_refuses_the_rest)
{
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("a")), 1);
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\x1b")), 1);         /* a control byte is a character */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xc3\xa9x")), 2);    /* é */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xe2\x82\xac")), 3); /* € */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xf0\x9f\x98\x80")), 4); /* U+1F600 */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xf4\x8f\xbf\xbf")), 4); /* U+10FFFF */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len("", 0), 0);
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\x80")), 0); /* a lone continuation */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xff")), 0);
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xc3")), 0); /* cut short */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xe2\x82")), 0);
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xc3(")), 0);    /* not a continuation */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xc0\xaf")), 0); /* overlong '/' */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xe0\x80\xaf")), 0);
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xed\xa0\x80")), 0);     /* surrogate U+D800 */
    FWT_ASSERT_UINT_EQ(fw_utf8_char_len(S("\xf4\x90\x80\x80")), 0); /* past U+10FFFF */
    FWT_ASSERT(fw_utf8_valid(S("caf\xc3\xa9 \xe2\x82\xac")));
    FWT_ASSERT(!fw_utf8_valid(S("caf\xc3")));
    FWT_ASSERT(!fw_utf8_valid(S("a\xffz")));
}

FWT_TEST(utf8_prefix_never_ends_inside_a_character)
{
    /* "ab" then é (2 bytes) then € (3 bytes): 7 bytes. */
    const char *s = "ab\xc3\xa9\xe2\x82\xac";
    size_t want[] = {0, 1, 2, 2, 4, 4, 4, 7, 7};
    for (size_t max = 0; max < sizeof(want) / sizeof(want[0]); max++)
        FWT_ASSERT_UINT_EQ(fw_utf8_prefix(s, 7, max), want[max]);
    /* Bytes that are no character stand alone and may be cut after. */
    FWT_ASSERT_UINT_EQ(fw_utf8_prefix(S("a\xff\xfe\xc3\xa9"), 2), 2);
    FWT_ASSERT_UINT_EQ(fw_utf8_prefix(S("a\xff\xfe\xc3\xa9"), 4), 3);
    /* A sequence cut short by len is bytes, not a character. */
    FWT_ASSERT_UINT_EQ(fw_utf8_prefix(S("ab\xe2\x82"), 3), 3);
    /* Every cut of random text is valid if the text is. */
    for (int round = 0; round < 2000; round++) {
        static const char *const pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
        char buf[64];
        size_t n = 0;
        while (n + 4 < sizeof(buf)) {
            const char *p = pieces[fwt_rand_range(0, 3)];
            size_t k = strlen(p);
            memcpy(buf + n, p, k);
            n += k;
        }
        size_t max = (size_t)fwt_rand_range(0, n);
        size_t cut = fw_utf8_prefix(buf, n, max);
        FWT_ASSERT(cut <= max && cut + 3 >= max);
        FWT_ASSERT(fw_utf8_valid(buf, cut));
    }
}
