package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/segmentio/kafka-go"
	"github.com/tidwall/gjson"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/proxy"
)

type sample struct {
	title, before, after string
}

func readTopic(ctx context.Context, addr, topic string) ([]kafka.Message, error) {
	_, end, err := kafkatest.Offsets(ctx, addr, topic)
	if err != nil {
		return nil, fmt.Errorf("demo: read %s: %w", topic, err)
	}
	var out []kafka.Message
	for p := 0; p < len(end); p++ {
		msgs, err := kafkatest.ReadPartition(ctx, addr, topic, p, end[p])
		if err != nil {
			return nil, fmt.Errorf("demo: read %s/%d: %w", topic, p, err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}

func source(m kafka.Message) string {
	return fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// collectSamples reads the topics back, counts forwarded events of the
// opted-out user produced after the bound, and picks one sample per outcome.
func collectSamples(ctx context.Context, addr string, cfg *config.File, p *produced, sum *Summary) ([]sample, error) {
	inputs := map[string][]byte{}
	for _, s := range cfg.Streams {
		msgs, err := readTopic(ctx, addr, s.Input)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			inputs[source(m)] = m.Value
		}
	}
	var allow, anon *sample
	for _, s := range cfg.Streams {
		msgs, err := readTopic(ctx, addr, s.Output)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if p.afterBound[gjson.GetBytes(m.Value, "event_id").Str] {
				sum.ForwardedAfterOptOut++
			}
			before := inputs[header(m, proxy.HeaderSource)]
			if s.Name != "chat" || before == nil || string(before) == string(m.Value) {
				continue
			}
			smp := &sample{before: string(before), after: string(m.Value)}
			switch d := header(m, proxy.HeaderDecision); {
			case d == "allow" && allow == nil:
				smp.title = "allow — always-on scrubbing only: credentials and keys never pass, the rest is kept"
				allow = smp
			case d == "anonymized" && (anon == nil || !strings.Contains(anon.before, "<@U") && strings.Contains(smp.before, "<@U")):
				smp.title = "anonymized — PII replaced, ids and mentions pseudonymized with the keyed HMAC"
				anon = smp // preferably one with a mention
			}
		}
	}
	var out []sample
	for _, s := range []*sample{allow, anon} {
		if s != nil {
			out = append(out, *s)
		}
	}
	for _, t := range []struct{ topic, title string }{
		{cfg.Stage.AuditTopic, "deny — nothing forwarded; an audit record without payload"},
		{cfg.Stage.QuarantineTopic, "quarantined — malformed input; a quarantine record without payload"},
	} {
		msgs, err := readTopic(ctx, addr, t.topic)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			var rec struct {
				Kind   string `json:"kind"`
				Source string `json:"source"`
			}
			if json.Unmarshal(m.Value, &rec) != nil || (t.topic == cfg.Stage.AuditTopic && rec.Kind != "deny") {
				continue
			}
			if before, ok := inputs[rec.Source]; ok {
				out = append(out, sample{title: t.title, before: string(before), after: string(m.Value)})
				break
			}
		}
	}
	return out, nil
}

func printSamples(out io.Writer, samples []sample, color bool) {
	open, close := "⟦", "⟧"
	if color {
		open, close = "\x1b[1;31m", "\x1b[0m"
	}
	fmt.Fprintln(out, "\nBefore and after, one per outcome (changed spans marked "+open+"like this"+close+")")
	for _, s := range samples {
		fmt.Fprintf(out, "\n  %s\n    in:  %s\n", s.title, s.before)
		if strings.HasPrefix(s.title, "allow") || strings.HasPrefix(s.title, "anonymized") {
			fmt.Fprintf(out, "    out: %s\n", markChanges(s.before, s.after, open, close))
		} else {
			fmt.Fprintf(out, "    out: %s\n", s.after)
		}
	}
}
