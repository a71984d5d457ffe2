#!/usr/bin/env bash
# The gatewise stack beyond one process, as local processes: a Prefect server on PostgreSQL, a
# process work pool with workers, the registry on the same PostgreSQL, `gatewise serve` replicas.
# Usage: infra/stack.sh start|stop|status|env      (settings: see infra/README.md)
set -euo pipefail

STACK_DIR="${GATEWISE_STACK_DIR:-.gatewise-stack}"
DATABASE_URL="${GATEWISE_STACK_DATABASE_URL:-}"      # postgresql://USER[:PASS]@HOST:PORT/DB
PREFECT_PORT="${GATEWISE_STACK_PREFECT_PORT:-4200}"
POOL="${GATEWISE_STACK_POOL:-gatewise}"
WORKERS="${GATEWISE_STACK_WORKERS:-2}"
REPLICAS="${GATEWISE_STACK_SERVE_REPLICAS:-2}"
SERVE_PORT="${GATEWISE_STACK_SERVE_PORT:-8000}"     # replica i listens on SERVE_PORT + i
MODEL="${GATEWISE_STACK_MODEL:-arrests}"
REGISTRY_SCHEMA="${GATEWISE_STACK_REGISTRY_SCHEMA:-gatewise}"
START_TIMEOUT_S="${GATEWISE_STACK_START_TIMEOUT_S:-180}"
BIN="${GATEWISE_STACK_BIN:-$(dirname "$(command -v gatewise || echo .venv/bin/gatewise)")}"

mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
PIDS="$STACK_DIR/pids"
LOGS="$STACK_DIR/logs"
HOME_DIR="${GATEWISE_HOME:-$STACK_DIR/home}"
API_URL="http://127.0.0.1:$PREFECT_PORT/api"

die() { echo "stack: $*" >&2; exit 2; }

urls() {
    [ -n "$DATABASE_URL" ] || die "set GATEWISE_STACK_DATABASE_URL=postgresql://USER@HOST:PORT/DB (the stack runs on PostgreSQL)"
    case "$DATABASE_URL" in
        postgresql://*|postgres://*) ;;
        *) die "GATEWISE_STACK_DATABASE_URL must start with postgresql:// (got ${DATABASE_URL%%://*}://)" ;;
    esac
    local rest="${DATABASE_URL#*://}"
    PREFECT_DB_URL="postgresql+asyncpg://$rest"
    REGISTRY_URL="postgresql+psycopg://$rest?options=-csearch_path%3D$REGISTRY_SCHEMA"
}

# Start a command in its own session (so stop reaches its children), log and pid under the stack dir.
launch() {
    local name="$1"; shift
    if alive "$name"; then echo "$name already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
    setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
    echo $! >"$PIDS/$name.pid"
    echo "started $name (pid $!, log $LOGS/$name.log)"
}

alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

wait_http() {  # URL WHAT: poll until it answers 200, at most START_TIMEOUT_S
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until "$BIN/python" -c "import sys, httpx; sys.exit(httpx.get('$1', timeout=2).status_code != 200)" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "$2 did not answer $1 within ${START_TIMEOUT_S}s (see $LOGS)"
        sleep 1
    done
}

start() {
    urls
    mkdir -p "$PIDS" "$LOGS" "$HOME_DIR"
    # The registry's own schema on the shared database (Prefect keeps its tables in the default one).
    "$BIN/python" - "$DATABASE_URL" "$REGISTRY_SCHEMA" <<'EOF' || die "cannot reach PostgreSQL at GATEWISE_STACK_DATABASE_URL"
import sys
import psycopg
url = sys.argv[1].replace("postgres://", "postgresql://", 1)
with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{sys.argv[2]}"')
EOF
    export PREFECT_HOME="$STACK_DIR/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
    export PREFECT_SERVER_DATABASE_CONNECTION_URL="$PREFECT_DB_URL"
    launch prefect-server "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT"
    unset PREFECT_SERVER_DATABASE_CONNECTION_URL  # the server's alone: workers and replicas never see it
    wait_http "$API_URL/health" "the Prefect server"
    export PREFECT_API_URL="$API_URL" GATEWISE_REGISTRY_URL="$REGISTRY_URL" GATEWISE_HOME="$HOME_DIR"
    "$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 \
        || "$BIN/prefect" work-pool create "$POOL" --type process >/dev/null \
        || die "cannot create work pool $POOL"
    for i in $(seq 1 "$WORKERS"); do
        launch "worker-$i" "$BIN/prefect" worker start --pool "$POOL" --name "$POOL-worker-$i"
    done
    # The registry's tables and this home's signing key, created once; then: is MODEL live yet?
    live="$("$BIN/python" - "$HOME_DIR" "$REGISTRY_URL" "$MODEL" <<'PY'
import sys
from gatewise.registry import Registry
registry = Registry.open(sys.argv[1], sys.argv[2], create=True)
try:
    print("yes" if registry.champion(sys.argv[3]) else "no")
except Exception:  # an unknown model: nothing registered yet
    print("no")
finally:
    registry.close()
PY
)" || die "cannot open the registry on PostgreSQL (see the line above)"
    if [ "$REPLICAS" -gt 0 ] && [ "$live" != yes ]; then
        echo "serve replicas: not started, $MODEL has no production version yet; run 'infra/stack.sh start' again after the first promotion"
    elif [ "$REPLICAS" -gt 0 ]; then
        for i in $(seq 1 "$REPLICAS"); do
            launch "serve-$i" "$BIN/gatewise" serve --host 127.0.0.1 --port $((SERVE_PORT + i - 1)) --model "$MODEL"
        done
        for i in $(seq 1 "$REPLICAS"); do
            wait_http "http://127.0.0.1:$((SERVE_PORT + i - 1))/healthz" "gatewise serve replica $i"
        done
    fi
    env_lines
}

stop() {
    [ -d "$PIDS" ] || { echo "nothing to stop in $STACK_DIR"; return; }
    # Replicas and workers first, the server last.
    for f in "$PIDS"/serve-*.pid "$PIDS"/worker-*.pid "$PIDS"/prefect-server.pid; do
        [ -e "$f" ] || continue
        local name pid
        name="$(basename "$f" .pid)"; pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
            echo "stopped $name"
        fi
        rm -f "$f"
    done
}

status() {
    local down=0
    for f in "$PIDS"/*.pid; do
        [ -e "$f" ] || { echo "not started"; return 3; }
        local name; name="$(basename "$f" .pid)"
        if alive "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: DOWN (log $LOGS/$name.log)"; down=1; fi
    done
    return $down
}

env_lines() {
    urls
    echo "export PREFECT_API_URL=$API_URL"
    echo "export GATEWISE_REGISTRY_URL='$REGISTRY_URL'"
    echo "export GATEWISE_HOME=$HOME_DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) env_lines ;;
    *) echo "usage: infra/stack.sh start|stop|status|env" >&2; exit 2 ;;
esac
