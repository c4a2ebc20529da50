#!/usr/bin/env bash
# Builds HashiCorp Vault from tools/vault (the version its go.mod requires)
# into tools/bin/vault, for the tests of the Vault secrets backend. Does
# nothing when that binary is there and is that version already; the first
# build compiles all of Vault and takes minutes.
set -euo pipefail
cd "$(dirname "$0")"
bin=../bin/vault
want="$(awk '$1 == "require" && $2 == "github.com/hashicorp/vault" { print $3 }' go.mod)"
if [ -z "$want" ]; then
  echo "tools/vault/go.mod does not require github.com/hashicorp/vault" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pylee/vault-$want"
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "^Vault $want,"; then
  echo "tools/bin/vault: Vault $want is built"
  [ -x "$cache" ] || { mkdir -p "$(dirname "$cache")" && cp "$bin" "$cache.tmp.$$" && mv "$cache.tmp.$$" "$cache"; } || true
  exit 0
fi
# A clean clone on a machine that built it before (CI) takes it from the
# user's cache instead of compiling Vault again.
if [ -x "$cache" ] && "$cache" version 2>/dev/null | grep -q "^Vault $want,"; then
  mkdir -p ../bin
  cp "$cache" "$bin"
  echo "tools/bin/vault: Vault $want from $cache"
  exit 0
fi
echo "tools/bin/vault: building Vault $want (GOWORK=off: this module is outside go.work)"
start=$SECONDS
mkdir -p ../bin
# Build beside the target and rename, so an interrupted build leaves no
# half-written binary that a later run would take for a finished one.
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
GOWORK=off go build -o "$tmp" .
mv "$tmp" "$bin"
mkdir -p "$(dirname "$cache")" && cp "$bin" "$cache.tmp.$$" && mv "$cache.tmp.$$" "$cache" || true
echo "tools/bin/vault: $("$bin" version) in $((SECONDS - start)) s"
