package redact

import (
	"fmt"
	"math/rand/v2"
	"strings"
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
		if r.IntN(4) == 0 { // an AWS secret's context, in front of whatever follows
			k := r.IntN(len(s) + 1)
			ctx := []string{"secret ", "SeCrEt=", "ecr", "aws_secret_access_key: ", "Secret/"}[r.IntN(5)]
			s = append(s[:k], append([]byte(ctx), s[k:]...)...)
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
		"abc-def.GHI@example.com", "4111 1111 1111 1112, v1.2.3.4-beta, 15.01.2024 10:30, 1 192.168.0.1 078-05-1120 12 (415) 555-2671", "secret: x wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "k: -----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY----- done",
		"x.token=1 12:34token=2 MY_API-KEY=3 page=4&sig=5 ab:cd:efpwd=6",
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

// TestScanSecretParams checks the '=' filter (secretNameBefore) against
// the reference loop: every secret parameter name, in three cases, after
// bytes that make it a word of its own, the end of a longer word or of a
// skipped colon run, and near misses of every name (one byte off at
// either end, or cut short).
func TestScanSecretParams(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	found := 0
	for name := range secretParams {
		for _, n := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:],
			"x" + name, name[1:], name[:len(name)-1], name[:len(name)-1] + "q", "q" + name[1:]} {
			for _, pre := range []string{"", " ", "?a=1&", "x.", "x_", "my", "12:34", "ab:cd:ef", "a-", "%", "a@"} {
				text := []byte(pre + n + "=v4lue&x=1")
				for _, m := range scanTestMasks {
					checkScanAgainstReference(t, w, text, m)
				}
				if n == name && pre == " " {
					w.sc.ms, w.sc.mask = w.sc.ms[:0], maskAll
					w.sc.scan(text)
					if len(w.sc.ms) == 1 && w.sc.ms[0].det == detURLSecret {
						found++
					}
				}
			}
		}
	}
	if found != len(secretParams) {
		t.Errorf("%d of %d names found as a secret parameter", found, len(secretParams))
	}
}

// TestScanSecretReach checks the replay that an AWS secret's context
// starts (see slow and secretReach) at every distance between "secret"
// and the key, including the last one awsSecret accepts, with the context
// in any case, inside a longer word, and with triggers of other kinds
// between them.
func TestScanSecretReach(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	const key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	found := map[bool]int{}
	for _, ctx := range []string{"secret", "SECRET", "aws_sEcReT_access_key", "x secret"} {
		for _, fill := range []string{" ", "a", "1", ".", " 10.0.0.1 ", " a@b.co ", "ey "} {
			for d := 0; d < 80; d++ {
				gap := strings.Repeat(fill, d/len(fill)+1)[:d]
				for _, text := range []string{ctx + gap + key, ctx + gap + " " + key + " tail", "pre " + ctx + gap + "/" + key} {
					for _, m := range []detMask{maskAll, maskCredentials, 1 << detAWSSecret} {
						checkScanAgainstReference(t, w, []byte(text), m)
					}
					w.sc.ms, w.sc.mask = w.sc.ms[:0], 1<<detAWSSecret
					w.sc.scan([]byte(text))
					found[len(w.sc.ms) > 0]++
				}
			}
		}
	}
	if found[true] == 0 || found[false] == 0 {
		t.Fatalf("the cases should include keys found and not found: %v", found)
	}
}

// TestNotAlnum checks the eight-byte alnum test of wordEnd against ctab
// for every byte value in every lane, next to every kind of neighbour.
func TestNotAlnum(t *testing.T) {
	for c := range 256 {
		for lane := range 9 {
			for _, fill := range []byte{0, 'a', 'Z', '9', 0xff, '@', '`', '{', '/', ':', '['} {
				b := make([]byte, 11)
				for k := range b {
					b[k] = fill
				}
				if lane < len(b) {
					b[lane] = byte(c)
				}
				for p := range 3 {
					want := p
					for want < len(b) && ctab[b[want]]&cAlnum != 0 {
						want++
					}
					if got := wordEnd(b, p); got != want {
						t.Fatalf("wordEnd(%q, %d) = %d, want %d", b, p, got, want)
					}
				}
			}
		}
	}
}
