#!/usr/bin/env bash
# Compiles bpf/*.bpf.c into build/bpf/*.bpf.o (CO-RE, BTF-relocated at load time), and the
# test-only programs test/bpf/*.bpf.c into build/bpf/test/.
# vmlinux.h is generated from this kernel's BTF into build/ (never committed). An object is
# rebuilt only when its source, a header, or vmlinux.h is newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG="${CLANG:-$(command -v clang-16 || command -v clang || true)}"
BPFTOOL="${BPFTOOL:-$(command -v bpftool || true)}"
OUT=build/bpf
[ -n "$CLANG" ] || { echo "build: clang-16 not found: run ./scripts/setup.sh" >&2; exit 1; }
[ -n "$BPFTOOL" ] || { echo "build: bpftool not found: run ./scripts/setup.sh" >&2; exit 1; }
[ -r /sys/kernel/btf/vmlinux ] || { echo "build: no /sys/kernel/btf/vmlinux (kernel without BTF)" >&2; exit 1; }
mkdir -p "$OUT/test"

# vmlinux.h follows the running kernel: regenerate when the kernel release changes.
stamp="$OUT/vmlinux.release"
if [ ! -s "$OUT/vmlinux.h" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(uname -r)" ]; then
  "$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c > "$OUT/vmlinux.h.tmp"
  mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"
  uname -r > "$stamp"
  echo "build: generated $OUT/vmlinux.h for $(uname -r)" >&2
fi

arch=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
built=0
for src in bpf/*.bpf.c test/bpf/*.bpf.c; do
  case "$src" in test/*) dir="$OUT/test" ;; *) dir="$OUT" ;; esac
  obj="$dir/$(basename "${src%.c}").o"
  if [ -f "$obj" ] && [ -z "$(find "$src" bpf/*.h "$OUT/vmlinux.h" -newer "$obj" 2>/dev/null)" ]; then
    continue
  fi
  "$CLANG" -g -O2 -target bpf -D__TARGET_ARCH_"$arch" -Wall -Werror \
    -I"$OUT" -Ibpf -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
  echo "build: $src -> $obj" >&2
  built=$((built + 1))
done
echo "build: $built object(s) rebuilt; $(ls "$OUT"/*.bpf.o "$OUT"/test/*.bpf.o | wc -l) up to date in $OUT" >&2
