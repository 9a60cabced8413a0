/* splice_scan.h: the working state of the splice verdict's two parsers
 * (splice_req.h, splice_ans.h), kept in the per-CPU map kvg_head_buf
 * (maps.h) while the verdict runs, never pinned. Kernel-private: not part
 * of kvgate.h's contract; tests/fuzz/fuzz_splice.c runs the same parsers
 * in user space. The request head's state is also the bypass's, in XDP
 * (bp_frame.h, in kvg_bp_scan). */
#ifndef KVGATE_BPF_SPLICE_SCAN_H
#define KVGATE_BPF_SPLICE_SCAN_H

struct kvg_head_scan {          /* one client request head */
    __u32 n;                    /* bytes in b */
    __u32 hlen;                 /* head length, once its end was found */
    __u64 clen;                 /* Content-Length */
    __u64 max_body;             /* the flow's cfg.max_body */
    __u32 why;                  /* the hand-up reason that stopped the scan, 0 none */
    __u32 fields;               /* header fields so far */
    __u8 st;                    /* enum req_state (splice.bpf.c) */
    __u8 pos;                   /* bytes of "POST " / " HTTP/1.1" matched */
    __s8 m1, m2;                /* bytes of KVG_SPLICE_PATH1 / 2 matched, -1 no match */
    __s8 m_cl, m_te, m_up, m_ex, m_co; /* bytes of each header name matched, -1 none */
    __u8 hv;                    /* value being read: 0 other, 1 content-length, 2 connection */
    __u8 have_cl, digit, trail; /* a Content-Length seen; a digit / OWS after it in the value */
    __s8 tok;                   /* connection value: bytes of "close" in this token, -1 none */
    __u8 close;                 /* "connection: close" */
    __u8 any;                   /* frame any request (any method and path, no Content-Length
                                 * = no body): the bypass's counting (bp_frame.h); 0: only
                                 * what a pod may get from the splice (splice_req.h) */
    __u8 pad[2];
};
struct kvg_ans_scan {           /* the pod's bytes in one skb */
    __u32 off, len;             /* next byte to parse; the skb's length */
    __u32 wstart, wlen;         /* the window of the skb copied into b */
    __s32 start;                /* offset where the answer open now began, -1 before this skb */
    __s32 bad_start;            /* an invalid answer: where it began (-1: before this skb) */
    __u32 bad;                  /* an invalid answer was found */
    __u32 done;                 /* answers completed in this skb */
};
#endif
