# Shell helpers shared by scripts/ and tests/e2e/ (sourced, not run).

# Prints the first port of n consecutive free TCP ports on 127.0.0.1, chosen
# at random below the kernel's ephemeral range (so no outgoing connection
# can be holding one) so that parallel runs rarely collide.
free_port_range() {
    local n=${1:-1} base try i busy lo=32768 span
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    span=$((lo - 10000 - n))
    [ $span -gt 1000 ] || span=1000
    for try in $(seq 1 200); do
        base=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        busy=0
        for i in $(seq 0 $((n - 1))); do
            if (exec 3<>/dev/tcp/127.0.0.1/$((base + i))) 2>/dev/null; then busy=1; break; fi
            if ss -Hltn "sport = :$((base + i))" 2>/dev/null | grep -q .; then busy=1; break; fi
        done
        [ $busy -eq 0 ] && { echo $base; return 0; }
    done
    return 1
}

# Waits until URL answers 200 (10 s at most).
wait_http() {
    local i
    for i in $(seq 1 100); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}

# Prometheus (issue 13: scripts/observe.sh, tests/e2e/prometheus_rules.sh).
# prom_config FILE RULES KVGATED_ADMIN POD... writes a prometheus.yml that
# scrapes kvgated's admin listener (host:port; its /metrics) as job
# "kvgated" and each pod (host:port) as job "pods", every second, and
# evaluates RULES (a path) every second: short enough that a test or a demo
# sees its figures move within seconds.
prom_config() {
    local out=$1 rules=$2 gw=$3 p pods=""
    shift 3
    for p in "$@"; do pods+="${pods:+, }'$p'"; done
    cat >"$out" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - '$(realpath "$rules")'
scrape_configs:
  - job_name: kvgated
    static_configs:
      - targets: ['$gw']
  - job_name: pods
    static_configs:
      - targets: [$pods]
YAML
}

# prom_start CONFIG DATA-DIR LOG: starts Prometheus on a free loopback port
# (retried: another process may take it between check and bind); sets
# PROM_PORT and PROM_PID once /-/ready answers. The caller kills PROM_PID.
prom_start() {
    local try
    for try in 1 2 3; do
        PROM_PORT=$(free_port_range 1)
        prometheus --config.file="$1" --storage.tsdb.path="$2" \
            --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$3" 2>&1 &
        PROM_PID=$!
        local i
        for i in $(seq 1 100); do
            curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PROM_PORT/-/ready" && return 0
            kill -0 $PROM_PID 2>/dev/null || break
            sleep 0.1
        done
        kill $PROM_PID 2>/dev/null
        wait $PROM_PID 2>/dev/null
    done
    cat "$3" >&2
    return 1
}

# prom_query PORT EXPR: the instant query's result vector, one line a
# series: labels as JSON, then the value (jq -c)
prom_query() {
    curl -sf --max-time 5 --data-urlencode "query=$2" "http://127.0.0.1:$1/api/v1/query" |
        jq -c '.data.result[] | [.metric, (.value[1] | tonumber)]'
}
