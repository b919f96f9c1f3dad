#!/usr/bin/env bash
# The whole service offline: the simulated Binance (SPOT) and candle-server against it, with the
# HTTP API on a free local port. Ctrl-C stops both. Data goes to ./demo (DEMO_DIR to change).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -f dist/cli/main.js ]] || [[ -n "$(find src -newer dist/cli/main.js -print -quit)" ]]; then
  echo "demo: building..." >&2
  npm run build --silent
fi

dir="${DEMO_DIR:-./demo}"
mkdir -p "$dir"
rm -f "$dir/sim.json"
node dist/cli/main.js sim --markets SPOT --write-config "$dir" --port-file "$dir/sim.json" >/dev/null &
sim=$!
trap 'kill -TERM "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  [[ -f "$dir/sim.json" ]] && break
  kill -0 "$sim" 2>/dev/null || { echo "demo: the simulator did not start" >&2; exit 1; }
  sleep 0.1
done
[[ -f "$dir/sim.json" ]] || { echo "demo: the simulator did not start within 10 s" >&2; exit 1; }

echo "demo: simulated exchange: $(cat "$dir/sim.json")" >&2
echo "demo: starting candle-server; the HTTP API's address is logged below (open /chart in a browser, or try /health, /metrics, /symbols, /candles/BTCUSDT?interval=1h, or Binance's own /api/v3/klines?symbol=BTCUSDT&interval=5m&limit=3). Ctrl-C stops." >&2
node dist/cli/main.js start --config "$dir/spot.json" || true
