#!/usr/bin/env bash
# Prepares this machine to build for x86_64-pc-windows-gnu and run the
# result under Wine: packages, the Rust target, a Wine prefix, and the
# ProcessPrng stand-in Wine 8 lacks. Prints the environment to use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -x /usr/lib/wine/wine64 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wine64 gcc-mingw-w64-x86-64
fi
rustup target add x86_64-pc-windows-gnu >/dev/null

export WINEDEBUG=-all
export WINEPREFIX="${WINEPREFIX:-$(cd "$here/../.." && pwd)/target/wine}"
if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
    # No Mono or Gecko: nothing here needs them, and their installers would prompt.
    WINEDLLOVERRIDES="mscoree,mshtml=" /usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w || true
fi
out="$(mktemp -d)"
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" \
    "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -ladvapi32
cp "$out/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
rm -rf "$out"
