#!/usr/bin/env bash
# crashtest.sh — the full crash test of docs/reliability.md.
#
# Starts a broker of its own (never the one scripts/test.sh or anyone else
# uses: the test restarts it), runs TestCrashRecoveryBrokerRestart in its
# full form — 2 min of load-test traffic with consent churn, two stage
# processes in one group, 12 SIGKILLs at random moments (each followed by a
# restart) and one broker restart — and prints the injected faults and the
# oracle's report. Exits non-zero if the oracle finds a lost or leaked event.
#
#   scripts/crashtest.sh [OUT_DIR]     reports go to OUT_DIR
#                                      (default .cache/crashtest/<time>)
#   ANONPROXY_CRASHTEST_SEED=N scripts/crashtest.sh   another fault schedule
#   CRASHTEST_KAFKA_RUN_DIR=DIR        the broker's state directory
#                                      (default .cache/kafka/crashtest)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Deliberately not KAFKA_RUN_DIR from the environment: that may name a
# shared broker, and this test restarts the broker it runs against.
export KAFKA_RUN_DIR=${CRASHTEST_KAFKA_RUN_DIR:-$PWD/.cache/kafka/crashtest}
out=${1:-$PWD/.cache/crashtest/$(date +%Y%m%dT%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

trap 'scripts/kafka/broker.sh stop || true' EXIT
ANONPROXY_TEST_BROKERS=$(scripts/kafka/broker.sh start)
export ANONPROXY_TEST_BROKERS
echo "broker: Apache Kafka $(cat "$KAFKA_RUN_DIR/version") on $ANONPROXY_TEST_BROKERS ($KAFKA_RUN_DIR)"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3-)"

status=0
ANONPROXY_CRASHTEST=full ANONPROXY_CRASHTEST_OUT="$out" \
  go test -count=1 -timeout 20m -run '^TestCrashRecoveryBrokerRestart$' -v ./loadtest/ \
  >"$out/test.log" 2>&1 || status=$?

echo
cat "$out/faults.txt" 2>/dev/null || true
echo
cat "$out/report.txt" 2>/dev/null || true
grep -E '^\s+crash_test.go:[0-9]+: duplicates' "$out/test.log" | sed 's/^ *crash_test.go:[0-9]*: //' || true
echo
if [ "$status" -ne 0 ]; then
  tail -n 40 "$out/test.log"
  echo "crash test FAILED (full log: $out/test.log, stage logs: $out/stages.log)"
else
  echo "crash test passed (reports: $out)"
fi
exit "$status"
