#!/usr/bin/env bash
# Installs what relua's build, tests and demo need, when it is missing.
# Debian packages through apt-get (as root; otherwise prints the exact command and stops),
# then the npm test servers from tests/npm/package-lock.json into tests/npm/node_modules.
# Idempotent, and fast when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential pkg-config
  lua5.4 liblua5.4-dev lua-cjson lua-busted
  libgit2-dev libcurl4-openssl-dev libyaml-dev libssl-dev libreadline-dev libarchive-dev
  libpq-dev postgresql-15
  git lighttpd openssh-server openssl curl twine python3 python3-pip nodejs npm
  strace valgrind clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  # nodejs/npm may come from elsewhere than Debian: a working binary is enough.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm)    command -v npm  >/dev/null 2>&1 && continue ;;
  esac
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "relua: missing Debian packages: ${missing[*]}" >&2
    echo "relua: install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm test servers (verdaccio), pinned by the committed lock file.
if [ -f tests/npm/package-lock.json ]; then
  stamp=tests/npm/node_modules/.relua-lock.sha256
  want=$(sha256sum tests/npm/package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "deps: installing npm test servers (tests/npm)"
    (cd tests/npm && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$stamp"
  fi
fi
