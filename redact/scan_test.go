package redact

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tidwall/gjson"
)

// scanReference is the reference loop scan must agree with: step at every
// position the loop arrives at, with no skipping.
func (sc *scanner) scanReference(t []byte) {
	for i := 0; i < len(t); {
		i = sc.step(t, i)
	}
}

func checkScanAgainstReference(t *testing.T, w *work, text []byte, mask detMask) {
	t.Helper()
	w.sc.ms, w.sc.mask = w.sc.ms[:0], mask
	w.sc.scanReference(text)
	want := fmt.Sprint(w.sc.ms)
	w.sc.ms = w.sc.ms[:0]
	w.sc.scan(text)
	if got := fmt.Sprint(w.sc.ms); got != want {
		t.Fatalf("mask %#x, text %q:\n got %s\nwant %s", mask, text, got, want)
	}
}

var scanTestMasks = []detMask{maskAll, maskPII, maskCredentials, 1 << detMention, 1 << detEmail, 1 << detAWSSecret, 1 << detURLSecret, 1 << detIP, maskPII | 1<<detMention}

// TestScanMatchesReference checks that skipping between triggers finds
// exactly what the reference loop finds, over the labeled corpus, the
// benchmark texts and random splices of both.
func TestScanMatchesReference(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	var texts [][]byte
	for _, d := range loadCorpus(t) {
		texts = append(texts, []byte(d.Text))
	}
	for _, ev := range benchEvents(t, "chat") {
		texts = append(texts, []byte(gjson.GetBytes(ev, "text").Str))
	}
	for _, ev := range benchEvents(t, "messages") {
		texts = append(texts, []byte(gjson.GetBytes(ev, "body").Str))
	}
	r := rand.New(rand.NewPCG(3, 4))
	n := len(texts)
	for range 20000 {
		a, b := texts[r.IntN(n)], texts[r.IntN(n)]
		i, j := r.IntN(len(a)+1), r.IntN(len(b)+1)
		s := append(append([]byte(nil), a[:i]...), b[j:]...)
		if len(s) > 0 && r.IntN(2) == 0 { // flip a byte to something detectors care about
			s[r.IntN(len(s))] = "@:=+-(<[/._AZaegsrx0917 "[r.IntN(24)]
		}
		texts = append(texts, s)
	}
	for _, text := range texts {
		for _, m := range scanTestMasks {
			checkScanAgainstReference(t, w, text, m)
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"mail John.Doe+x@mail.example.co.uk.", "call +1 415-555-2671 now", "aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"https://x.io/a?id=1&access_token=abc.def&b=2", "peer 2001:db8::1 and [fe80::1]:443", "hi <@U2> and <@W123|bob>",
		"abc-def.GHI@example.com", "k: -----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY----- done",
	} {
		f.Add([]byte(s))
	}
	e := testEngine(f, StreamConfig{}, Options{})
	f.Fuzz(func(t *testing.T, text []byte) {
		w := e.pool.Get()
		defer e.pool.Put(w)
		for _, m := range scanTestMasks {
			checkScanAgainstReference(t, w, text, m)
		}
	})
}
