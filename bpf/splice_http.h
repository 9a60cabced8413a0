/* splice_http.h: byte classes and the names and tokens the splice verdict
 * (bpf/splice.bpf.c) matches in HTTP/1.1 heads of both directions; part of
 * the verdict, included once by splice.bpf.c (after kvgate.h, maps.h), and
 * by tests/fuzz/fuzz_splice.c. */
#ifndef KVGATE_BPF_SPLICE_HTTP_H
#define KVGATE_BPF_SPLICE_HTTP_H

/* names and tokens, lower case, in .rodata (const volatile: libbpf gives
 * the section BTF; a plain string constant would land in .rodata.str,
 * which it cannot load) */
const volatile char METHOD[8] = "POST ";
const volatile char VERSION[12] = "HTTP/1.1\r\n";
const volatile char ANS_VERSION[12] = "HTTP/1.1 ";
const volatile char PATH1[24] = KVG_SPLICE_PATH1;
const volatile char PATH2[24] = KVG_SPLICE_PATH2;
const volatile char CL_NAME[16] = "content-length:";
const volatile char TE_NAME[20] = "transfer-encoding:";
const volatile char UP_NAME[12] = "upgrade:";
const volatile char EX_NAME[8] = "expect:";
const volatile char CO_NAME[12] = "connection:";
const volatile char CLOSE_TOK[8] = "close";
const volatile char CHUNKED_TOK[8] = "chunked";
#define METHOD_LEN 5
#define VERSION_LEN 10
#define ANS_VERSION_LEN 9
#define PATH1_LEN (sizeof(KVG_SPLICE_PATH1) - 1)
#define PATH2_LEN (sizeof(KVG_SPLICE_PATH2) - 1)
#define CL_LEN 15
#define TE_LEN 18
#define UP_LEN 8
#define EX_LEN 7
#define CO_LEN 11
#define CLOSE_LEN 5
#define CHUNKED_LEN 7
_Static_assert(PATH1_LEN < 24 && PATH2_LEN < 24, "inference paths fit PATH1 / PATH2");

/* tchar (RFC 9110 5.6.2) as a bitmap of 0..127 */
#define TCHAR_LO 0x03ff6cfa00000000ull
#define TCHAR_HI 0x57ffffffc7fffffeull

static __always_inline int spl_is_tchar(__u8 c)
{
    if (c < 64)
        return (TCHAR_LO >> c) & 1;
    if (c < 128)
        return (TCHAR_HI >> (c - 64)) & 1;
    return 0;
}

/* field-vchar / SP / HTAB, obs-text allowed (as user/common/http1.c) */
static __always_inline int spl_is_value_char(__u8 c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static __always_inline __u8 spl_lower(__u8 c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static __always_inline __s8 spl_name_step(__s8 m, __u8 lc, const volatile char *name, __s8 len)
{
    if (m < 0 || m >= len)
        return -1;
    return name[m] == lc ? m + 1 : -1;
}

/* A "connection" value's token matcher for "close": tok counts the token's
 * bytes matched (0 at a token's start, 6: "close" and trailing OWS, -1 no). */
static __always_inline __s8 spl_close_step(__s8 tok, __u8 c)
{
    if (c == ',')
        return 0;
    if (c == ' ' || c == '\t')
        return tok == CLOSE_LEN || tok == CLOSE_LEN + 1 ? CLOSE_LEN + 1 : tok == 0 ? 0 : -1;
    if (tok < 0 || tok >= CLOSE_LEN)
        return -1;
    return CLOSE_TOK[tok] == spl_lower(c) ? tok + 1 : -1;
}

#endif
