#!/usr/bin/env bash
# The gateway's own lack of resources is not a pod's failure (issue 9,
# finding 10): with kvgated out of file descriptors, requests get 503
# "out of resources" from the gateway, no pod is marked down or ejected, and
# once descriptors are back the very next request is served.
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "binaries not built"
command -v prlimit >/dev/null || skip_all "prlimit not installed"
M=meta-llama/Llama-3.1-8B-Instruct
start_podsim --pods 2 --time-scale 0.1 || setup_failed "podsim"
# one worker and few control-thread connections, so the fd count holds still
start_gateway --workers 1 || setup_failed "kvgated"
body='{"model":"'$M'","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"ignore_eos":true}'
NOFILE=$(prlimit --pid $GW_PID --nofile --output SOFT --noheadings)
nfds() { ls /proc/$GW_PID/fd | wc -l; }
# room for exactly one more descriptor: a client's accept takes it, so the
# pod connection's socket() meets EMFILE
prlimit --pid $GW_PID --nofile=$(( $(nfds) + 1 )): || setup_failed "prlimit"
: >"$E2E_TMP/st"
for i in $(seq 1 8); do
    curl -s -o "$E2E_TMP/b$i" -w '%{http_code}\n' --max-time 5 -H 'content-type: application/json' \
        -d "$body" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >>"$E2E_TMP/st"
done
prlimit --pid $GW_PID --nofile=$NOFILE:
t_503() { # (a descriptor the control thread frees now and then lets one through)
    sort "$E2E_TMP/st" | uniq -c
    local i n=0
    for i in $(seq 1 8); do
        [ "$(sed -n ${i}p "$E2E_TMP/st")" = 503 ] || continue
        cat "$E2E_TMP/b$i"; echo
        jq -e '.error.code == 503 and (.error.message | test("out of resources"))' "$E2E_TMP/b$i" >/dev/null || return 1
        n=$((n + 1))
    done
    [ $n -ge 1 ] && ! grep -qvE '^(200|503)$' "$E2E_TMP/st"
}
check "out of file descriptors: the gateway answers 503 'out of resources' itself, never 502" t_503
t_no_pod_blamed() {
    curl -s http://127.0.0.1:$GW_ADMIN/metrics | grep -E '^kvgate_pod_(failed|ejected|ejections_total)'
    [ "$(curl -s http://127.0.0.1:$GW_ADMIN/metrics |
         awk '/^kvgate_pod_(failed|ejected|ejections_total)\{/ {s += $NF} END {print s + 0}')" = 0 ]
}
check "  no pod marked down or ejected for it" t_no_pod_blamed
check "  counted as a local error: kvgate_local_errors_total{where=\"upstream\",errno=\"EMFILE\"}" bash -c \
    "[ \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_local_errors_total\\{where=\"upstream\",errno=\"EMFILE\"\\}/ {print \$NF + 0}') -ge 1 ]"
t_back() {
    local st
    st=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d "$body" \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions")
    echo "status $st"; [ "$st" = 200 ]
}
check "  descriptors back: the next request is served at once" t_back
finish
