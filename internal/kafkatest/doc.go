// Package kafkatest is the test harness for code that talks to Kafka: it
// finds the real Apache Kafka broker started by scripts/kafka/broker.sh (its
// address comes from the one environment variable ANONPROXY_TEST_BROKERS),
// creates uniquely named topics (plain and compacted, with the fast-compaction
// settings that make the log cleaner run within a second), reads partitions to
// their end offsets with a deadline, and restarts the broker for failure tests.
//
// Guarantees: a test that needs a broker and finds none skips with a clear
// message on a developer's machine, but fails when CI=true, so CI can never
// pass by skipping. Every helper has a deadline, so a hang in the client
// (kafka-go's compacted-topic bugs) fails the test instead of hanging CI.
package kafkatest
