#!/usr/bin/env bash
# Starts whatever local infrastructure is not already running, and waits until each part
# is healthy. Idempotent: a second run finds everything up and returns at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# --- Postgres ---------------------------------------------------------------------------
pg_up() { pg_isready -q -h "$PGHOST_LOCAL" -p "$PGPORT_LOCAL" 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    log "starting Postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_for 30 Postgres pg_up || die "Postgres is not reachable at $PGHOST_LOCAL:$PGPORT_LOCAL and could not be started. Start it, or set DATABASE_URL."
fi
psql_admin() { psql -X -q -h "$PGHOST_LOCAL" -p "$PGPORT_LOCAL" -U "$PGUSER_LOCAL" -d postgres -v ON_ERROR_STOP=1 "$@"; }
for db in hongbao "$REGISTRY_DB"; do
  if [ "$(psql_admin -tAc "select 1 from pg_database where datname='$db'")" != 1 ]; then
    log "creating database $db"; psql_admin -c "create database \"$db\""
  fi
done

# --- Redis ------------------------------------------------------------------------------
redis_up() { [ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = PONG ]; }
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$LOCAL" --logfile "$LOGS/redis.log"
  fi
  wait_for 20 Redis redis_up || die "Redis is not reachable at $REDIS_URL and could not be started. Start it, or set REDIS_URL."
fi

# --- Kafka (KRaft, single node) ---------------------------------------------------------
kafka_up() { port_open "$KAFKA_HOST" "$KAFKA_PORT"; }
if ! kafka_up; then
  command -v java >/dev/null || die "Java 17+ is needed to run the local Kafka broker"
  jars="$ROOT/infra/kafka/target/dependency"
  if ! ls "$jars"/kafka_2.13-$KAFKA_VERSION.jar >/dev/null 2>&1; then
    log "resolving Kafka $KAFKA_VERSION jars from Maven Central (cached in ~/.m2)"
    (cd "$ROOT/infra/kafka" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime) \
      || die "could not resolve the Kafka jars with Maven"
  fi
  data="$LOCAL/kafka-data"; conf="$LOCAL/kafka-server.properties"
  sed -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" -e "s#@DATA@#$data#g" \
    "$ROOT/infra/kafka/server.properties.template" > "$conf"
  cp="$jars/*"
  if [ ! -f "$data/meta.properties" ]; then
    log "formatting Kafka storage"
    java -cp "$cp" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" \
      -c "$conf" >"$LOGS/kafka-format.log" 2>&1 || die "Kafka storage format failed: $LOGS/kafka-format.log"
  fi
  log "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT"
  nohup java -Xms256m -Xmx1g -Dlog4j.configuration="file:$ROOT/infra/kafka/log4j.properties" \
    -Dkafka.logs.dir="$LOGS" -cp "$cp" kafka.Kafka "$conf" >"$LOGS/kafka.out" 2>&1 &
  echo $! > "$LOCAL/kafka.pid"
  wait_for 90 Kafka kafka_up || die "Kafka did not start: see $LOGS/kafka.out"
fi

# --- Schema registry (Apicurio, Confluent API at /apis/ccompat/v7) ----------------------
# /config, not /subjects: listing every subject grows with the registry's database (each test
# namespace registers its own), and past a couple of seconds the check never succeeded.
registry_up() { curl -fsS -m 2 -o /dev/null "$SCHEMA_REGISTRY_URL/config" 2>/dev/null; }
if ! registry_up; then
  tarball="$HOME/.m2/repository/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  if [ ! -f "$tarball" ]; then
    # Fetched straight from Maven Central: the artifact's parent POM is not published, so
    # `mvn dependency:get` cannot resolve it. The checksum comes from Central too.
    log "downloading Apicurio Registry $APICURIO_VERSION from Maven Central"
    url="https://repo.maven.apache.org/maven2/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/$(basename "$tarball")"
    mkdir -p "$(dirname "$tarball")"
    curl -fsSL -m 600 -o "$tarball.part" "$url" || die "could not download $url"
    want=$(curl -fsSL -m 60 "$url.sha1")
    echo "$want  $tarball.part" | sha1sum -c --quiet - || { rm -f "$tarball.part"; die "checksum mismatch for $url"; }
    mv "$tarball.part" "$tarball"
  fi
  app="$LOCAL/apicurio-$APICURIO_VERSION"
  if [ ! -f "$app/apicurio-registry-app-$APICURIO_VERSION-runner.jar" ]; then
    # Unpacked beside and renamed into place, so an interrupted unpack is never taken for a
    # complete one by the next run.
    rm -rf "$app" "$app.part" && mkdir -p "$app.part" && tar -xzf "$tarball" -C "$app.part" && mv "$app.part" "$app"
  fi
  if port_open 127.0.0.1 "$REGISTRY_PORT"; then
    die "port $REGISTRY_PORT is taken by something that is not answering as a schema registry ($SCHEMA_REGISTRY_URL/config). Stop it, or set REGISTRY_PORT and SCHEMA_REGISTRY_URL."
  fi
  start_registry() {
    log "starting Apicurio Registry $APICURIO_VERSION on port $REGISTRY_PORT (storage: Postgres $REGISTRY_DB)"
    # Started from a subshell that first changes directory, and `exec`s java so the recorded
    # pid is the JVM itself (down.sh must be able to stop it).
    (
      cd "$app"
      export APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql \
        APICURIO_DATASOURCE_URL="jdbc:postgresql://$PGHOST_LOCAL:$PGPORT_LOCAL/$REGISTRY_DB" \
        APICURIO_DATASOURCE_USERNAME="$PGUSER_LOCAL" APICURIO_DATASOURCE_PASSWORD=unused \
        APICURIO_DATASOURCE_JDBC_INITIAL_SIZE=2 APICURIO_DATASOURCE_JDBC_MIN_SIZE=2 APICURIO_DATASOURCE_JDBC_MAX_SIZE=10 \
        QUARKUS_HTTP_PORT="$REGISTRY_PORT" QUARKUS_HTTP_HOST=127.0.0.1
      exec nohup java -Xms128m -Xmx512m -jar "apicurio-registry-app-$APICURIO_VERSION-runner.jar" >>"$LOGS/registry.out" 2>&1
    ) &
    echo $! > "$LOCAL/registry.pid"
  }
  # Up, or the JVM has exited (no point waiting out the timeout for a dead process).
  registry_settled() { registry_up || ! kill -0 "$(cat "$LOCAL/registry.pid")" 2>/dev/null; }
  show_registry_log() { log "last lines of $LOGS/registry.out:"; tail -n 40 "$LOGS/registry.out" >&2 || true; }
  : > "$LOGS/registry.out"
  # A cold JVM on a loaded two-core machine can take minutes, and a first start against an
  # empty database creates its tables: one retry covers a start that died on the way.
  for attempt in 1 2; do
    start_registry
    wait_for 240 "" registry_settled || true
    registry_up && { log "Schema registry is ready"; break; }
    show_registry_log
    pid=$(cat "$LOCAL/registry.pid"); kill "$pid" 2>/dev/null || true; sleep 2; kill -9 "$pid" 2>/dev/null || true
    [ "$attempt" = 2 ] && die "the schema registry did not start (twice): see $LOGS/registry.out"
    log "retrying the schema registry once"
  done
fi

log "all up: KAFKA_BROKERS=$KAFKA_BROKERS SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
