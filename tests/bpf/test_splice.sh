#!/usr/bin/env bash
# The sockmap splice of session flows (bpf/splice.bpf.c, user/gateway/splice.c)
# on real sockets. kvgated, kvgate-podsim and a byte-counting pod
# (splice_tool.py countpod) run in a private network and mount namespace
# (own loopback, own bpffs). What it shows:
#   - a session's later requests are spliced: answered straight by the pod
#     (no x-gateway-destination-endpoint), byte for byte what the pod says
#     directly, and kvgated's request counter does not move while the
#     kernel's spliced-bytes counter does; a 64 MB upload through the splice
#     moves kvgated's read bytes (/proc/PID/io rchar) by a small fraction;
#   - a spliced streaming answer is token for token the relayed one and the
#     pod's own;
#   - draining the pod hands the next request to kvgated, which routes it
#     to the other pod: the client sees 200, the cause is counted;
#   - a stalled pod: the verdict stops at the budget (in flight <= budget +
#     one skb), kvgated relays with bounded buffers, TCP memory stays far
#     below the upload, and the upload completes whole once the pod reads;
#   - a 100 MB upload followed at once by shutdown(SHUT_WR) arrives whole;
#   - the pod's answers are framed by the verdict (chunked, with extensions
#     and a trailer, counted in kvgate_spliced_answers_total); one over the
#     budget is relayed by kvgated, then the flow splices again; a request
#     handed up while an answer is under way is answered after it; an
#     invalid answer becomes a 502;
#   - afterwards no flow entry, no spliced flow and no extra fd remain;
#     --no-splice serves the same session on the socket path.
# Skipped (77) without root, bpftool, jq, unshare, python3 or the binaries.
# KVGATED_WRAP="valgrind ..." runs kvgated under a wrapper.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (BPF, namespaces)"
for c in bpftool jq unshare curl ip; do command -v $c >/dev/null || skip_all "$c not installed"; done
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgated, $BUILD/kvgate-podsim not built"
private_bpffs --net "$0" "$@"
# TCP buffers of this namespace's sockets at most 1 MiB each (per-netns
# sysctls): what the kernel may hold per socket is then known, and the
# stalled-pod check below can tell the budget's bound from TCP's own
TCPMAX=1048576
sysctl -qw net.ipv4.tcp_rmem="4096 131072 $TCPMAX" net.ipv4.tcp_wmem="4096 16384 $TCPMAX" ||
    setup_failed "per-namespace TCP buffer sysctls"
PIN=/sys/fs/bpf/kvgate
splice_cleanup() {
    e2e_cleanup # kills kvgated, podsim, the count pod (E2E_PIDS)
    rm -rf $PIN
    umount /sys/fs/bpf 2>/dev/null
}
trap splice_cleanup EXIT
TOOL="$PY tests/bpf/splice_tool.py"
MODEL=meta-llama/Llama-3.1-8B-Instruct

start_podsim --pods 2 --time-scale 0.05 || setup_failed "kvgate-podsim"
CP=$(free_port_range 1)
$TOOL countpod $CP >"$E2E_TMP/countpod.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$CP/health" 2>/dev/null || setup_failed "count pod"

# kvgated: 2 podsim pods + the count pod, splice on, budget 1 MiB; bodies
# up to 128 MiB (the uploads below; the kernel enforces the limit too)
BUDGET=1048576
cat >"$E2E_TMP/kvgated.json" <<EOF
{"splice": {"mode": "on", "budget_bytes": $BUDGET}, "limits": {"max_body_bytes": 134217728}}
EOF
start_kvgated() { # extra flags; sets GW_PORT GW_ADMIN GW_PID
    local try i
    for try in 1 2 3; do
        GW_PORT=$(free_port_range 2); GW_ADMIN=$((GW_PORT + 1))
        ${KVGATED_WRAP:-} $BUILD/kvgated --config "$E2E_TMP/kvgated.json" --workers 1 --listen 127.0.0.1:$GW_PORT \
            --admin 127.0.0.1:$GW_ADMIN --access-log "$E2E_TMP/access.log" \
            --pod http://127.0.0.1:$PODSIM_PORT --pod http://127.0.0.1:$((PODSIM_PORT + 1)) \
            --pod http://127.0.0.1:$CP "$@" >"$E2E_TMP/kvgated.log" 2>&1 &
        GW_PID=$!
        E2E_PIDS+=($GW_PID)
        wait_http "http://127.0.0.1:$GW_PORT/health" 2>/dev/null && kill -0 $GW_PID 2>/dev/null && break
        kill $GW_PID 2>/dev/null
        [ $try = 3 ] && return 1
    done
    for i in $(seq 1 50); do
        [ "$(curl -s http://127.0.0.1:$GW_ADMIN/admin/pods | jq '[.[] | select(.healthy)] | length')" = 3 ] && return 0
        sleep 0.1
    done
    return 1
}
start_kvgated || setup_failed "kvgated: $(cat $E2E_TMP/kvgated.log)"
grep -q "sockmap splice of session flows on" "$E2E_TMP/kvgated.log" || setup_failed "splice not on: $(cat $E2E_TMP/kvgated.log)"
FD0=$(ls /proc/$GW_PID/fd | wc -l)

m() { metric_value "$1"; }
requests() { curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_requests_total/ {s += $2} END {print s + 0}'; }
# bytes kvgated's worker thread read (the data path; scrapes run on the control thread)
rchar() {
    local t
    for t in /proc/$GW_PID/task/*; do
        [ "$(cat $t/comm)" = kvgate-w0 ] && awk '/^rchar/ {print $2}' $t/io && return
    done
    echo 0
}
stat_of() { # reason -> bytes summed over CPUs
    bpftool map dump pinned $PIN/maps/kvg_spl_stats -j |
        jq --argjson k "$1" '[.[] | .formatted | select(.key == $k) | .values[].value.bytes] | add'
}
J() { jq -c "$@"; }
# jq over a session's records; false shows them (what CI's log keeps) and
# the unsplice counters
jqs() {
    jq -s -e "$1" "$2" >/dev/null && return 0
    echo "jq false on $2:"; cut -c1-400 "$2" | tail -8
    curl -s http://127.0.0.1:$GW_ADMIN/metrics | grep -E '^kvgate_unsplices_total' | awk '$2 > 0' | tr '\n' ' '
    return 1
}
# an unsplice cause's counter moved by exactly want since base; else says
# what it reads
unsplices_moved() { # cause base want
    local v
    v=$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk -v c="cause=\"$1\"" 'index($0, "kvgate_unsplices_total{" c) == 1 {print $2}')
    [ -n "$v" ] && [ $((v - $2)) = "$3" ] && return 0
    echo "kvgate_unsplices_total{cause=\"$1\"}: ${v:-absent}, was $2, want +$3"
    return 1
}
export -f jqs unsplices_moved
export GW_ADMIN

# ---- 1. intact, and kvgated reads none of it ----
R0=$(requests); C2P0=$(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}')
SR0=$(m 'kvgate_spliced_requests_total')
$TOOL session $GW_PORT s1 req:$MODEL:20000:0:16 req:$MODEL:20000:0:16 req:$MODEL:20000:1:16 \
    req:$MODEL:20000:0:16 req:$MODEL:20000:1:16 >"$E2E_TMP/s1.jsonl" 2>&1
$TOOL direct $PODSIM_PORT $MODEL 20000 0 16 >"$E2E_TMP/d0.json"
$TOOL direct $PODSIM_PORT $MODEL 20000 1 16 >"$E2E_TMP/d1.json"
check "session s1: 5 answers, all 200" bash -c "[ \$(jq -s '[.[] | select(.status == 200)] | length' $E2E_TMP/s1.jsonl) = 5 ]"
check "  the first relayed by kvgated, the next 4 straight from the pod (spliced)" bash -c \
    "[ \"\$(jq -s -c '[.[] | .dest != \"\"]' $E2E_TMP/s1.jsonl)\" = '[true,false,false,false,false]' ]"
check "  spliced answers = the pod's own, token for token" bash -c \
    "[ \"\$(jq -s -c '[.[1,3] | .tokens]' $E2E_TMP/s1.jsonl)\" = \"\$(jq -s -c '[.[0].tokens, .[0].tokens]' $E2E_TMP/d0.json)\" ] &&
     [ \"\$(jq -s -c '[.[2,4] | .tokens]' $E2E_TMP/s1.jsonl)\" = \"\$(jq -s -c '[.[0].tokens, .[0].tokens]' $E2E_TMP/d1.json)\" ] &&
     [ \"\$(jq -s -c '.[0].tokens' $E2E_TMP/s1.jsonl)\" = \"\$(jq -c '.tokens' $E2E_TMP/d0.json)\" ]"
check "  kvgated counted 1 request; the kernel spliced >= 4 x 20 KB" bash -c \
    "[ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_requests_total/ {s += \$2} END {print s + 0}') - $R0 )) = 1 ] &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk -F' ' '/^kvgate_spliced_bytes_total\\{direction=\"client_to_pod\"/ {print \$2}') - $C2P0 )) -ge 80000 ]"
check "  spliced flows counted" bash -c "[ \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_spliced_flows_total/ {print \$2}') -ge 1 ]"
check "  the 4 spliced requests counted in kvgate_spliced_requests_total" bash -c \
    "[ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_spliced_requests_total / {print \$2}') - $SR0 )) = 4 ]"

# ---- 2. streaming: spliced = relayed = the pod's own ----
$TOOL session $GW_PORT s2 req:$MODEL:3000:1:48 req:$MODEL:3000:1:48 >"$E2E_TMP/s2.jsonl" 2>&1
$TOOL direct $PODSIM_PORT $MODEL 3000 1 48 >"$E2E_TMP/d2.json"
check "streaming: spliced answer = relayed answer = the pod's, 48 tokens" bash -c \
    "jqs '.[0].dest != \"\" and .[1].dest == \"\" and .[0].tokens == .[1].tokens and (.[0].tokens | length) == 48' $E2E_TMP/s2.jsonl &&
     [ \"\$(jq -s -c '.[1].tokens' $E2E_TMP/s2.jsonl)\" = \"\$(jq -c .tokens $E2E_TMP/d2.json)\" ]"

# ---- 3. drain: handed up, re-routed, no error ----
DR0=$(m 'kvgate_unsplices_total{cause="draining"}')
$TOOL session $GW_PORT s3 req:$MODEL:4000:0:8 >"$E2E_TMP/s3a.jsonl" 2>&1
# the same session on a new connection sticks to its pod; drain it mid-session
A=$(jq -r 'select(.dest != "") | .dest' "$E2E_TMP/s3a.jsonl" | head -1)
$TOOL session $GW_PORT s3 req:$MODEL:4000:0:8 req:$MODEL:4000:0:8 \
    "post:http://127.0.0.1:$GW_ADMIN/admin/pods/$A/drain|{}" sleep:0.3 \
    req:$MODEL:4000:0:8 req:$MODEL:4000:0:8 req:$MODEL:4000:0:8 >"$E2E_TMP/s3.jsonl" 2>&1
curl -s -X POST http://127.0.0.1:$GW_ADMIN/admin/pods/$A/undrain >/dev/null
check "drain: every answer 200 (the client sees no error)" bash -c \
    "[ \$(jq -s '[.[] | select(.status == 200)] | length' $E2E_TMP/s3.jsonl) = 6 ]"
check "  before: spliced to $A; after: routed by kvgated to the other pod" bash -c \
    "jq -s -e --arg a '$A' '.[0].dest == \$a and .[1].dest == \"\" and .[4].dest != \"\" and .[4].dest != \$a' $E2E_TMP/s3.jsonl >/dev/null"
check "  counted: kvgate_unsplices_total{cause=\"draining\"} +1" bash -c \
    "[ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"draining\"/ {print \$2}') - $DR0 )) = 1 ]"

# ---- 3b. what the verdict does not frame goes up, the flow splices again ----
UF0=$(m 'kvgate_unsplices_total{cause="unframed"}'); UP0=$(m 'kvgate_unsplices_total{cause="filtered"}')
$TOOL session $GW_PORT s3b req:$MODEL:2000:0:8 req:$MODEL:2000:0:8 chunked:$MODEL:2000 \
    req:$MODEL:2000:0:8 get:/v1/models req:$MODEL:2000:0:8 req:$MODEL:2000:0:8 >"$E2E_TMP/s3b.jsonl" 2>&1
check "chunked body and a GET on a spliced connection: handed up, answered by kvgated (200)" bash -c \
    "jqs 'length == 7 and all(.[]; .status == 200) and .[2].dest != \"\" and .[4].json.object == \"list\"' $E2E_TMP/s3b.jsonl"
# after the chunked exchange (routed: its upstream conn is kept) the next
# request is spliced at once; after the local GET answer one routed
# exchange comes first
check "  spliced again after each (no destination header), causes unframed / filtered counted" bash -c \
    "jqs '.[1].dest == \"\" and .[3].dest == \"\" and .[5].dest != \"\" and .[6].dest == \"\"' $E2E_TMP/s3b.jsonl &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"unframed\"/ {print \$2}') - $UF0 )) = 1 ] &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"filtered\"/ {print \$2}') - $UP0 )) = 1 ]"

# ---- 3c. pipelined requests in one skb; the pod closing its connection ----
$TOOL session $GW_PORT s3c req:$MODEL:2000:0:8 pipe:$MODEL:2000:3 req:$MODEL:2000:0:8 >"$E2E_TMP/s3c.jsonl" 2>&1
$TOOL direct $PODSIM_PORT $MODEL 2001 0 8 >"$E2E_TMP/d3c.json"
check "3 pipelined requests on a spliced connection: 3 answers in order, the pod's own" bash -c \
    "jqs '.[1].status == [200,200,200] and .[1].dest == [\"\",\"\",\"\"] and .[2].status == 200' $E2E_TMP/s3c.jsonl &&
     [ \"\$(jq -s -c '.[1].tokens[1]' $E2E_TMP/s3c.jsonl)\" = \"\$(jq -c .tokens $E2E_TMP/d3c.json)\" ]"
$TOOL session $GW_PORT s3d upload:1000 upload:5000:close eof >"$E2E_TMP/s3d.jsonl" 2>&1
sleep 0.3
check "the pod closes a spliced connection: answer whole, then the client sees the close; nothing left" bash -c \
    "jqs '.[1].status == 200 and .[1].dest == \"\" and .[1].json.bytes == 5000 and .[2].eof == true' $E2E_TMP/s3d.jsonl &&
     [ \"\$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_splice_flows / {print \$2}')\" = 0 ]"

PC0=$(m 'kvgate_unsplices_total{cause="pod_closed"}')
$TOOL session $GW_PORT s3e upload:1000 upload:2000:idle=1.5 sleep:2.8 upload:3000 upload:4000 \
    >"$E2E_TMP/s3e.jsonl" 2>&1
check "the pod closes an idle spliced connection (keep-alive timeout): unspliced, the client keeps its connection" bash -c \
    "jqs '[.[] | select(.status)] | length == 4 and all(.[]; .status == 200) and .[1].dest == \"\" and .[2].dest != \"\" and .[3].dest == \"\"' $E2E_TMP/s3e.jsonl &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"pod_closed\"/ {print \$2}') - $PC0 )) = 1 ]"

# ---- 3f. the pod's answers: framed by the verdict, relayed when over the budget ----
AN0=$(m 'kvgate_spliced_answers_total')
$TOOL session $GW_PORT s3f upload:1000 upload:1001 \
    'send:req("POST", "/v1/completions", 300, headers=["x-answer-bytes: 300000", "x-answer-chunked: 1"])' read:1 \
    upload:1002 >"$E2E_TMP/s3f.jsonl" 2>&1
check "a chunked answer (extensions, a trailer) on a spliced connection: whole; the next request spliced too" bash -c \
    "jqs '.[1].dest == \"\" and .[3].status == [200] and .[3].bytes == [300000] and .[3].sha_ok == [true] and
               .[3].dest == [\"\"] and .[4].status == 200 and .[4].dest == \"\"' $E2E_TMP/s3f.jsonl &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_spliced_answers_total / {print \$2}') - $AN0 )) = 3 ]"
BU0=$(m 'kvgate_unsplices_total{cause="budget"}'); RP0=$(m 'kvgate_splice_relayed_bytes_total{direction="pod_to_client"}')
$TOOL session $GW_PORT s3g upload:1000 upload:1001 \
    'send:req("POST", "/v1/completions", 300, headers=["x-answer-bytes: 12000000"])' sleep:1 read:1 \
    upload:1002 >"$E2E_TMP/s3g.jsonl" 2>&1
check "a 12 MB answer to a client that waits 1 s before reading: over the budget, relayed whole, then spliced again" bash -c \
    "jqs '.[4].status == [200] and .[4].bytes == [12000000] and .[4].sha_ok == [true] and
               .[5].status == 200 and .[5].dest == \"\"' $E2E_TMP/s3g.jsonl &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"budget\"/ {print \$2}') - $BU0 )) -ge 1 ] &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_splice_relayed_bytes_total\\{direction=\"pod_to_client\"/ {print \$2}') - $RP0 )) -gt 0 ]"
# a request the kernel hands up while a long answer is under way waits for it
$TOOL session $GW_PORT s3h upload:1000 upload:1001 \
    'send:[req("POST", "/v1/completions", 300, headers=["x-answer-bytes: 8000000"]), 0.05, req("GET", "/v1/models", cl=False)]' \
    sleep:0.5 read:2 upload:1002 >"$E2E_TMP/s3h.jsonl" 2>&1
KVLIST="([.json[1].data[].id] | index(\"$MODEL\") != null)" # kvgated's list, not the count pod's
check "a GET sent while a spliced 8 MB answer is under way: the answer whole first, then kvgated's model list" bash -c \
    "jqs '.[4].status == [200, 200] and .[4].bytes[0] == 8000000 and .[4].sha_ok == [true] and
               (.[4] | $KVLIST) and .[5].status == 200' $E2E_TMP/s3h.jsonl"
$TOOL session $GW_PORT s3h2 upload:1000 upload:1001 \
    'send:[req("POST", "/v1/completions", 300, headers=["x-answer-bytes: 300000", "x-answer-delay: 0.4"]), 0.05, req("GET", "/v1/models", cl=False)]' \
    read:2 upload:1002 >"$E2E_TMP/s3h2.jsonl" 2>&1
check "  ... and one sent before the pod's answer began: still answered after it" bash -c \
    "jqs '.[3].status == [200, 200] and .[3].bytes[0] == 300000 and .[3].sha_ok == [true] and
               (.[3] | $KVLIST) and .[4].status == 200' $E2E_TMP/s3h2.jsonl"
BA0=$(m 'kvgate_unsplices_total{cause="bad_answer"}')
$TOOL session $GW_PORT s3i upload:1000 upload:1001 \
    'send:req("POST", "/v1/completions", 300, headers=["x-bad-answer: 1"])' read:1 eof >"$E2E_TMP/s3i.jsonl" 2>&1
check "an invalid answer from the pod (a field line without a colon): 502 from kvgated in its place, then close" bash -c \
    "jqs '.[3].status == [502] and (.[3].json[0].error.message | type == \"string\") and .[4].eof == true' $E2E_TMP/s3i.jsonl &&
     unsplices_moved bad_answer $BA0 1"

# ---- 4. reads none: kvgated's worker thread reads (rchar) ----
RC0=$(rchar); C2P0=$(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}')
P2C0=$(m 'kvgate_spliced_bytes_total{direction="pod_to_client"}')
steps=(); for i in $(seq 1 20); do steps+=(req:$MODEL:100000:$((i % 2)):16); done
$TOOL session $GW_PORT s4 "${steps[@]}" >"$E2E_TMP/s4.jsonl" 2>&1
RC1=$(rchar); C2P1=$(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}')
P2C1=$(m 'kvgate_spliced_bytes_total{direction="pod_to_client"}')
echo "   20 x 100 KB: spliced $((C2P1 - C2P0)) bytes to the pod, $((P2C1 - P2C0)) back; the worker thread read $((RC1 - RC0)) bytes"
check "reads none: 20 answers 200; kvgated's worker read < 1/10 of what the kernel spliced (only the first exchange)" \
    bash -c "[ \$(jq -s '[.[] | select(.status == 200)] | length' $E2E_TMP/s4.jsonl) = 20 ] &&
             [ $((RC1 - RC0)) -lt $(( (C2P1 - C2P0) / 10 )) ] && [ $((C2P1 - C2P0)) -ge 1900000 ]"

# ---- 4b. uploads to the counting pod: spliced half-close, and 64 MB ----
US0=$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total/ {s += $2} END {print s + 0}')
$TOOL session $GW_PORT s4b upload:1000 upload:200000:shut >"$E2E_TMP/s4b.jsonl" 2>&1
check "200 KB upload + shutdown(SHUT_WR) within the budget: spliced, whole, FIN passed on" bash -c \
    "jqs '.[1].status == 200 and .[1].dest == \"\" and .[1].json.bytes == 200000 and .[1].json.sha256 == .[1].sent_sha256' $E2E_TMP/s4b.jsonl"
RC0=$(rchar)
BU0=$(m 'kvgate_unsplices_total{cause="budget"}'); SC0=$(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}')
$TOOL session $GW_PORT s4c upload:1000 upload:67108864 upload:3000 >"$E2E_TMP/s4c.jsonl" 2>&1
RC1=$(rchar)
check "64 MB upload: arrives whole (pod counted every byte, same sha256)" bash -c \
    "jqs '.[1].status == 200 and .[1].json.bytes == 67108864 and .[1].json.sha256 == .[1].sent_sha256' $E2E_TMP/s4c.jsonl"
echo "   64 MiB to a pod slower than the client: $(( $(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}') - SC0 )) bytes spliced, the worker thread read $((RC1 - RC0)), budget hand-ups $(( $(m 'kvgate_unsplices_total{cause="budget"}') - BU0 ))"
check "  after a budget hand-up inside the body, the rest is relayed and the next request spliced again" bash -c \
    "jqs '.[2].status == 200 and .[2].dest == \"\" and .[2].json.bytes == 3000' $E2E_TMP/s4c.jsonl"

# ---- 5. a stalled pod: the budget bounds what the kernel holds ----
SOCK0=$(awk '/^TCP:/ {print $NF}' /proc/net/sockstat) # pages
BU0=$(m 'kvgate_unsplices_total{cause="budget"}')
UP=33554432
$TOOL session $GW_PORT s5 upload:100 "post:http://127.0.0.1:$CP/admin/stall|{\"after\": 0}" \
    upload:$UP >"$E2E_TMP/s5.jsonl" 2>&1 &
S5=$!
E2E_PIDS+=($S5)
tcp_pages() { awk '/^TCP:/ {print $NF}' /proc/net/sockstat; }
sleep 1
SOCK1=$(tcp_pages)
for i in $(seq 1 20); do # until it holds still (buffers autotune for a while)
    sleep 0.25; SOCK2=$(tcp_pages)
    [ $(( SOCK2 - SOCK1 )) -lt 64 ] && [ $(( SOCK1 - SOCK2 )) -lt 64 ] && break
    SOCK1=$SOCK2
done
MAXOUT=$(bpftool map dump pinned $PIN/maps/kvg_flow_st -j | jq '[.[] | .formatted.value.max_out] | max')
echo "   stalled: most in flight to the pod $MAXOUT bytes (budget $BUDGET); TCP memory $SOCK0 -> $SOCK1 -> $SOCK2 pages"
ss -tmn >"$E2E_TMP/ss.txt" 2>&1
check "stall: in flight never above budget + 64 KiB" test "$MAXOUT" -le $((BUDGET + 65536))
check "  handed up for the budget (kvgated relays with its bounded buffers)" bash -c \
    "[ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"budget\"/ {print \$2}') - $BU0 )) = 1 ]"
# what the kernel holds is the sockets' own TCP buffers (bounded by their
# sizes, with TCP's backpressure: handed-up bytes are charged to the client
# socket's receive memory) plus at most the budget in the psock queue: four
# sockets of at most TCPMAX each (x2 for skb overhead) + the budget, far
# from the 32 MiB the client has to send, and it holds still
check "  TCP memory held still at <= budget + the sockets' own buffers, client still sending" bash -c \
    "[ $(( (SOCK2 - SOCK0) * 4096 )) -le $(( BUDGET + 8 * TCPMAX + 1048576 )) ] && kill -0 $S5"
curl -s -X POST -d '{}' http://127.0.0.1:$CP/admin/release >/dev/null
wait $S5
check "  released: the upload arrives whole" bash -c \
    "jqs '.[2].status == 200 and .[2].json.bytes == $UP and .[2].json.sha256 == .[2].sent_sha256' $E2E_TMP/s5.jsonl"

# ---- 6. 100 MB upload, client shuts its write side right after ----
$TOOL session $GW_PORT s6 upload:1000 upload:100000000:shut >"$E2E_TMP/s6.jsonl" 2>&1
check "100 MB upload + early shutdown(SHUT_WR): arrives whole, answer read" bash -c \
    "jqs '.[1].status == 200 and .[1].json.bytes == 100000000 and .[1].json.sha256 == .[1].sent_sha256' $E2E_TMP/s6.jsonl"
echo "   spliced c2p bytes so far: $(m 'kvgate_spliced_bytes_total{direction="client_to_pod"}'), unsplices: $(curl -s http://127.0.0.1:$GW_ADMIN/metrics | grep '^kvgate_unsplices_total' | awk '$2 > 0' | tr '\n' ' ')"

# ---- 7. nothing left behind ----
sleep 0.5
check "no spliced flow, no flow entry, no extra fd left" bash -c \
    "[ \"\$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_splice_flows / {print \$2}')\" = 0 ] &&
     [ \"\$(bpftool map dump pinned $PIN/maps/kvg_flow_cfg -j | jq length)\" = 0 ] &&
     [ \"\$(bpftool map dump pinned $PIN/maps/kvg_flow_st -j | jq length)\" = 0 ] &&
     [ \$(ls /proc/$GW_PID/fd | wc -l) -le $FD0 ]"
# ---- 7b. SIGTERM while a spliced answer streams: it finishes, then the flow ends ----
$TOOL session $GW_PORT s7 req:$MODEL:2000:1:8 req:$MODEL:2000:1:12000 eof >"$E2E_TMP/s7.jsonl" 2>&1 &
S7=$!
sleep 1.5 # the second answer, spliced, is under way (12,000 tokens take ~4.5 s)
T0=$(date +%s%N); kill -TERM $GW_PID
wait $S7; wait $GW_PID; T1=$(date +%s%N)
echo "   kvgated exited $(( (T1 - T0) / 1000000 )) ms after SIGTERM (drain_timeout_ms 30000)"
check "SIGTERM during a spliced stream: the answer completes (12,000 tokens), then the connection ends" \
    jq -s -e '.[1].status == 200 and .[1].dest == "" and (.[1].tokens | length) == 12000 and .[2].eof == true' \
    "$E2E_TMP/s7.jsonl"
check "  and kvgated exits once it has, not at the drain deadline" test $(( (T1 - T0) / 1000000 )) -lt 15000
cp "$E2E_TMP/kvgated.log" "$E2E_TMP/kvgated-1.log"
check "kvgated exited cleanly" bash -c "grep -q 'shutting down' $E2E_TMP/kvgated-1.log && \
    ! grep -qiE 'error|invalid|libbpf|definitely lost|uninitialised' $E2E_TMP/kvgated-1.log"

# ---- 8. --no-splice: the same session on the socket path ----
start_kvgated --no-splice || setup_failed "kvgated --no-splice"
$TOOL session $GW_PORT s8 req:$MODEL:2000:0:8 req:$MODEL:2000:1:8 >"$E2E_TMP/s8.jsonl" 2>&1
check "--no-splice: says so once, every answer relayed by kvgated" bash -c \
    "grep -q 'sockmap splice off: turned off (--no-splice)' $E2E_TMP/kvgated.log &&
     jqs 'all(.[]; .status == 200 and .dest != \"\")' $E2E_TMP/s8.jsonl"
finish
