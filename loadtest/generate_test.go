package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
)

func luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 13 && sum%10 == 0
}

func ibanValid(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	s = s[4:] + s[:4]
	rem := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

func TestCanariesAreRealFormat(t *testing.T) {
	cs := NewCanaries(7)
	if len(cs) > maxCanaries {
		t.Fatalf("%d canaries do not fit a uint64 mask", len(cs))
	}
	seen := map[string]bool{}
	for _, c := range cs {
		t.Run(string(c.Kind)+"/"+c.Value[:min(8, len(c.Value))], func(t *testing.T) {
			if seen[c.Value] {
				t.Errorf("duplicate canary")
			}
			seen[c.Value] = true
			if q, _ := json.Marshal(c.Value); string(q) != `"`+c.Value+`"` {
				t.Errorf("needs JSON escaping: %s", q)
			}
			if !strings.Contains(c.Text, c.Value) {
				t.Errorf("text does not contain the value")
			}
			switch c.Kind {
			case KindPhone:
				n, err := phonenumbers.Parse(c.Value, "US")
				if err != nil || !phonenumbers.IsValidNumber(n) {
					t.Errorf("not a valid phone number for libphonenumber: %v", err)
				}
			case KindCard:
				if !luhn(c.Value) {
					t.Error("fails Luhn")
				}
			case KindIBAN:
				if !ibanValid(c.Value) {
					t.Error("fails mod-97")
				}
			case KindGitHub:
				if !strings.HasPrefix(c.Value, "ghp_") || len(c.Value) != 40 {
					t.Error("not ghp_ + 36")
				}
			case KindAWSKey:
				if !strings.HasPrefix(c.Value, "AKIA") || len(c.Value) != 20 {
					t.Error("not AKIA + 16")
				}
			case KindPrivateKey:
				if !strings.HasPrefix(c.Text, "-----BEGIN RSA PRIVATE KEY-----\n") {
					t.Error("not a private key block")
				}
			}
		})
	}
	if got := NewCanaries(7); got[len(got)-1] != cs[len(cs)-1] {
		t.Error("canaries are not reproducible from the seed")
	}
}

// TestGenerator checks that events are valid where they should be, that the
// ledger's canary mask is exactly what the event contains (so the oracle
// neither misses nor invents a leak), and that a seed reproduces the traffic.
func TestGenerator(t *testing.T) {
	cs := NewCanaries(3)
	g := NewGenerator("r1", 3, 4, 32, 0.05, cs)
	g2 := NewGenerator("r1", 3, 4, 32, 0.05, cs)
	now := time.Unix(1_800_000_000, 0)
	var streams [numStreams]int
	var malformed, gz, binary, withCanaries int
	ids := map[string]bool{}
	const n = 3000
	for i := range n {
		ev := g.Next(now)
		if ev2 := g2.Next(now); !bytes.Equal(ev.Value, ev2.Value) {
			t.Fatalf("event %d differs between two generators with the same seed", i)
		}
		if ev.Seq != uint64(i) || ids[ev.ID] {
			t.Fatalf("event %d: seq %d, id %s repeated %v", i, ev.Seq, ev.ID, ids[ev.ID])
		}
		ids[ev.ID] = true
		info, _ := g.Ledger.Get(ev.Seq)
		if info != ev.Info {
			t.Fatal("ledger differs from the event")
		}
		streams[ev.Stream]++
		valid := json.Valid(ev.Value)
		switch info.Malformed {
		case WellFormed:
			var m map[string]any
			if err := json.Unmarshal(ev.Value, &m); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if m["event_id"] != ev.ID || m["tenant_id"] == "" || m["user_id"] == nil {
				t.Fatalf("event %d lacks ids: %s", i, ev.Value[:min(200, len(ev.Value))])
			}
		case InvalidJSON:
			malformed++
			if valid {
				t.Fatalf("event %d should be invalid JSON", i)
			}
		case MissingUserID, NotAnObject:
			malformed++
			if !valid || bytes.Contains(ev.Value, []byte(`"user_id"`)) && info.Malformed == MissingUserID {
				t.Fatalf("event %d: %s is wrong", i, info.Malformed)
			}
		}
		if bytes.Contains(ev.Value, []byte(`"content_encoding":"gzip"`)) {
			gz++
		}
		if bytes.Contains(ev.Value, []byte(`application/pdf`)) {
			binary++
		}
		if info.Malformed == InvalidJSON || info.Malformed == NotAnObject {
			continue // truncated or wrapped: contents are not where the decoder looks
		}
		// The mask is exactly what the raw bytes plus decoded contents hold.
		found := cs.Find(ev.Value, ^uint64(0))
		for _, c := range decodedContents(ev.Value) {
			found |= cs.Find(c, ^uint64(0))
		}
		if found != info.Canaries {
			t.Fatalf("event %d: canaries found %v, ledger says %v", i, cs.Kinds(found), cs.Kinds(info.Canaries))
		}
		if info.Canaries != 0 {
			withCanaries++
		}
	}
	t.Logf("streams %v, malformed %d, gzip %d, binary %d, with canaries %d of %d", streams, malformed, gz, binary, withCanaries, n)
	if streams[0] < n/2 || streams[1] < n/10 || streams[2] < n/10 {
		t.Errorf("stream mix %v", streams)
	}
	if malformed < n/40 || malformed > n/10 {
		t.Errorf("malformed %d of %d at ratio 0.05", malformed, n)
	}
	if gz == 0 || binary == 0 || withCanaries < n/4 {
		t.Errorf("gzip %d, binary %d, with canaries %d: not varied enough", gz, binary, withCanaries)
	}
}
