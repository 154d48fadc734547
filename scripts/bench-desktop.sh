#!/usr/bin/env bash
# Footprint of HAPI Desktop (its `desktop` release profile) in a headless desktop: cold start to
# tray ready, idle memory of every process of the app with the window closed
# and open (WebKit's web and network processes included), idle wake-ups, and the
# binary's size. Results go to stdout; docs/benchmarks.md records them.
#
#   scripts/bench-desktop.sh            # builds the release app if needed
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "${1:-}" != "--inner" ]; then
  cargo build --profile desktop -p hapi-desktop --features custom-protocol
  exec xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" dbus-run-session -- "$0" --inner
fi

APP=$ROOT/target/desktop/hapi-desktop
WORK=$(mktemp -d)
export HOME=$WORK/home HAPI_KEYCHAIN=off HAPI_LISTEN_PORT=0 NO_AT_BRIDGE=1
mkdir -p "$HOME"
status-notifier-watcher >/dev/null 2>&1 & WATCHER=$!
dunst >/dev/null 2>&1 & DUNST=$!
cleanup() { kill "$WATCHER" "$DUNST" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
until busctl --user status org.kde.StatusNotifierWatcher >/dev/null 2>&1; do sleep 0.05; done

registered() {
  busctl --user get-property org.kde.StatusNotifierWatcher /StatusNotifierWatcher \
    org.kde.StatusNotifierWatcher RegisteredStatusNotifierItems | grep -qv '^as 0$'
}
# The app and everything it started (WebKit's helper processes).
tree() {
  local pids=$1 frontier=$1 next
  while [ -n "$frontier" ]; do
    next=""
    for p in $frontier; do next+=" $(cat /proc/"$p"/task/*/children 2>/dev/null)"; done
    frontier=$(echo $next)
    pids+=" $frontier"
  done
  echo $pids
}
sum_kb() { # field (Rss or Pss) over pids
  local field=$1; shift; local total=0 v
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1==f {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo $total
}
switches() { # voluntary + involuntary context switches of every thread
  local total=0 p
  for p in "$@"; do
    for s in /proc/"$p"/task/*/status; do
      total=$((total + $(awk '/ctxt_switches/ {s+=$2} END {print s+0}' "$s" 2>/dev/null || echo 0)))
    done
  done
  echo $total
}
stop_app() {
  kill -TERM "$1"; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

echo "== cold start to tray ready (5 starts, each with a new HAPI_HOME)"
times=()
for i in 1 2 3 4 5; do
  export HAPI_HOME=$WORK/home-$i
  t0=$(date +%s%N)
  "$APP" --minimized >/dev/null 2>&1 & pid=$!
  until registered; do sleep 0.005; done
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000000 )))
  stop_app $pid
  while registered; do sleep 0.05; done
done
echo "tray ready after (ms): ${times[*]}"
printf 'median: %s ms\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)"

echo "== idle, window closed (started --minimized), after 10 s"
export HAPI_HOME=$WORK/home-idle
"$APP" --minimized >/dev/null 2>&1 & pid=$!
until registered; do sleep 0.05; done
sleep 10
pids=$(tree $pid)
echo "processes: $(echo $pids | wc -w)  RSS: $(( $(sum_kb Rss $pids) / 1024 )) MiB  PSS: $(( $(sum_kb Pss $pids) / 1024 )) MiB"
echo "largest mappings (RSS kB):"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name=($6 == "" ? "[anon]" : $6)} /^Rss:/ {rss[name]+=$2} END {for (n in rss) print rss[n], n}' \
  /proc/$pid/smaps | sort -rn | head -8 | sed 's/^/  /'
s0=$(switches $pids); c0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep 30
s1=$(switches $pids); c1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "idle 30 s: $((s1 - s0)) context switches ($(( (s1 - s0) / 30 ))/s), $((c1 - c0)) CPU ticks"
stop_app $pid; while registered; do sleep 0.05; done

echo "== idle, window open, after 15 s"
export HAPI_HOME=$WORK/home-open
"$APP" >/dev/null 2>&1 & pid=$!
until registered; do sleep 0.05; done
sleep 15
pids=$(tree $pid)
echo "processes: $(echo $pids | wc -w) ($(for p in $pids; do cat /proc/$p/comm; done | sort | uniq -c | tr -s ' \n' ' '))"
echo "RSS: $(( $(sum_kb Rss $pids) / 1024 )) MiB  PSS: $(( $(sum_kb Pss $pids) / 1024 )) MiB"
s0=$(switches $pids); sleep 30; s1=$(switches $pids)
echo "idle 30 s with the window open: $((s1 - s0)) context switches ($(( (s1 - s0) / 30 ))/s)"
stop_app $pid

echo "== binary"
size=$(stat -c %s "$APP")
strip -o "$WORK/stripped" "$APP"
# MB as in the target (10^6 bytes), one decimal: whole MiB hid 16.3 MB as "15".
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB (%.1f MiB)", b / 1e6, b / 1048576 }'; }
echo "release binary: $(mb "$size") ($size bytes); stripped: $(mb "$(stat -c %s "$WORK/stripped")")"
