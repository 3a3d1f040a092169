package kafkatest_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
)

// TestCompactedTopicRoundTrip proves the harness on the consent table's
// access pattern: a zstd-compressed compacted topic with overwrites and
// tombstones, compacted by the real broker, read to its end offsets by
// kafka-go and by kcat, both yielding exactly the latest live values.
func TestCompactedTopicRoundTrip(t *testing.T) {
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "harness")
	kafkatest.CreateCompactedTopic(t, addr, topic, 3)

	const records, keys, tombstones = 10000, 500, 50
	rng := rand.New(rand.NewPCG(1, 2))
	latest := map[string][]byte{} // nil value: tombstoned
	msgs := make([]kafka.Message, 0, records)
	for i := 0; i < records-tombstones; i++ {
		k := fmt.Sprintf("u:T%d:U%d", i%3, rng.IntN(keys/3+1))
		v := []byte(fmt.Sprintf(`{"default":"allow","seq":%d}`, i))
		msgs = append(msgs, kafka.Message{Key: []byte(k), Value: v})
		latest[k] = v
	}
	// Tombstone 50 distinct live keys, as the last word on each.
	n := 0
	for k := range latest {
		if n == tombstones {
			break
		}
		msgs = append(msgs, kafka.Message{Key: []byte(k)})
		latest[k] = nil
		n++
	}
	kafkatest.Produce(t, addr, topic, kafka.Zstd, msgs...)

	// Roll the segment with a record that changes nothing: a live key's latest value again.
	var roll kafka.Message
	for k, v := range latest {
		if v != nil {
			roll = kafka.Message{Key: []byte(k), Value: v}
			break
		}
	}
	remaining := kafkatest.Compact(t, addr, topic, len(msgs), roll)
	t.Logf("compaction: %d records written, %d remain", len(msgs)+1, len(remaining))

	want := map[string]string{}
	for k, v := range latest {
		if v != nil {
			want[k] = string(v)
		}
	}
	got := map[string]string{}
	for _, m := range kafkatest.ReadAll(t, addr, topic, 60*time.Second) {
		if m.Value == nil {
			delete(got, string(m.Key))
		} else {
			got[string(m.Key)] = string(m.Value)
		}
	}
	compare(t, "kafka-go", got, want)

	// kcat, an independent client: -Z prints null values as NULL.
	out := kafkatest.Kcat(t, addr, 60*time.Second, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-Z", "-f", "%k\t%s\n")
	fromKcat := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte("\t"))
		if !ok {
			t.Fatalf("kcat line without a tab: %q", sc.Text())
		}
		if string(v) == "NULL" {
			delete(fromKcat, string(k))
		} else {
			fromKcat[string(k)] = string(v)
		}
	}
	compare(t, "kcat", fromKcat, want)
}

func compare(t *testing.T, who string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d live keys, want %d", who, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: key %s = %q, want %q", who, k, got[k], v)
		}
	}
}
