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
