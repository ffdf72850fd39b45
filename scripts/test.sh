#!/usr/bin/env bash
# The whole test suite: checks (and as root installs) the system tools the
# integration tests drive, then runs vitest and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool → Debian package
declare -A NEED=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [podman]=podman
  [containerd]=containerd
  [ctr]=containerd
  [redis-server]=redis-server
  [tar]=tar
  [wrk]=wrk
  [nginx]=nginx-light           # the bench's physical reference (test/bench/quick.test.ts)
  [curl]=curl                   # the bench's concurrent cold GETs
  [unshare]=util-linux
  [kubectl]=kubernetes-client   # kubectl kustomize builds deploy/kubernetes in test/deploy
  [setpriv]=util-linux          # the production-install test runs tug as a non-root user
  [openssl]=openssl             # the test token server's self-signed certificate (test/helpers/token-server.ts)
)
missing=()
for tool in "${!NEED[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${NEED[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing test dependencies: $pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  else
    echo "tests need: $pkgs — run: sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
fi

[ -d node_modules ] || npm ci
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$summary" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$summary" 2>/dev/null || true
exit $status
