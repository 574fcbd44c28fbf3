#!/usr/bin/env bash
# Installs what the collector and its tests need on a Debian/Ubuntu host, then builds the BPF
# objects. Idempotent: installs only what is missing, runs `apt-get update` at most once.
set -euo pipefail

DENO_VERSION="2.9.6"
# The first five build and run the collector; the rest are what its tests compare against or
# drive: tmux (interactive bash), iproute2 (ss, nstat, ip netns), iperf3, iptables (loss),
# dnsmasq-base (a DNS server), bind9-dnsutils (dig), tcpdump (DNS timings to compare with),
# influxdb (1.6, a receiver for the http output), prometheus (scrapes the prometheus output),
# victoria-metrics (the scale-out store of docs/fleet.md, fed by the http output), strace (shows
# the collector connects to nothing but its receivers), python3 (sockets Deno cannot make:
# TCP_SYNCNT, SO_LINGER 0, tiny receive buffers), curl (a command's traffic in bash tests).
APT_PACKAGES=(clang-16 llvm-16 libbpf1 libbpf-dev bpftool tmux iproute2 iperf3 iptables
  dnsmasq-base bind9-dnsutils tcpdump influxdb prometheus victoria-metrics strace python3 curl)

cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (needs apt-get, and the collector needs CAP_BPF and CAP_PERFMON)"
[ -r /sys/kernel/btf/vmlinux ] ||
  die "no BTF at /sys/kernel/btf/vmlinux: this kernel was built without CONFIG_DEBUG_INFO_BTF, which CO-RE needs"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${APT_PACKAGES[*]}"
fi

if [ "$(deno --version 2>/dev/null | head -n1 | awk '{print $2}')" != "$DENO_VERSION" ]; then
  command -v npm >/dev/null || die "npm not found; Deno is installed from the npm package 'deno'"
  say "installing deno $DENO_VERSION from npm"
  npm install -g --silent "deno@$DENO_VERSION" >/dev/null 2>&1 || die "npm install -g deno@$DENO_VERSION failed"
  hash -r
fi
say "$(deno --version | head -n1) at $(command -v deno)"

say "building BPF objects"
deno task build 2>&1 | sed "s/^/setup: /" >&2 || die "BPF build failed"
