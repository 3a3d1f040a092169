package redact

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestDetectors(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	tests := []struct {
		name, text string
		want       []string // "type:span"
	}{
		{"email", "mail John.Doe+x@mail.example.co.uk.", []string{"email:John.Doe+x@mail.example.co.uk"}},
		{"email no tld", "user@localhost and a@b.c", nil},
		{"phone intl", "call +1 415-555-2671 now", []string{"phone:+1 415-555-2671"}},
		{"phone us national", "call (415) 555-2671", []string{"phone:(415) 555-2671"}},
		{"phone gb", "ring 020 7946 0958", []string{"phone:020 7946 0958"}},
		{"phone de", "Tel. 030 12345678", []string{"phone:030 12345678"}},
		{"phone fr", "tél 01 23 45 67 89", []string{"phone:01 23 45 67 89"}},
		{"date not phone", "on 2024-01-15 and 15.01.2024 and 01/15/2024", nil},
		{"card visa spaced", "card 4111 1111 1111 1111", []string{"card:4111 1111 1111 1111"}},
		{"card amex", "amex 378282246310005", []string{"card:378282246310005"}},
		{"card luhn invalid", "card 4111 1111 1111 1112", nil},
		{"card no brand", "tracking 1234 5678 9012 3456", nil},
		{"iban", "IBAN DE89 3704 0044 0532 0130 00", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"iban compact", "GB82WEST12345698765432", []string{"iban:GB82WEST12345698765432"}},
		{"iban bad check", "DE00 3704 0044 0532 0130 00", nil},
		{"ipv4 port", "from 10.0.0.1:8080", []string{"ip:10.0.0.1"}},
		{"ipv4 bounds", "a 255.255.255.255 b 0.0.0.0 c", []string{"ip:255.255.255.255", "ip:0.0.0.0"}},
		{"ipv4 not", "v 256.0.0.1 w 01.2.3.4 x 1.2.3.4567 y 1.2.3 z 1.2.3.4.5 q 1.2.3.4a", nil},
		{"ipv6", "peer 2001:db8::1 and [fe80::1]:443", []string{"ip:2001:db8::1", "ip:[fe80::1]"}},
		{"version not ip", "v1.2.3.4-beta and 10.2.31 and 1.2.3.4.5", nil},
		{"time not ip", "at 10:30:45 MAC 00:1a:2b:3c:4d:5e", nil},
		{"ssn", "SSN 078-05-1120", []string{"ssn:078-05-1120"}},
		{"ssn invalid", "000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000", nil},
		{"isbn uuid hash", "ISBN 978-3-16-148410-0 123e4567-e89b-12d3-a456-426614174000 3f2a9c1d8e7b6a5f4c3d2e1f0a9b8c7d6e5f4a3b", nil},
		{"prices", "$1,234.56 and €99.90 order #A-12345-678", nil},
		{"aws key", "AKIAIOSFODNN7EXAMPLE", []string{"aws_access_key:AKIAIOSFODNN7EXAMPLE"}},
		{"aws secret", "aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []string{"aws_secret_key:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"aws secret no context", "blob wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", nil},
		{"github", "ghp_0123456789abcdefghijABCDEFGHIJ012345", []string{"github_token:ghp_0123456789abcdefghijABCDEFGHIJ012345"}},
		{"slack", "xoxb-123456789012-123456789012-abcdefABCDEF", []string{"slack_token:xoxb-123456789012-123456789012-abcdefABCDEF"}},
		{"stripe", "sk_live_0123456789abcdefABCD", []string{"stripe_key:sk_live_0123456789abcdefABCD"}},
		{"stripe publishable", "pk_live_0123456789abcdefABCD", nil},
		{"google", "AIzaSyA-1234567890abcdefghijklmnopqrstu", []string{"google_api_key:AIzaSyA-1234567890abcdefghijklmnopqrstu"}},
		{"jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-x.", []string{"jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-x"}},
		{"jwt header without alg", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", nil},
		{"pem", "k: -----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY----- done", []string{"private_key:-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----"}},
		{"pem unterminated", "-----BEGIN PRIVATE KEY-----\nAAAA", []string{"private_key:-----BEGIN PRIVATE KEY-----\nAAAA"}},
		{"public key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", nil},
		{"url password", "postgres://app:s3cr3t@db:5432/x", []string{"url_secret:s3cr3t"}},
		{"url query", "https://x.io/a?id=1&access_token=abc.def&b=2", []string{"url_secret:abc.def"}},
		{"plain url", "see https://example.com/docs?page=2&lang=en", nil},
		{"mention", "hi <@U2> and <@W123|bob>", []string{"mention:<@U2>", "mention:<@W123|bob>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, m := range e.scanForTest([]byte(tc.text), maskAll) {
				got = append(got, detectorNames[m.det]+":"+tc.text[m.start:m.end])
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%q:\n got %q\nwant %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestScanLinear(t *testing.T) {
	// Pathological inputs must not be quadratic: 1 MiB in well under a second.
	e := testEngine(t, StreamConfig{}, Options{})
	for _, unit := range []string{"a.", "1.", "1-", "a:", "0 ", "+1 ", "<@", "-----BEGIN "} {
		b := make([]byte, 0, 1<<20)
		for len(b) < 1<<20 {
			b = append(b, unit...)
		}
		e.scanForTest(b, maskAll)
	}
}

// TestDigitRunEnd checks the eight-byte digit test against isDigit for
// every byte value in every lane, next to digits and to other bytes.
func TestDigitRunEnd(t *testing.T) {
	for c := range 256 {
		for lane := range 9 {
			for _, fill := range []byte{'0', '9', '/', ':', 0, 0x80, 0xff, 'a'} {
				b := bytes.Repeat([]byte{fill}, 11)
				if lane < len(b) {
					b[lane] = byte(c)
				}
				for p := range 3 {
					want := p
					for want < len(b) && isDigit(b[want]) {
						want++
					}
					if got := digitRunEnd(b, p); got != want {
						t.Fatalf("digitRunEnd(%q, %d) = %d, want %d", b, p, got, want)
					}
				}
			}
		}
	}
}

// numericRef is numeric before it bounded the card and phone detectors by
// the groups' digits: the reference TestNumericBounds holds it to.
func (sc *scanner) numericRef(t []byte, i int) int {
	if i >= 2 && (t[i-1] == '-' || t[i-1] == '.') && isDigit(t[i-2]) {
		return 0
	}
	m := sc.mask
	var g groups
	g.parse(t, i)
	if g.n == 1 && g.len(0) < 9 {
		return 0
	}
	if m.has(detIP) {
		if end := ipv4At(t, i); end > 0 {
			sc.add(i, end, detIP)
			return end
		}
	}
	if m&(1<<detSSN|1<<detCard|1<<detPhone) == 0 {
		return 0
	}
	if m.has(detSSN) {
		if end := ssnAt(t, i, &g); end > 0 {
			sc.add(i, end, detSSN)
			return end
		}
	}
	if m.has(detCard) {
		if end := cardAt(t, i, &g); end > 0 {
			sc.add(i, end, detCard)
			return end
		}
	}
	if m.has(detPhone) && (g.n > 1 || g.len(0) >= 9) {
		if end := sc.phone(t, i, false); end > 0 {
			return end
		}
	}
	return 0
}

// TestNumericBounds checks numeric against numericRef on random runs of
// digits, separators and parentheses (and on the numbers of the labeled
// corpus), at every start after a non-alnum byte.
func TestNumericBounds(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	sc := &w.sc
	r := rand.New(rand.NewPCG(11, 12))
	var texts [][]byte
	for _, d := range loadCorpus(t) {
		texts = append(texts, []byte(d.Text))
	}
	for range 30000 {
		b := make([]byte, 1+r.IntN(40))
		for j := range b {
			switch k := r.IntN(10); {
			case k < 6:
				b[j] = byte('0' + r.IntN(10))
			case k < 9:
				b[j] = " -./"[r.IntN(4)]
			default:
				b[j] = "()a+"[r.IntN(4)]
			}
		}
		texts = append(texts, b)
	}
	for _, text := range texts {
		for i := range text {
			if !isDigit(text[i]) || (i > 0 && isAlnum(text[i-1])) {
				continue
			}
			for _, m := range []detMask{maskAll, maskPII, 1 << detPhone, 1 << detCard, 1<<detCard | 1<<detPhone} {
				sc.mask = m
				sc.ms = sc.ms[:0]
				want := sc.numericRef(text, i)
				wantMs := fmt.Sprint(sc.ms)
				sc.ms = sc.ms[:0]
				got := sc.numeric(text, i)
				if got != want || fmt.Sprint(sc.ms) != wantMs {
					t.Fatalf("mask %#x, %q at %d: numeric = %d %v, reference %d %s", m, text, i, got, sc.ms, want, wantMs)
				}
			}
		}
	}
}
