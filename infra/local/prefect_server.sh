#!/usr/bin/env bash
# Start/stop a local Prefect server (SQLite under $PREFECT_HOME) for `make run` and the tests.
# One server per host saves the 6-14 s ephemeral start-up that every DVC stage process would pay.
#   infra/local/prefect_server.sh start [PORT]   -> prints the API URL once /api/health answers
#   infra/local/prefect_server.sh stop
set -euo pipefail
cmd=${1:?usage: prefect_server.sh start [PORT] | stop}
port=${2:-4200}
: "${PREFECT_HOME:=$PWD/.prefect}"
export PREFECT_HOME PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"
pidfile="$PREFECT_HOME/server.pid"
bin=$(dirname "$(command -v python)")
case "$cmd" in
  start)
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "http://127.0.0.1:$port/api"; exit 0
    fi
    "$bin/prefect" server start --host 127.0.0.1 --port "$port" >"$PREFECT_HOME/server.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do   # a fresh database needs ~12 s of migrations on 2 cores
      if curl -sf "http://127.0.0.1:$port/api/health" >/dev/null; then
        echo "http://127.0.0.1:$port/api"; exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$PREFECT_HOME/server.log" >&2; exit 1; }
      sleep 0.5
    done
    echo "Prefect server did not become healthy in 60 s; see $PREFECT_HOME/server.log" >&2; exit 1 ;;
  stop)
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
