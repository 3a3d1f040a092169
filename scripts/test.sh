#!/usr/bin/env bash
# test.sh — the one command that runs every test, on a fresh machine too.
#
# Installs what the tests need and is missing (Go modules, Maven and the Kafka
# broker jars from Maven Central, Debian's kcat, openssl for the broker's test
# certificates), starts a real Apache Kafka broker on 127.0.0.1 (a PLAINTEXT
# listener, and a SASL_SSL one for the TLS/SASL tests), runs go vet and go
# test -race with the integration tests against it, and stops the broker even
# when a step fails.
#
#   KAFKA_VERSION=3.9.2 scripts/test.sh   # prove the 3.9 line too
#   scripts/test.sh -run TestConsent       # extra args go to go test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then sudo_ apt-get update -qq; apt_updated=1; fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "tools"
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl/)" >&2; exit 1; }
command -v java >/dev/null || apt_install default-jre-headless
command -v mvn >/dev/null || apt_install maven
command -v kcat >/dev/null || apt_install kcat
command -v openssl >/dev/null || apt_install openssl
command -v python3 >/dev/null || apt_install python3
go version; java -version 2>&1 | head -1; kcat -V 2>&1 | head -1

step "Go modules"
go mod download

step "Apache Kafka ${KAFKA_VERSION:-4.4.0} (real broker, from Maven Central)"
trap 'scripts/kafka/broker.sh stop || true' EXIT
ANONPROXY_TEST_BROKERS=$(scripts/kafka/broker.sh start)
export ANONPROXY_TEST_BROKERS
eval "$(scripts/kafka/broker.sh secure-env)" # ANONPROXY_TEST_SECURE_BROKERS, _CA_FILE, _SASL_USER, _SASL_PASSWORD
echo "broker: Apache Kafka $(cat .cache/kafka/run/version) on $ANONPROXY_TEST_BROKERS (SASL_SSL on $ANONPROXY_TEST_SECURE_BROKERS)"

step "go vet"
go vet ./...

step "go test -race (integration tests against Apache Kafka $(cat .cache/kafka/run/version))"
# Tests named *BrokerRestart* restart the shared broker: they run alone, after the rest.
go test -race -count=1 -timeout 20m -skip 'BrokerRestart' "$@" ./...

step "allocation and memory tests, without the race detector (it drops sync.Pool items at random and adds shadow memory)"
go test -count=1 -run 'Alloc|Memory' ./...

step "tests that restart the broker, one at a time"
go test -race -count=1 -timeout 10m -p 1 -run 'BrokerRestart' ./...

echo
echo "all tests passed against Apache Kafka $(cat .cache/kafka/run/version)"
