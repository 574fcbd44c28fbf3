#!/usr/bin/env bash
# One-file builds of the collector, BPF objects built in (scripts/embed_bpf.ts):
#   scripts/package.sh bundle    build/ebpf-collector.js, run with `deno run <flags>`; offline
#   scripts/package.sh compile   build/ebpf-collector, a self-contained executable
# `deno compile` needs denort, Deno's runtime without its tooling, which it downloads unless
# DENORT_BIN names a local copy; where it cannot be downloaded this says what to do.
# The compiled binary holds the permission flags `--explain` prints for PIPELINE (default
# pipeline.yaml): rebuild it for a pipeline that needs more.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-bundle}"

bash scripts/build_bpf.sh
deno run --quiet --allow-read=build/bpf --allow-write=build/dist scripts/embed_bpf.ts

case "$what" in
bundle)
  deno bundle --quiet --platform deno -o build/ebpf-collector.js build/dist/entry.ts
  echo "bundle: build/ebpf-collector.js ($(du -h build/ebpf-collector.js | cut -f1));" \
    "run it with the flags --explain prints, e.g." >&2
  echo "  deno run --allow-ffi ... build/ebpf-collector.js --pipeline pipeline.yaml" >&2
  ;;
compile)
  version=$(deno --version | sed -n 's/^deno \([0-9.]*\).*/\1/p')
  cached=$(ls "${DENO_DIR:-$HOME/.cache/deno}"/dl/release/v"$version"/denort-* 2>/dev/null | head -n 1 || true)
  if [ -n "${DENORT_BIN:-}" ]; then
    if [ ! -x "$DENORT_BIN" ]; then
      echo "compile: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
      exit 1
    fi
  elif [ -z "$cached" ]; then
    echo "compile: deno compile needs denort $version, which is not cached and may not be" \
      "downloadable here. Get denort-x86_64-unknown-linux-gnu.zip of Deno $version from" \
      "Deno's GitHub releases on a machine that can, unzip it, and run" \
      "DENORT_BIN=/path/to/denort deno task compile; or use deno task bundle (works offline)." >&2
    exit 1
  fi
  pipeline="${PIPELINE:-pipeline.yaml}"
  # The flags --explain derives for the pipeline, one a line, read into an array: a path with
  # a space (or "x --allow-all") stays one flag. Paths with a line break are refused.
  listed=$(deno run --quiet --allow-read --allow-env --allow-sys=hostname scripts/run_flags.ts \
    "$pipeline")
  mapfile -t flags <<<"$listed"
  deno compile --quiet "${flags[@]}" --no-prompt -o build/ebpf-collector build/dist/entry.ts
  echo "compile: build/ebpf-collector ($(du -h build/ebpf-collector | cut -f1)) with ${flags[*]}" >&2
  ;;
*)
  echo "usage: scripts/package.sh bundle|compile" >&2
  exit 2
  ;;
esac
