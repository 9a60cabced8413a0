#!/usr/bin/env bash
# The sockmap splice never lets a client past kvgated's request filter
# (issue 9, finding 1). On a spliced session connection, every way a
# request could reach the pod without kvgated's checks is tried: another
# path, another method, a body over limits.max_body_bytes, a request
# behind an eligible one in the same skb, more pipelined requests than the
# verdict frames, a head split over two sends, chunked and Expect bodies,
# HTTP/1.0, malformed heads, and an ineligible request in the skb that
# ends the previous request's body ("mid"). Each must be answered by
# kvgated exactly as on the socket path (404, 405, 413, 400, 431, or
# routed), and the pods must see nothing but inference requests:
#   - the count pod (splice_tool.py countpod) records every request line
#     it read: all of them must be POST /v1/completions or
#     /v1/chat/completions;
#   - podsim's fault injection (its /admin/faults) stays off;
#   - no flow is ever relayed as raw bytes (no kvg_flow_cfg entry in mode
#     2, the RAW mode the splice used to fall back to);
#   - the answers come in request order, and kvgated keeps serving.
# Skipped (77) without root, bpftool, jq, unshare, python3 or the binaries.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (BPF, namespaces)"
for c in bpftool jq unshare curl ip; do command -v $c >/dev/null || skip_all "$c not installed"; done
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgated, $BUILD/kvgate-podsim not built"
private_bpffs --net "$0" "$@"
PIN=/sys/fs/bpf/kvgate
trap bpf_pins_cleanup EXIT
TOOL="$PY tests/bpf/splice_tool.py"
MODEL=meta-llama/Llama-3.1-8B-Instruct
MAXBODY=262144

start_podsim --pods 2 --time-scale 0.05 || setup_failed "kvgate-podsim"
CP=$(free_port_range 1)
$TOOL countpod $CP >"$E2E_TMP/countpod.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$CP/health" 2>/dev/null || setup_failed "count pod"
cat >"$E2E_TMP/kvgated.json" <<EOF
{"splice": {"mode": "on", "budget_bytes": 1048576}, "limits": {"max_body_bytes": $MAXBODY}}
EOF
for try in 1 2 3; do
    GW_PORT=$(free_port_range 2); GW_ADMIN=$((GW_PORT + 1))
    $BUILD/kvgated --config "$E2E_TMP/kvgated.json" --workers 1 --listen 127.0.0.1:$GW_PORT \
        --admin 127.0.0.1:$GW_ADMIN --access-log "$E2E_TMP/access.log" \
        --pod http://127.0.0.1:$PODSIM_PORT --pod http://127.0.0.1:$((PODSIM_PORT + 1)) \
        --pod http://127.0.0.1:$CP >"$E2E_TMP/kvgated.log" 2>&1 &
    GW_PID=$!
    E2E_PIDS+=($GW_PID)
    wait_http "http://127.0.0.1:$GW_PORT/health" 2>/dev/null && kill -0 $GW_PID 2>/dev/null && break
    kill $GW_PID 2>/dev/null
    [ $try = 3 ] && setup_failed "kvgated: $(cat $E2E_TMP/kvgated.log)"
done
for i in $(seq 1 50); do
    [ "$(curl -s http://127.0.0.1:$GW_ADMIN/admin/pods | jq '[.[] | select(.healthy)] | length')" = 3 ] && break
    sleep 0.1
done
grep -q "sockmap splice of session flows on" "$E2E_TMP/kvgated.log" || setup_failed "splice not on: $(cat $E2E_TMP/kvgated.log)"

m() { metric_value "$1"; }
# sockets in RAW mode right now (the old fall-back: client bytes relayed unparsed)
RAWQ="run:bpftool map dump pinned $PIN/maps/kvg_flow_cfg -j | jq '[.[] | select(.formatted.value.mode == 2)] | length'"
# scen NAME STEPS...: one session connection, spliced first (two uploads to
# the count pod: the first routed, the second spliced), then STEPS, then a
# sample of RAW flows; the JSON lines in $E2E_TMP/NAME.jsonl
scen() {
    local n=$1; shift
    # a count pod that took an injected fault through an earlier hole heals
    curl -s -o /dev/null -X POST -d '{"fail_rate": 0}' http://127.0.0.1:$CP/admin/faults
    $TOOL session $GW_PORT "f-$n" upload:1000 upload:1001 "$@" "$RAWQ" >"$E2E_TMP/$n.jsonl" 2>&1
}
# J NAME FILTER: jq over the scenario's lines (slurped), must be true
J() { jq -s -e "$2" "$E2E_TMP/$1.jsonl" >/dev/null || { echo "$1:"; cat "$E2E_TMP/$1.jsonl"; return 1; }; }
SPLICED='.[1].status == 200 and .[1].dest == ""' # the second upload went through the splice
errjson='(.error.message | type == "string") and (.error.type | type == "string") and has("error")'

# ---- podsim: POST /admin/faults on a spliced connection ----
$TOOL session $GW_PORT f-faults req:$MODEL:200:0:4 req:$MODEL:200:0:4 \
    'send:req("POST", "/admin/faults", b"{\"fail_rate\":1}")' read:1 req:$MODEL:200:0:4 req:$MODEL:200:0:4 \
    "$RAWQ" >"$E2E_TMP/faults.jsonl" 2>&1
faults_off() {
    local p
    for p in $PODSIM_PORT $((PODSIM_PORT + 1)); do
        [ "$(curl -s http://127.0.0.1:$p/admin/faults | jq '.faults.fail_rate // .fail_rate')" = 0 ] || return 1
    done
}
check "POST /admin/faults on a spliced connection: 404 from kvgated (OpenAI error JSON)" \
    J faults ".[1].dest == \"\" and .[3].status == [404] and (.[3].json[0] | $errjson)"
check "  the pods' fault injection stays off; the session's next requests succeed" bash -c \
    "$(declare -f faults_off); PODSIM_PORT=$PODSIM_PORT; faults_off && jq -s -e '.[4].status == 200 and .[5].status == 200' $E2E_TMP/faults.jsonl >/dev/null"

# ---- other paths and methods ----
scen lora 'send:req("POST", "/v1/load_lora_adapter", b"{\"lora_name\":\"x\",\"lora_path\":\"/tmp/x\"}")' read:1 upload:1002
check "POST /v1/load_lora_adapter: 404 from kvgated, the connection goes on" \
    J lora "$SPLICED and .[3].status == [404] and (.[3].json[0] | $errjson) and .[4].status == 200"
scen getchat 'send:req("GET", "/v1/chat/completions", cl=False)' read:1 upload:1002
check "GET /v1/chat/completions: 405 from kvgated" \
    J getchat "$SPLICED and .[3].status == [405] and .[4].status == 200"
scen path 'send:req("POST", "/v1/completionsX", 300)' read:1 'send:req("POST", "/v1/completions/../../admin/faults", 300)' read:1
check "POST /v1/completionsX, /v1/completions/../../admin/faults: 404 each" \
    J path "$SPLICED and .[3].status == [404] and .[5].status == [404]"
scen query 'send:req("POST", "/v1/completions?x=1", 1003)' read:1 upload:1004
check "POST /v1/completions?x=1 is the pod's: spliced (no destination header), 200" \
    J query "$SPLICED and .[3].status == [200] and .[3].dest == [\"\"] and .[3].json[0].bytes == 1003 and .[4].dest == \"\""

# ---- the body limit ----
scen big "upload:$((MAXBODY + 1000))"
check "a body over limits.max_body_bytes: 413 from kvgated" J big "$SPLICED and .[2].status == 413 and (.[2].json | $errjson)"

# ---- pipelining: behind an eligible request, in one send ----
scen pipeget 'send:req("POST", "/v1/completions", 1100) + req("GET", "/v1/models", cl=False)' read:2 upload:1005
check "an eligible POST and a GET /v1/models in one send: the pod's answer, then kvgated's model list" \
    J pipeget "$SPLICED and .[3].status == [200, 200] and .[3].json[0].bytes == 1100 and
               ([.[3].json[1].data[].id] | index(\"$MODEL\") != null) and .[4].status == 200"
scen pipeadmin 'send:req("POST", "/v1/completions", 1100) + req("POST", "/admin/x", b"{}")' read:2 upload:1005
check "an eligible POST and a POST /admin/x in one send: 200 from the pod, 404 from kvgated" \
    J pipeadmin "$SPLICED and .[3].status == [200, 404] and .[3].json[0].bytes == 1100 and .[4].status == 200"
scen many 'send:b"".join(req("POST", "/v1/completions", 400 + i) for i in range(24)) + req("POST", "/admin/y", b"{}")' read:25 upload:1006
check "24 eligible requests and a POST /admin/y in one send: 24 answers in order, then 404" \
    J many "$SPLICED and .[3].status == ([range(24)] | map(200)) + [404] and
            [.[3].json[0:24][].bytes] == [range(400; 424)] and .[4].status == 200"
scen many2 'send:b"".join(req("POST", "/v1/completions", 400 + i) for i in range(40))' read:40 upload:1007
check "40 eligible requests in one send: 40 answers, in order" \
    J many2 "$SPLICED and [.[3].json[].bytes] == [range(400; 440)] and .[4].status == 200"

# ---- heads split over sends ----
scen split 'send:[b"POST /admin/faults HTTP/1.1\r\nHo", 0.3, b"st: gw\r\ncontent-length: 2\r\n\r\n{}"]' read:1 upload:1008
check "a head split over two sends: 404 from kvgated" J split "$SPLICED and .[3].status == [404] and .[4].status == 200"
scen splitpipe 'send:[req("POST", "/v1/completions", 1200) + b"POST /admin/z HTTP/1.1\r\nHo", 0.3, b"st: gw\r\ncontent-length: 2\r\n\r\n{}"]' read:2 upload:1009
check "an eligible request, then a head split over the next send: 200 from the pod, 404 from kvgated" \
    J splitpipe "$SPLICED and .[3].status == [200, 404] and .[3].json[0].bytes == 1200 and .[4].status == 200"
scen splitok 'send:[req("POST", "/v1/completions", 1300)[:40], 0.3, req("POST", "/v1/completions", 1300)[40:]]' read:1 upload:1010
check "an eligible head split over two sends: served (routed by kvgated), 200" \
    J splitok "$SPLICED and .[3].status == [200] and .[3].json[0].bytes == 1300 and .[4].status == 200"

# ---- bodies the verdict does not frame ----
CHUNK='req("POST", "/v1/completions", cl=False, headers=["transfer-encoding: chunked"]) + b"%x\r\n" % len(body(700)) + body(700) + b"\r\n0\r\n\r\n"'
scen chunked "send:$CHUNK" read:1 upload:1011
check "a chunked request: routed by kvgated (destination header), 200" \
    J chunked "$SPLICED and .[3].status == [200] and .[3].dest[0] != \"\" and .[3].json[0].bytes == 700"
scen chunkpipe "send:req(\"POST\", \"/v1/completions\", 1400) + $CHUNK" read:2 upload:1012
check "an eligible request and a chunked one in one send: both 200, the chunked one through kvgated" \
    J chunkpipe "$SPLICED and .[3].status == [200, 200] and .[3].dest[1] != \"\" and .[3].json[1].bytes == 700"
scen smuggle 'send:req("POST", "/v1/completions", 500, headers=["transfer-encoding: chunked"])' read:1
check "Content-Length with Transfer-Encoding: 400 from kvgated" J smuggle "$SPLICED and .[3].status == [400]"
scen expect 'send:[req("POST", "/v1/completions", 1500, headers=["expect: 100-continue"])[:-1500], 0.3, body(1500)]' read:1 upload:1013
check "Expect: 100-continue: kvgated answers 100 itself and routes it (destination header), 200" \
    J expect "$SPLICED and .[3].status == [200] and .[3].dest[0] != \"\" and .[3].json[0].bytes == 1500"
scen http10 'send:req("POST", "/v1/completions", 1600, version="HTTP/1.0")' read:1
check "an HTTP/1.0 request: routed by kvgated (destination header)" \
    J http10 "$SPLICED and .[3].status == [200] and .[3].dest[0] != \"\""

# ---- malformed heads: kvgated's parser answers 400 / 431 ----
scen fold 'send:req("POST", "/v1/completions", 300, headers=["x-a: b", " folded"])' read:1
check "obs-fold: 400 from kvgated" J fold "$SPLICED and .[3].status == [400]"
scen barelf 'send:req("POST", "/v1/completions", 300).replace(b"\r\n", b"\n")' read:1
check "bare LF line ends: 400 from kvgated" J barelf "$SPLICED and .[3].status == [400]"
scen spacecolon 'send:req("POST", "/v1/completions", 300, cl=False, headers=["content-length : 300"])' read:1
check "\"content-length : N\": 400 from kvgated" J spacecolon "$SPLICED and .[3].status == [400]"
scen ctl 'send:req("POST", "/v1/completions", 300, headers=["x-a: b\x01c"])' read:1
check "a control byte in a value: 400 from kvgated" J ctl "$SPLICED and .[3].status == [400]"
scen hdrs 'send:req("POST", "/v1/completions", 300, headers=["x-h%d: v" % i for i in range(70)])' read:1
check "70 header fields: 431 from kvgated" J hdrs "$SPLICED and .[3].status == [431]"

# ---- "mid": the end of a body and an ineligible request in one skb ----
scen mid 'send:[req("POST", "/v1/completions", 20000)[:-9000], 0.3, req("POST", "/v1/completions", 20000)[-9000:] + req("POST", "/admin/faults", b"{\"fail_rate\":1}")]' read:2 upload:1014
check "mid: the body's rest and POST /admin/faults in one send: 200 (whole body at the pod), then 404" \
    J mid "$SPLICED and .[3].status == [200, 404] and .[3].json[0].bytes == 20000 and .[4].status == 200"
scen midget 'send:[req("POST", "/v1/completions", 20000)[:-9000], 0.3, req("POST", "/v1/completions", 20000)[-9000:] + req("GET", "/v1/models", cl=False)]' read:2 upload:1015
check "mid: the body's rest and GET /v1/models in one send: 200, then kvgated's model list" \
    J midget "$SPLICED and .[3].status == [200, 200] and .[3].json[0].bytes == 20000 and
              ([.[3].json[1].data[].id] | index(\"$MODEL\") != null) and .[4].status == 200"
scen midok 'send:[req("POST", "/v1/completions", 20000)[:-9000], 0.3, req("POST", "/v1/completions", 20000)[-9000:] + req("POST", "/v1/completions", 1700)]' read:2 upload:1016
check "mid: the body's rest and an eligible request in one send: both 200, in order" \
    J midok "$SPLICED and .[3].status == [200, 200] and [.[3].json[].bytes] == [20000, 1700] and .[4].status == 200"

# ---- the drain flag (splice_drain's kernel half; SIGTERM is kvgated's) ----
# sets KVG_CFG_F_DRAIN (byte 54 of struct kvg_flow_cfg) in every spliced
# client socket's cfg, as splice_drain does for its connection
cat >"$E2E_TMP/drainflag.py" <<PYEOF
import json, subprocess
m = "$PIN/maps/kvg_flow_cfg"
n = 0
for e in json.loads(subprocess.check_output(["bpftool", "map", "dump", "pinned", m, "-j"])):
    v = e["formatted"]["value"]
    if v["dir"] == 1 and v["mode"] == 1:
        val = [int(x, 16) for x in e["value"]]
        val[54] |= 1
        subprocess.check_call(["bpftool", "map", "update", "pinned", m, "key", "hex"] +
                              [x[2:] for x in e["key"]] + ["value", "hex"] + ["%02x" % b for b in val])
        n += 1
print(n)
PYEOF
GD0=$(m 'kvgate_unsplices_total{cause="gw_draining"}')
scen drain "run:$PY $E2E_TMP/drainflag.py" upload:1020 upload:1021
check "the drain flag in a spliced flow's cfg: its next request is handed up, served by kvgated (routed)" bash -c \
    "jq -s -e '$SPLICED and .[2].out == \"1\" and .[3].status == 200 and .[3].dest != \"\" and .[3].json.bytes == 1020' $E2E_TMP/drain.jsonl >/dev/null &&
     [ \$(( \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_unsplices_total\\{cause=\"gw_draining\"/ {print \$2}') - $GD0 )) = 1 ]"

# ---- what the pods saw, what was counted ----
curl -s http://127.0.0.1:$CP/admin/seen >"$E2E_TMP/seen.json"
OTHER=$(jq '[.[] | select(test("^POST /v1/(chat/)?completions(\\?.*)?$") | not)] | length' "$E2E_TMP/seen.json")
RAW=$(cat "$E2E_TMP"/*.jsonl | jq -R -s '[split("\n")[] | fromjson? | select(has("out") and (.step | startswith("run:bpftool"))) | .out | tonumber] | add')
echo "   requests to other paths that reached a pod: $OTHER; sockets seen relaying raw bytes: $RAW"
check "the count pod saw only inference requests (POST /v1/completions, /v1/chat/completions)" bash -c \
    "[ $OTHER = 0 ] || { jq -c '[.[] | select(test(\"^POST /v1/(chat/)?completions(\\\\?.*)?\$\") | not)]' $E2E_TMP/seen.json; false; }"
check "no flow was ever relayed as raw bytes (no kvg_flow_cfg in mode RAW)" test "$RAW" = 0
check "hand-ups counted under their causes (filtered, too_large, incomplete, too_many, unparsable, unframed)" bash -c \
    "for c in filtered too_large incomplete too_many unparsable unframed; do
         v=\$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk -v k=\"kvgate_unsplices_total{cause=\\\"\$c\\\"}\" 'index(\$0, k\" \")==1 {print \$2}');
         [ \"\${v:-0}\" -ge 1 ] || { echo \"cause \$c: \${v:-absent}\"; exit 1; }; done"
check "kvgated still serves; no flow left spliced" bash -c \
    "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$GW_PORT/health) = 200 ] &&
     [ \"\$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_splice_flows / {print \$2}')\" = 0 ]"
kill $GW_PID; wait $GW_PID 2>/dev/null
check "kvgated exited cleanly" bash -c "grep -q 'shutting down' $E2E_TMP/kvgated.log && \
    ! grep -qiE 'error|invalid|libbpf' $E2E_TMP/kvgated.log"
finish
