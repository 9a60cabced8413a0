# Shell helpers shared by scripts/ and tests/e2e/ (sourced, not run).

# Prints the first port of n consecutive free TCP ports on 127.0.0.1, chosen
# at random in 20000-59999 so parallel runs rarely collide.
free_port_range() {
    local n=${1:-1} base try i busy
    for try in $(seq 1 200); do
        base=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
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
