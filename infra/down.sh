#!/usr/bin/env bash
# Stops what infra/up.sh started (Kafka, the registry); leaves alone what it found running.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
for svc in registry kafka; do
  pidfile="$LOCAL/$svc.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $svc (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
done
