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
  git lighttpd openssh-server openssl curl twine python3 python3-pip python3-packaging python3-build flit time
  nodejs npm
  strace valgrind clang-14 libclang-rt-14-dev
  scdoc zsh lua-check shellcheck cppcheck
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

# npm packages pinned by a committed lock file, installed into DIR/node_modules when the
# lock changed: the test servers (tests/npm, verdaccio) always; the benchmarks' baselines
# (bench/npm, semantic-release) for `tools/deps.sh bench`.
npm_install() {  # DIR LABEL
  local dir=$1 stamp want
  [ -f "$dir/package-lock.json" ] || return 0
  stamp=$dir/node_modules/.relua-lock.sha256
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "deps: installing $2 ($dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$stamp"
  fi
}
npm_install tests/npm "npm test servers"
if [ "${1:-}" = bench ]; then npm_install bench/npm "benchmark baselines"; fi
