# tok.mk: the tokenizer library user/tok/ (included by the top Makefile
# after its variables; uses OUT, CC, CFLAGS, Q, msg).
#   $(OUT)/libtok.a   byte-level BPE (tokenizer.json), podsim's
#                     pseudo-tokenizer, chat templates; needs -lpcre2-8
#                     -lutf8proc (LDLIBS)
TOK_SRCS := $(wildcard user/tok/*.c)
TOK_OBJS := $(TOK_SRCS:%.c=$(OUT)/obj/%.o)

$(OUT)/libtok.a: $(TOK_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# tests/tok/tok_ref.c: user/tok's ids and renderings of a corpus, for the
# reference comparison (tests/tok/test_reference.sh)
TOK_TOOLS := $(OUT)/tok_ref
$(OUT)/tok_ref: tests/tok/tok_ref.c $(OUT)/libtok.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# bench/micro/tok_bench.c: MB/s of user/tok and of the reference (node)
TOK_TOOLS += $(OUT)/tok_bench
$(OUT)/tok_bench: bench/micro/tok_bench.c $(OUT)/libtok.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
