#!/usr/bin/env bash
# kvgated's access log with a reader that stops reading (issue 9, finding 7).
# The log is a FIFO whose reader stalls: 6000 requests are all answered
# (none blocked), /health answers, kvgate_access_log_dropped_total counts
# the lines that did not fit; when the reader resumes, new lines flow
# again, and every line that arrived is whole JSON. SIGTERM still ends
# kvgated cleanly (the log's thread takes no signals).
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
d=$E2E_TMP
mkfifo $d/alog
exec 3<>$d/alog # a reader that never reads (until the end)
start_podsim --pods 1 --time-scale 0.01 || setup_failed "podsim"
start_gateway --access-log $d/alog || setup_failed "kvgated"

/usr/bin/python3 tests/hostile/control_loadclient.py $GW_PORT 8 6000 --timeout 3 >$d/load.json
echo "reader stalled, 6000 requests: $(cat $d/load.json)"
check "all 6000 answered, none blocked" jq -e '.ok == 6000 and .blocked == 0' $d/load.json
check "/health answers while the log is stalled" \
    [ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' http://127.0.0.1:$GW_PORT/health)" = 200 ]
dropped=$(metric_value kvgate_access_log_dropped_total)
echo "lines dropped: $dropped"
check "the dropped lines are counted" [ "${dropped%.*}" -gt 0 ]

cat <&3 >$d/lines & CATP=$!
E2E_PIDS+=($CATP)
exec 3>&-
# the backlog (the ring's lines) has reached the reader: $d/lines grew,
# then stopped growing
last=-1
drained() {
    local n; n=$(stat -c %s $d/lines)
    echo "reader got $n bytes (before: $last)"
    [ "$n" -gt 0 ] && [ "$n" = "$last" ] || { last=$n; return 1; }
}
wait_until 10 drained
/usr/bin/python3 tests/hostile/control_loadclient.py $GW_PORT 2 20 --timeout 3 \
    --header 'x-session-id: after-resume' >$d/load2.json
resumed() { [ "$(grep -c '"session":"after-resume"' $d/lines)" = 20 ]; }
wait_until 10 resumed
check "after the reader resumes, new lines arrive" \
    [ "$(grep -c '"session":"after-resume"' $d/lines)" = 20 ]
check "every line that arrived is whole JSON" /usr/bin/python3 -c "
import json, sys
n = 0
for l in open('$d/lines'):
    json.loads(l); n += 1
print(n, 'lines'); sys.exit(0 if n > 20 else 1)"
kill $GW_PID; wait $GW_PID; rc=$?
check "SIGTERM: kvgated exits 0, saying so (exit $rc)" \
    bash -c "[ $rc = 0 ] && grep -q 'shutting down' $E2E_TMP/kvgated.log"
finish
