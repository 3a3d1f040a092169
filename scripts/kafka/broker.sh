#!/usr/bin/env bash
# broker.sh — a real single-node Apache Kafka (KRaft) on 127.0.0.1 for tests.
#
#   scripts/kafka/broker.sh fetch    download the broker jars (cached)
#   scripts/kafka/broker.sh start    fetch, format fresh storage, start, wait for readiness
#   scripts/kafka/broker.sh stop     SIGTERM the broker and wait for it to exit
#   scripts/kafka/broker.sh restart  stop, then start on the same port and data (a broker restart)
#   scripts/kafka/broker.sh relaunch start a stopped broker again on its port and data
#   scripts/kafka/broker.sh addr     print host:port of the running broker
#   scripts/kafka/broker.sh secure-env  print export lines for the SASL_SSL listener
#
# Besides PLAINTEXT (what `addr` prints, used by most tests) the broker has a
# SASL_SSL listener on a second port: TLS with a server certificate for
# 127.0.0.1/localhost signed by a CA generated at start (ca.pem in the run
# dir), and SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for the user
# anonproxy with a random password (SCRAM credentials are written at storage
# format time). Inter-broker and controller traffic stay PLAINTEXT.
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

# SASL user of the SASL_SSL listener; its password is random per start.
sasl_user=anonproxy

# make_certs writes a CA (ca.pem, for clients) and a server certificate for
# 127.0.0.1 / localhost signed by it, in a PKCS12 keystore (server.p12).
make_certs() {
  command -v openssl >/dev/null || { log "openssl not found (apt-get install openssl)"; exit 1; }
  local d="$run/tls" pw=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 30 -subj "/CN=anonproxy test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
      -subj "/CN=127.0.0.1"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth" \
      "keyUsage=critical,digitalSignature" "basicConstraints=critical,CA:FALSE" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile server.ext -out server.pem
    openssl pkcs12 -export -name broker -inkey server.key -in server.pem -certfile ca.pem \
      -passout "pass:$pw" -out server.p12
    rm -f server.csr server.ext ca.srl
  ) >"$run/tls.log" 2>&1 || { log "certificate generation failed:"; cat "$run/tls.log" >&2; exit 1; }
}

write_config() {
  local port=$1 cport=$2 sport=$3 pw=$4 kspw=$5
  mkdir -p "$run"
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
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
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$run/tls/server.p12
listener.name.sasl_ssl.ssl.keystore.password=$kspw
listener.name.sasl_ssl.ssl.key.password=$kspw
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$pw";
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
  log "Apache Kafka $KAFKA_VERSION ready on $(cat "$run/addr") (SASL_SSL on $(cat "$run/secure_addr"))"
}

start() {
  fetch
  if running; then log "already running on $(cat "$run/addr")"; cat "$run/addr"; return; fi
  rm -rf "$run"; mkdir -p "$run"
  local port cport sport pw kspw
  port=$(free_port); cport=$(free_port); sport=$(free_port)
  while [ "$cport" = "$port" ]; do cport=$(free_port); done
  while [ "$sport" = "$port" ] || [ "$sport" = "$cport" ]; do sport=$(free_port); done
  pw=$(openssl rand -hex 16); kspw=$(openssl rand -hex 16)
  make_certs "$kspw"
  write_config "$port" "$cport" "$sport" "$pw" "$kspw"
  echo "127.0.0.1:$port" >"$run/addr"
  echo "127.0.0.1:$sport" >"$run/secure_addr"
  echo "$run/tls/ca.pem" >"$run/ca_file"
  echo "$sasl_user" >"$run/sasl_user"
  (umask 077; echo "$pw" >"$run/sasl_password")
  echo "$KAFKA_VERSION" >"$run/version"
  local id
  id=$(kjava kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  kjava kafka.tools.StorageTool format -t "$id" -c "$run/server.properties" \
    --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$pw]" \
    --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$pw]" >/dev/null 2>"$run/format.log" || {
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
  secure-env)
    [ -f "$run/secure_addr" ] || { log "no broker started in $run"; exit 1; }
    printf 'export ANONPROXY_TEST_SECURE_BROKERS=%q\n' "$(cat "$run/secure_addr")"
    printf 'export ANONPROXY_TEST_CA_FILE=%q\n' "$(cat "$run/ca_file")"
    printf 'export ANONPROXY_TEST_SASL_USER=%q\n' "$(cat "$run/sasl_user")"
    printf 'export ANONPROXY_TEST_SASL_PASSWORD=%q\n' "$(cat "$run/sasl_password")"
    ;;
  *) echo "usage: $0 fetch|start|stop|restart|relaunch|addr|secure-env" >&2; exit 2 ;;
esac
