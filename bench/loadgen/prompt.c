/* prompt: text synthesis, chat template, request body. See prompt.h. */
#include "prompt.h"

#include <string.h>

#include "common/sbuf.h"
#include "rng.h"

#define BOT "<|begin_of_text|>"
#define SH "<|start_header_id|>"
#define EH "<|end_header_id|>\n\n"
#define EOT "<|eot_id|>"

void lg_text(struct sbuf *b, uint64_t seed, size_t nbytes)
{
    if (!nbytes || sbuf_reserve(b, nbytes) < 0)
        return;
    struct lg_rng r;
    lg_rng_seed(&r, lg_mix(seed, 0x7e47));
    char *p = b->data + b->len;
    size_t i = 0;
    int word_left = 8; /* the first word: 8 letters */
    uint64_t bits = 0;
    int nbits = 0; /* letters left in bits (base 26 digits) */
    while (i < nbytes) {
        if (word_left == 0) {
            p[i++] = ' ';
            if (!nbits) {
                bits = lg_rng_next(&r);
                nbits = 13;
            }
            word_left = 2 + (int)(bits % 8); /* 2..9 letters */
            bits /= 8;
            nbits--;
            continue;
        }
        if (!nbits) {
            bits = lg_rng_next(&r);
            nbits = 13; /* 26^13 < 2^64 */
        }
        p[i++] = (char)('a' + bits % 26);
        bits /= 26;
        nbits--;
        word_left--;
    }
    b->len += nbytes;
    b->data[b->len] = '\0';
}

void lg_render_chat(struct sbuf *out, const struct lg_msg *m, size_t n)
{
    sbuf_puts(out, BOT);
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(out, SH);
        sbuf_puts(out, m[i].role);
        sbuf_puts(out, EH);
        sbuf_append(out, m[i].text, m[i].len);
        sbuf_puts(out, EOT);
    }
    sbuf_puts(out, SH "assistant" EH);
}

size_t lg_render_overhead(const char *const *roles, size_t n)
{
    size_t k = strlen(BOT) + strlen(SH "assistant" EH);
    for (size_t i = 0; i < n; i++)
        k += strlen(SH) + strlen(roles[i]) + strlen(EH) + strlen(EOT);
    return k;
}

void lg_body_chat(struct sbuf *out, const char *model, const struct lg_msg *m,
                  size_t n, uint32_t max_tokens)
{
    sbuf_puts(out, "{\"model\":\"");
    sbuf_json_escape(out, model, strlen(model));
    sbuf_puts(out, "\",\"messages\":[");
    for (size_t i = 0; i < n; i++) {
        sbuf_printf(out, "%s{\"role\":\"%s\",\"content\":\"", i ? "," : "", m[i].role);
        sbuf_json_escape(out, m[i].text, m[i].len);
        sbuf_puts(out, "\"}");
    }
    sbuf_printf(out,
                "],\"max_tokens\":%u,\"stream\":true,"
                "\"stream_options\":{\"include_usage\":true},\"ignore_eos\":true}",
                max_tokens);
}
