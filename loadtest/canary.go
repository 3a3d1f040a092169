package loadtest

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
)

// CanaryKind names what a canary is, in the words of CONTRACT §5.
type CanaryKind string

// The canary kinds. Credentials are the always-on class: they must be gone at
// every forwarded level. The others are PII that must be gone at
// `anonymized` and may pass at `allow`.
const (
	KindEmail      CanaryKind = "email"
	KindPhone      CanaryKind = "phone"
	KindCard       CanaryKind = "card"
	KindIBAN       CanaryKind = "iban"
	KindSSN        CanaryKind = "ssn"
	KindIPv4       CanaryKind = "ipv4"
	KindIPv6       CanaryKind = "ipv6"
	KindAWSKey     CanaryKind = "aws_access_key"
	KindGitHub     CanaryKind = "github_token"
	KindPrivateKey CanaryKind = "private_key"
	KindURLSecret  CanaryKind = "url_secret"
)

// Credential reports whether the kind is removed even at `allow` (the
// always-on rules: credentials, tokens, private keys, secrets in URLs).
func (k CanaryKind) Credential() bool {
	switch k {
	case KindAWSKey, KindGitHub, KindPrivateKey, KindURLSecret:
		return true
	}
	return false
}

// A Canary is one known PII or credential value. Value is the byte sequence
// the oracle searches for; Text is how it is written into an event (a
// private key block whose Value is one of its body lines, a URL whose Value
// is its password). Values need no JSON escaping, so a raw byte search over
// an output record finds them wherever they survive in a string field.
type Canary struct {
	Kind  CanaryKind `json:"kind"`
	Value string     `json:"value"`
	Text  string     `json:"-"`
}

// maxCanaries bounds the set so an event's canaries fit in a uint64 mask.
const maxCanaries = 64

// Canaries is the fixed set of canary values of one run, indexed by bit.
type Canaries []Canary

// NewCanaries returns the canary set for a seed. The PII values are fixed
// real-format samples chosen to pass the checks the stage applies (the phone
// numbers are valid for libphonenumber, the card numbers pass Luhn, the IBANs
// pass mod-97, the SSNs avoid the never-issued ranges); the credentials are
// generated from the seed so no token-shaped literal sits in the source.
func NewCanaries(seed uint64) Canaries {
	rng := rand.New(rand.NewPCG(seed, 0xca9a41e5))
	c := Canaries{
		{Kind: KindEmail, Value: "ada.lovelace@example.com"},
		{Kind: KindEmail, Value: "grace.hopper+ml@mail.example.org"},
		{Kind: KindEmail, Value: "k.johnson@research.example.net"},
		{Kind: KindEmail, Value: "linus_t@kernel.example.io"},
		{Kind: KindPhone, Value: "+1 415 555 0134"},
		{Kind: KindPhone, Value: "+1 650 253 0000"},
		{Kind: KindPhone, Value: "+44 20 7946 0958"},
		{Kind: KindPhone, Value: "+49 30 901820"},
		{Kind: KindPhone, Value: "+33 1 42 68 53 00"},
		{Kind: KindCard, Value: "4111 1111 1111 1111"},
		{Kind: KindCard, Value: "5500-0000-0000-0004"},
		{Kind: KindCard, Value: "4012888888881881"},
		{Kind: KindCard, Value: "3782 822463 10005"},
		{Kind: KindIBAN, Value: "GB82 WEST 1234 5698 7654 32"},
		{Kind: KindIBAN, Value: "DE89370400440532013000"},
		{Kind: KindIBAN, Value: "FR14 2004 1010 0505 0001 3M02 606"},
		{Kind: KindSSN, Value: "536-22-8714"},
		{Kind: KindSSN, Value: "401-67-2290"},
		{Kind: KindIPv4, Value: "203.0.113.42"},
		{Kind: KindIPv4, Value: "198.51.100.7"},
		{Kind: KindIPv6, Value: "2001:db8:85a3::8a2e:370:7334"},
	}
	for range 3 {
		c = append(c, Canary{Kind: KindAWSKey, Value: "AKIA" + randString(rng, upperDigits, 16)})
	}
	for range 3 {
		c = append(c, Canary{Kind: KindGitHub, Value: "ghp_" + randString(rng, alnum, 36)})
	}
	for range 2 {
		lines := []string{randString(rng, b64chars, 64), randString(rng, b64chars, 64), randString(rng, b64chars, 40) + "=="}
		text := "-----BEGIN RSA PRIVATE KEY-----\n" + strings.Join(lines, "\n") + "\n-----END RSA PRIVATE KEY-----"
		c = append(c, Canary{Kind: KindPrivateKey, Value: lines[0], Text: text})
	}
	for range 2 {
		pw := randString(rng, alnum, 20)
		c = append(c, Canary{Kind: KindURLSecret, Value: pw, Text: "https://deploy:" + pw + "@git.example.com/infra/deploy.git"})
	}
	for range 2 {
		tok := randString(rng, alnum, 32)
		c = append(c, Canary{Kind: KindURLSecret, Value: tok, Text: "https://api.example.com/v1/export?user=7&access_token=" + tok})
	}
	for i := range c {
		if c[i].Text == "" {
			c[i].Text = c[i].Value
		}
	}
	return c
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64chars    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randString(rng *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// Forbidden returns the mask of canaries that must not survive at a
// forwarded level: the credentials at `allow`, all of them at `anonymized`.
func (c Canaries) Forbidden(anonymized bool) uint64 {
	var m uint64
	for i, k := range c {
		if anonymized || k.Kind.Credential() {
			m |= 1 << i
		}
	}
	return m
}

// Find returns the subset of mask whose canary values occur in b.
func (c Canaries) Find(b []byte, mask uint64) uint64 {
	var found uint64
	for i := range c {
		if mask&(1<<i) != 0 && bytes.Contains(b, []byte(c[i].Value)) {
			found |= 1 << i
		}
	}
	return found
}

// Kinds lists the kinds of the canaries in mask, for reports.
func (c Canaries) Kinds(mask uint64) []string {
	var out []string
	for i := range c {
		if mask&(1<<i) != 0 && !slices.Contains(out, string(c[i].Kind)) {
			out = append(out, string(c[i].Kind))
		}
	}
	return out
}
