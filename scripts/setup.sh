#!/usr/bin/env bash
# Installs the Debian 12 packages pgraph builds and runs against, and only the missing ones.
# Idempotent and silent when everything is present. Runs as root (or through sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache
  libtorch-dev libopenblas0-pthread
  librocksdb-dev liblmdb-dev libtbb-dev libzstd-dev zlib1g-dev
  libflatbuffers-dev flatbuffers-compiler
  catch2 libcli11-dev libfmt-dev libxxhash-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
