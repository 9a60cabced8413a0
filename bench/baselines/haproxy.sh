# bench/baselines/haproxy.sh (sourced by bench/run): the HAProxy baseline.
#
# haproxy_conf DIR THREADS PORT POD_URL...
#   writes DIR/haproxy.cfg: HTTP mode, `balance leastconn` over the pods,
#   keep-alive on both sides (http-server-close off: `option
#   http-keep-alive`, HAProxy's default; idle server connections reused
#   with the default `http-reuse safe`), timeouts long enough for 10-minute
#   streams, no health checks (podsim never fails in the benchmark), no
#   logging; `option http-no-delay` so that each SSE event is sent at once
#   (without it HAProxy sends with MSG_MORE and the kernel holds small
#   chunks back: events arrive coalesced, ITL 0, TTFT +100 ms).
#   Run it in the foreground with
#     haproxy -db -f DIR/haproxy.cfg -p DIR/haproxy.pid
haproxy_conf() {
    local dir=$1 threads=$2 port=$3 u i=0 servers=""
    shift 3
    for u in "$@"; do servers+="    server pod$i ${u#http://}"$'\n'; i=$((i + 1)); done
    cat >"$dir/haproxy.cfg" <<CONF
global
    nbthread $threads
    maxconn 8000
    pidfile $dir/haproxy.pid
defaults
    mode http
    option http-keep-alive
    option http-no-delay
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-request 30s
    timeout http-keep-alive 120s
frontend fe
    bind 127.0.0.1:$port
    default_backend pods
backend pods
    balance leastconn
$servers
CONF
}
