# Shared settings for the local infrastructure scripts. Every address has an env override,
# so the same code points at production clusters unchanged.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${HONGBAO_LOCAL_DIR:-$ROOT/.local}"          # git-ignored: data, logs, pids, unpacked downloads
LOGS="$LOCAL/logs"
mkdir -p "$LOGS"

KAFKA_VERSION=3.9.1
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_BROKERS="${KAFKA_BROKERS:-$KAFKA_HOST:$KAFKA_PORT}"

# Apicurio 3.1.7 was named by the foundation issue, but Maven Central never received the
# 3.1.x app tarballs (only the parent POMs). 3.0.9 is the newest 3.x app that is there and
# that targets Java 17; 3.3.x is built for Java 21.
APICURIO_VERSION=3.0.9
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"

PGHOST_LOCAL=127.0.0.1
PGPORT_LOCAL=5432
PGUSER_LOCAL="${PGUSER_LOCAL:-postgres}"
DATABASE_URL="${DATABASE_URL:-postgres://$PGUSER_LOCAL@$PGHOST_LOCAL:$PGPORT_LOCAL/hongbao}"
REGISTRY_DB="${REGISTRY_DB:-hongbao_registry}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
  [ -z "$what" ] || log "$what is ready"
}
