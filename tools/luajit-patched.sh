#!/usr/bin/env bash
# Builds Debian's luajit2 source with tools/luajit/pcall-return.patch into
# build/luajit-patched/: the shared library lib/libluajit-5.1.so.2 (the
# soname asyncrt and nginx's Lua module link, so
# LD_LIBRARY_PATH=build/luajit-patched/lib runs either on it; Debian's
# luajit binary is linked statically) and a luajit binary. Opt-in: asyncrt runs on Debian's luajit2 by default (see
# docs/performance.md, "the LuaJIT limit behind the slow mode"). The source
# tarball comes from Debian's archive (deb.debian.org) and is checked
# against the sha256 of the Debian source package (the .dsc) of the same
# version. Prints the library's directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
VER="${LUAJIT2_VERSION:-2.1-20230119}"          # the upstream part of bookworm's luajit2 version
SHA256="583c8094aeb7a6e7ca1b1b3549de1b8b0e6965e81cf6e0ab0245b8d28dfc6bfa"   # from luajit2_2.1-20230119-1.dsc
URL="http://deb.debian.org/debian/pool/main/l/luajit2/luajit2_${VER}.orig.tar.xz"
OUT=build/luajit-patched
SRC="$OUT/luajit2-$VER"
if [ -f "$OUT/lib/libluajit-5.1.so.2" ] && [ "$OUT/lib/libluajit-5.1.so.2" -nt tools/luajit/pcall-return.patch ]; then
  echo "$PWD/$OUT/lib"
  exit 0
fi
mkdir -p "$OUT"
TAR="$OUT/luajit2_${VER}.orig.tar.xz"
if [ ! -f "$TAR" ]; then
  command -v curl >/dev/null || { echo "luajit-patched: curl is needed (apt-get install curl)" >&2; exit 1; }
  curl -fsS -o "$TAR.part" "$URL" || { echo "luajit-patched: could not fetch $URL" >&2; exit 1; }
  mv "$TAR.part" "$TAR"
fi
if [ "$VER" = 2.1-20230119 ]; then   # another version: set LUAJIT2_VERSION and check its .dsc yourself
  echo "$SHA256  $TAR" | sha256sum -c --quiet - || { echo "luajit-patched: $TAR does not match the .dsc's sha256" >&2; rm -f "$TAR"; exit 1; }
fi
rm -rf "$SRC"
tar -xJf "$TAR" -C "$OUT"
patch -s -d "$SRC" -p1 < tools/luajit/pcall-return.patch
make -s -C "$SRC" -j2 >/dev/null
cp "$SRC/src/luajit" "$OUT/luajit"
rm -rf "$OUT/jit" "$OUT/lib"
cp -r "$SRC/src/jit" "$OUT/jit"   # -jv, -jp and jit.util's companions for this build
mkdir -p "$OUT/lib"
cp "$SRC/src/libluajit.so" "$OUT/lib/libluajit-5.1.so.2"
echo "$PWD/$OUT/lib"
