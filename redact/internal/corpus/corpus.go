// Package corpus generates the labeled free-text corpus used to measure
// the recall and precision of the redact detectors. Generation is
// deterministic for a seed, so the checked-in testdata can be reproduced
// (go test ./redact -run TestCorpus -update).
package corpus

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Span labels [Start, End) of Doc.Text (byte offsets) with a Type:
// email, phone, card, iban, ip, ssn, secret, url_secret, mention.
type Span struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// Doc is one labeled text.
type Doc struct {
	Text  string `json:"text"`
	Spans []Span `json:"spans"`
}

type gen struct {
	r *rand.Rand
	b strings.Builder
	s []Span
}

func (g *gen) lit(s string) { g.b.WriteString(s) }
func (g *gen) span(typ, s string) {
	st := g.b.Len()
	g.b.WriteString(s)
	g.s = append(g.s, Span{typ, st, g.b.Len()})
}
func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}
func (g *gen) alnum(n int, alphabet string) string {
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[g.r.IntN(len(alphabet))])
	}
	return b.String()
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnumChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64Chars    = alnumChars + "+/"
)

var (
	firsts  = []string{"john", "maria", "li", "ahmed", "sofia", "jean-luc", "anna", "o.brien", "kim", "lars"}
	lasts   = []string{"doe", "schmidt", "wang", "garcia", "muller", "dupont", "rossi", "smith", "nguyen", "x"}
	domains = []string{"example.com", "mail.example.co.uk", "firma.de", "sub.example.org", "corp.example.fr", "ex-ample.io"}
	fillers = []string{
		"Hi team, quick update on the release", "please see below", "thanks!", "Meeting moved to 10:30 tomorrow",
		"the build for v1.2.3.4-beta is green", "version 10.2.31 ships on 2024-01-15", "price is $1,234.56 incl. VAT",
		"order #A-12345-678 was delayed", "ref ORD-2024-000123", "ISBN 978-3-16-148410-0", "see https://example.com/docs?page=2&lang=en",
		"commit 3f2a9c1d8e7b6a5f4c3d2e1f0a9b8c7d6e5f4a3b merged", "uuid 123e4567-e89b-12d3-a456-426614174000",
		"invoice 4111 1111 1111 1112 is void", "tracking 1234 5678 9012 3456", "dated 15.01.2024 at 14:45:00",
		"call me at 5 pm", "room 1.2.3", "ratio 3:2:1", "MAC 00:1a:2b:3c:4d:5e", "bug 000-12-3456 in table", "see 666-12-3456 note",
		"iban-like DE00 1234 5678 9012 3456 78", "token bucket size=42", "key points below", "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"at 01/15/2024", "week 12-2024", "the 2024-2025 season", "std::vector<int> v", "temp 21.5C", "mail me later",
		"q3 revenue 12,345,678", "pi is 3.14159265358979", "port 8080 open", "user@ without domain", "@here ping",
		"http://localhost:8080/path", "pk_live_notasecret", "the AKIA prefix", "ghp_short", "eyJhbGciOi not a jwt",
	}
)

func (g *gen) filler() { g.lit(fillers[g.r.IntN(len(fillers))]) }

func (g *gen) email() string {
	l := g.pick(firsts...)
	switch g.r.IntN(4) {
	case 0:
		l += "." + g.pick(lasts...)
	case 1:
		l += "_" + g.pick(lasts...) + g.digits(2)
	case 2:
		l += "+tag" + g.digits(1)
	}
	d := g.pick(domains...)
	if g.r.IntN(5) == 0 {
		l, d = strings.ToUpper(l[:1])+l[1:], strings.ToUpper(d)
	}
	return l + "@" + d
}

var phoneRegions = []string{"US", "GB", "DE", "FR"}

func (g *gen) phone() string {
	for {
		region := g.pick(phoneRegions...)
		var nat string
		switch region {
		case "US":
			nat = g.pick("212", "415", "646", "312", "617", "202", "305", "713", "206", "503") + fmt.Sprint(2+g.r.IntN(8)) + g.digits(6)
		case "GB":
			nat = g.pick("20", "161", "1632", "7700", "7911", "113") + g.digits(10)
		case "DE":
			nat = g.pick("30", "89", "40", "151", "160", "171", "221") + g.digits(7+g.r.IntN(2))
		case "FR":
			nat = g.pick("1", "6", "7", "4", "9") + g.digits(8)
		}
		num, err := phonenumbers.Parse(nat, region)
		if err != nil {
			continue
		}
		if region == "GB" {
			num, err = phonenumbers.Parse(nat[:len(nat)-(len(nat)-10)], region)
			if err != nil {
				continue
			}
		}
		if !phonenumbers.IsValidNumberForRegion(num, region) {
			continue
		}
		switch g.r.IntN(4) {
		case 0:
			return phonenumbers.Format(num, phonenumbers.E164)
		case 1:
			return phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
		case 2:
			return phonenumbers.Format(num, phonenumbers.NATIONAL)
		default:
			s := phonenumbers.Format(num, phonenumbers.NATIONAL)
			if region == "US" {
				d := phonenumbers.GetNationalSignificantNumber(num)
				return g.pick(d[:3]+"-"+d[3:6]+"-"+d[6:], d[:3]+"."+d[3:6]+"."+d[6:], "+1 ("+d[:3]+") "+d[3:6]+"-"+d[6:])
			}
			return s
		}
	}
}

func luhnDigit(d string) byte {
	sum := 0
	double := true
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

func (g *gen) card() string {
	var prefix string
	var n int
	switch g.r.IntN(6) {
	case 0:
		prefix, n = "4", 16
	case 1:
		prefix, n = fmt.Sprint(51+g.r.IntN(5)), 16
	case 2:
		prefix, n = g.pick("34", "37"), 15
	case 3:
		prefix, n = g.pick("6011", "65", "644"), 16
	case 4:
		prefix, n = fmt.Sprint(3528+g.r.IntN(62)), 16
	case 5:
		prefix, n = g.pick("36", "38", "300"), 14
	}
	d := prefix + g.digits(n-len(prefix)-1)
	d += string(luhnDigit(d))
	switch g.r.IntN(3) {
	case 0:
		return d
	default:
		sep := g.pick(" ", "-")
		var parts []string
		sizes := []int{4, 4, 4, 4}
		if n == 15 {
			sizes = []int{4, 6, 5}
		} else if n == 14 {
			sizes = []int{4, 6, 4}
		}
		p := 0
		for _, s := range sizes {
			parts = append(parts, d[p:p+s])
			p += s
		}
		return strings.Join(parts, sep)
	}
}

var ibanFormats = map[string]string{ // country -> BBAN pattern: n digit, a upper letter, c alnum
	"DE": "nnnnnnnnnnnnnnnnnn", "GB": "aaaannnnnnnnnnnnnn", "FR": "nnnnnnnnnncccccccccccnn", "ES": "nnnnnnnnnnnnnnnnnnnn",
	"IT": "a" + strings.Repeat("n", 10) + strings.Repeat("c", 12), "NL": "aaaannnnnnnnnn", "CH": "nnnnncccccccccccc", "AT": "nnnnnnnnnnnnnnnn",
	"BE": "nnnnnnnnnnnn", "PL": "nnnnnnnnnnnnnnnnnnnnnnnn",
}

func (g *gen) iban() string {
	cc := []string{"DE", "GB", "FR", "ES", "IT", "NL", "CH", "AT", "BE", "PL"}[g.r.IntN(10)]
	var b strings.Builder
	for _, k := range ibanFormats[cc] {
		switch k {
		case 'n':
			b.WriteByte(byte('0' + g.r.IntN(10)))
		case 'a':
			b.WriteByte(byte('A' + g.r.IntN(26)))
		default:
			b.WriteByte(upperDigits[g.r.IntN(26)])
		}
	}
	bban := b.String()
	rem := 0
	for _, c := range bban + cc + "00" {
		if c >= '0' && c <= '9' {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	s := fmt.Sprintf("%s%02d%s", cc, 98-rem, bban)
	if g.r.IntN(2) == 0 {
		var parts []string
		for i := 0; i < len(s); i += 4 {
			parts = append(parts, s[i:min(i+4, len(s))])
		}
		return strings.Join(parts, " ")
	}
	return s
}

func (g *gen) ip() (string, string) { // address, suffix
	if g.r.IntN(2) == 0 {
		a := fmt.Sprintf("%d.%d.%d.%d", 1+g.r.IntN(254), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
		if g.r.IntN(3) == 0 {
			return a, fmt.Sprintf(":%d", 1024+g.r.IntN(60000))
		}
		return a, ""
	}
	h := func() string { return fmt.Sprintf("%x", g.r.IntN(0x10000)) }
	var a string
	switch g.r.IntN(4) {
	case 0:
		parts := make([]string, 8)
		for i := range parts {
			parts[i] = h()
		}
		a = strings.Join(parts, ":")
	case 1:
		a = "2001:db8::" + h() + ":" + h()
	case 2:
		a = "fe80::" + h() + ":" + h() + ":" + h() + ":" + h()
	default:
		a = "::ffff:" + fmt.Sprintf("%d.%d.%d.%d", 1+g.r.IntN(254), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
	}
	if g.r.IntN(3) == 0 {
		return "[" + a + "]", fmt.Sprintf(":%d", 1024+g.r.IntN(60000))
	}
	return a, ""
}

func (g *gen) ssn() string {
	area := 1 + g.r.IntN(899)
	for area == 666 {
		area = 1 + g.r.IntN(899)
	}
	return fmt.Sprintf("%03d-%02d-%04d", area, 1+g.r.IntN(99), 1+g.r.IntN(9999))
}

func (g *gen) secret() (lead, s string) {
	switch g.r.IntN(9) {
	case 0:
		return "key id ", g.pick("AKIA", "ASIA") + g.alnum(16, upperDigits)
	case 1:
		return "aws_secret_access_key = ", g.alnum(19, alnumChars) + "/" + g.alnum(18, alnumChars) + "9a"
	case 2:
		return "token ", g.pick("ghp_", "gho_", "ghs_", "ghu_") + g.alnum(36, alnumChars)
	case 3:
		return "pat ", "github_pat_" + g.alnum(22, alnumChars) + "_" + g.alnum(59, alnumChars)
	case 4:
		return "slack ", g.pick("xoxb-", "xoxp-", "xoxa-") + g.digits(12) + "-" + g.digits(12) + "-" + g.alnum(24, alnumChars)
	case 5:
		return "stripe ", g.pick("sk_live_", "rk_live_", "sk_test_") + g.alnum(24, alnumChars)
	case 6:
		return "maps key ", "AIza" + g.alnum(35, alnumChars+"_-")
	case 7:
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
		p := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"%s","iat":%d}`, g.digits(8), 1700000000+g.r.IntN(1e6))))
		return "Authorization: Bearer ", h + "." + p + "." + g.alnum(43, alnumChars+"_-")
	default:
		var b strings.Builder
		kind := g.pick("RSA ", "EC ", "", "OPENSSH ")
		b.WriteString("-----BEGIN " + kind + "PRIVATE KEY-----\n")
		for range 3 + g.r.IntN(4) {
			b.WriteString(g.alnum(64, b64Chars) + "\n")
		}
		b.WriteString("-----END " + kind + "PRIVATE KEY-----")
		return "here is the key:\n", b.String()
	}
}

// Generate returns n labeled docs for seed.
func Generate(seed uint64, n int) []Doc {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	docs := make([]Doc, 0, n)
	for range n {
		g.b.Reset()
		g.s = nil
		for k := 0; k < 2+g.r.IntN(3); k++ {
			if k > 0 {
				g.lit(g.pick(" ", ". ", "\n", ", ", "; "))
			}
			if g.r.IntN(3) == 0 {
				g.filler()
				continue
			}
			switch g.r.IntN(10) {
			case 0:
				g.lit(g.pick("mail ", "contact: ", "cc ", "<"))
				g.span("email", g.email())
				g.lit(g.pick(".", " thanks", ">", ""))
			case 1:
				g.lit(g.pick("call ", "tel: ", "phone ", "mobile: "))
				g.span("phone", g.phone())
				g.lit(g.pick("", ".", " asap", ")"))
			case 2:
				g.lit(g.pick("card ", "CC: ", "paid with "))
				g.span("card", g.card())
			case 3:
				g.lit(g.pick("IBAN ", "transfer to ", "account: "))
				g.span("iban", g.iban())
			case 4:
				g.lit(g.pick("from ", "host ", "ip=", "peer "))
				a, suf := g.ip()
				g.span("ip", a)
				g.lit(suf)
			case 5:
				g.lit(g.pick("SSN ", "ssn: ", "social "))
				g.span("ssn", g.ssn())
			case 6:
				lead, s := g.secret()
				g.lit(lead)
				g.span("secret", s)
			case 7:
				switch g.r.IntN(2) {
				case 0:
					g.lit(g.pick("https://", "postgres://", "ftp://") + g.pick(firsts...) + ":")
					g.span("url_secret", g.alnum(8+g.r.IntN(10), alnumChars+"!$*"))
					g.lit("@db.example.com:5432/app")
				default:
					g.lit("https://api.example.com/v1/items?id=" + g.digits(4) + "&" + g.pick("token", "access_token", "api_key", "sig") + "=")
					g.span("url_secret", g.alnum(20, alnumChars+"-_"))
					g.lit("&page=2")
				}
			case 8:
				g.lit("thanks ")
				g.span("mention", "<@U"+g.alnum(8, upperDigits)+">")
			default:
				g.filler()
			}
		}
		docs = append(docs, Doc{Text: g.b.String(), Spans: g.s})
	}
	return docs
}
