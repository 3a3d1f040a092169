#!/usr/bin/env bash
# broker.sh — a real single-node Apache Kafka (KRaft) on 127.0.0.1 for tests.
#
#   scripts/kafka/broker.sh fetch    download the broker jars (cached)
#   scripts/kafka/broker.sh start    fetch, format fresh storage, start, wait for readiness
#   scripts/kafka/broker.sh stop     SIGTERM the broker and wait for it to exit
#   scripts/kafka/broker.sh restart  stop, then start on the same port and data (a broker restart)
#   scripts/kafka/broker.sh relaunch start a stopped broker again on its port and data
#   scripts/kafka/broker.sh addr     print host:port of the running broker
#
# KAFKA_VERSION (default below) picks the broker; 3.9.x works as well as 4.x.
# Jars are cached in .cache/kafka/<version>/libs (git-ignored), so a second
# start downloads nothing. State of the running broker lives in .cache/kafka/run
# (KAFKA_RUN_DIR overrides it, to run a second broker beside the first).
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache="$root/.cache/kafka"
libs="$cache/$KAFKA_VERSION/libs"
run="${KAFKA_RUN_DIR:-$cache/run}"

log() { printf 'kafka: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v mvn >/dev/null || { log "mvn not found (apt-get install maven)"; exit 1; }
  log "fetching Apache Kafka $KAFKA_VERSION from Maven Central"
  local extra=()
  case "$KAFKA_VERSION" in 3.*) extra=(-Dkafka3) ;; esac
  rm -rf "$libs"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -Doutdir="$libs" "${extra[@]}" >&2
  touch "$libs/.complete"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# jvm holds the java command line for the cached classpath ("$libs/*" is
# expanded by java, not by the shell).
jvm() {
  local logcfg
  case "$KAFKA_VERSION" in
    3.*) logcfg=-Dlog4j.configuration="file:$run/log4j.properties" ;;
    *)   logcfg=-Dlog4j2.configurationFile="$run/log4j2.properties" ;;
  esac
  JVM=(java -Xms256m -Xmx512m -XX:+UseG1GC "$logcfg" -cp "$libs/*")
}
kjava() { jvm; "${JVM[@]}" "$@"; }

write_config() {
  local port=$1 cport=$2
  mkdir -p "$run"
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.backoff.ms=200
log.cleaner.dedupe.buffer.size=16777216
log.retention.check.interval.ms=1000
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
PROPS
  # Tool and broker logs: WARN to stderr for tools, INFO to a file for the broker.
  cat >"$run/log4j2.properties" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $run/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.tools.name = kafka.tools
logger.tools.level = WARN
PROPS
  cat >"$run/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$run/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
}

running() { [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; }

launch() {
  : >"$run/server.log"
  jvm
  nohup "${JVM[@]}" kafka.Kafka "$run/server.properties" >"$run/stdout.log" 2>&1 &
  echo $! >"$run/pid"
  local deadline=$((SECONDS + 60))
  until grep -q 'Kafka Server started' "$run/server.log" 2>/dev/null; do
    if ! running; then
      log "broker exited during start; log tail:"; tail -n 40 "$run/server.log" "$run/stdout.log" >&2; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "broker not ready after 60 s; log tail:"; tail -n 40 "$run/server.log" "$run/stdout.log" >&2
      stop; exit 1
    fi
    sleep 0.3
  done
  log "Apache Kafka $KAFKA_VERSION ready on $(cat "$run/addr")"
}

start() {
  fetch
  if running; then log "already running on $(cat "$run/addr")"; cat "$run/addr"; return; fi
  rm -rf "$run"; mkdir -p "$run"
  local port cport
  port=$(free_port); cport=$(free_port)
  while [ "$cport" = "$port" ]; do cport=$(free_port); done
  write_config "$port" "$cport"
  echo "127.0.0.1:$port" >"$run/addr"
  echo "$KAFKA_VERSION" >"$run/version"
  local id
  id=$(kjava kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  kjava kafka.tools.StorageTool format -t "$id" -c "$run/server.properties" >/dev/null 2>"$run/format.log" || {
    log "storage format failed:"; cat "$run/format.log" >&2; exit 1; }
  launch
  cat "$run/addr"
}

stop() {
  running || { rm -f "$run/pid"; return 0; }
  local pid; pid=$(cat "$run/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$run/pid"
  log "stopped"
}

restart() {
  [ -f "$run/server.properties" ] || { log "no broker to restart"; exit 1; }
  stop
  launch
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  relaunch) running || launch ;;
  addr) cat "$run/addr" ;;
  *) echo "usage: $0 fetch|start|stop|restart|addr" >&2; exit 2 ;;
esac
