package redact

import (
	"testing"

	"github.com/tidwall/gjson"
)

func BenchmarkScanText(b *testing.B) {
	evs := benchEvents(b, "chat")
	e := testEngine(b, StreamConfig{}, Options{})
	w := e.pool.Get()
	texts := make([][]byte, len(evs))
	n := 0
	for i, ev := range evs {
		texts[i] = []byte(gjson.GetBytes(ev, "text").Str)
		n += len(texts[i])
	}
	for _, m := range []struct {
		name string
		mask detMask
	}{{"all", maskAll}, {"credentials", maskCredentials}, {"pii", maskPII}} {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(n / len(texts)))
			for i := 0; i < b.N; i++ {
				w.sc.ms, w.sc.mask = w.sc.ms[:0], m.mask
				w.sc.scan(texts[i%len(texts)])
			}
		})
	}
}
