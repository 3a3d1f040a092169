package redact

import (
	"encoding/base64"
	"unsafe"

	"github.com/tidwall/gjson"
)

// ipv6At matches an IPv6 address starting at i (a hex digit or "::").
// It returns the end of the address, 0 if there is none, or -end of the
// colon run when a run with two or more colons failed validation, so the
// caller skips it as a whole.
func ipv6At(t []byte, i int) int {
	end := i
	colons := 0
	for end < len(t) && (ctab[t[end]]&cHex != 0 || t[end] == ':' || t[end] == '.') {
		if t[end] == ':' {
			colons++
		}
		end++
	}
	for end > i && (t[end-1] == '.' || (t[end-1] == ':' && (end-2 < i || t[end-2] != ':'))) {
		if t[end-1] == ':' {
			colons--
		}
		end--
	}
	if colons < 2 {
		return 0
	}
	if end < len(t) && (isAlnum(t[end]) || t[end] == '_') {
		return -end
	}
	if !validIPv6(t[i:end]) {
		return -end
	}
	return end
}

// ipv6Bracketed matches "[addr]" at i; a port after it is kept.
func ipv6Bracketed(t []byte, i int) int {
	end := i + 1
	for end < len(t) && (ctab[t[end]]&cHex != 0 || t[end] == ':' || t[end] == '.') {
		end++
	}
	if end >= len(t) || t[end] != ']' || !validIPv6(t[i+1:end]) {
		return 0
	}
	return end + 1
}

// validIPv6 validates the RFC 4291 text forms, including "::" compression
// and a trailing dotted IPv4.
func validIPv6(s []byte) bool {
	if len(s) < 2 || len(s) > 45 {
		return false
	}
	groups := 0
	compressed := false
	i := 0
	if s[0] == ':' {
		if s[1] != ':' {
			return false
		}
		compressed = true
		i = 2
		if i == len(s) {
			return true
		}
	}
	for i < len(s) {
		// a trailing IPv4
		j := i
		for j < len(s) && ctab[s[j]]&cHex != 0 {
			j++
		}
		if j < len(s) && s[j] == '.' {
			if ipv4At(s, i) != len(s) {
				return false
			}
			groups += 2
			i = len(s)
			break
		}
		if j == i || j-i > 4 {
			return false
		}
		groups++
		i = j
		if i == len(s) {
			break
		}
		if s[i] != ':' {
			return false
		}
		i++
		if i < len(s) && s[i] == ':' {
			if compressed {
				return false
			}
			compressed = true
			i++
			if i == len(s) {
				break
			}
		} else if i == len(s) {
			return false
		}
	}
	if compressed {
		return groups <= 7
	}
	return groups == 8
}

// ibanLengths maps a country code to its IBAN length (SWIFT IBAN registry).
var ibanLengths = map[[2]byte]int8{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28, {'B', 'A'}: 20, {'B', 'E'}: 16,
	{'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27, {'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22,
	{'C', 'Y'}: 28, {'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28, {'E', 'E'}: 20,
	{'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18, {'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22,
	{'G', 'E'}: 22, {'G', 'I'}: 23, {'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'R'}: 21, {'H', 'U'}: 28,
	{'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26, {'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30,
	{'K', 'Z'}: 20, {'L', 'B'}: 28, {'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19, {'M', 'N'}: 20, {'M', 'R'}: 27,
	{'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28, {'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24,
	{'P', 'L'}: 28, {'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22, {'R', 'U'}: 33,
	{'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24, {'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27,
	{'S', 'O'}: 23, {'S', 'T'}: 25, {'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

// ibanLengthTab is ibanLengths indexed by (c0-'A')*26 + c1-'A' (0: no IBAN).
var ibanLengthTab = func() (tab [26 * 26]int8) {
	for cc, n := range ibanLengths {
		tab[int(cc[0]-'A')*26+int(cc[1]-'A')] = n
	}
	return tab
}()

// ibanAt matches an IBAN at i, compact or in groups of four separated by
// single spaces, with the country's length and a valid mod-97 check.
func ibanAt(t []byte, i int) int {
	if i+4 > len(t) || ctab[t[i+1]]&cUpper == 0 || !isDigit(t[i+2]) || !isDigit(t[i+3]) {
		return 0
	}
	want := ibanLengthTab[int(t[i]-'A')*26+int(t[i+1]-'A')]
	if want == 0 {
		return 0
	}
	var chars [34 + 4]byte
	n := 0
	p := i
	for p < len(t) && n < int(want) {
		c := t[p]
		switch {
		case isDigit(c) || ctab[c]&cUpper != 0:
			chars[n] = c
			n++
			p++
		case c == ' ' && n%4 == 0 && p+1 < len(t) && isAlnum(t[p+1]):
			p++
		default:
			return 0
		}
	}
	if n != int(want) || (p < len(t) && isAlnum(t[p])) {
		return 0
	}
	// mod 97 over BBAN + country + check digits, letters as 10..35; the
	// remainder is taken only when the accumulator nears 2^56, as
	// multiplying by 100 and adding 35 stays below 2^63 until then.
	var rem uint64
	// The BBAN, then the country and check digits, copied after it.
	copy(chars[n:], chars[:4])
	for _, c := range chars[4 : n+4] {
		if isDigit(c) {
			rem = rem*10 + uint64(c-'0')
		} else {
			rem = rem*100 + uint64(c-'A'+10)
		}
		if rem >= 1<<56 {
			rem %= 97
		}
	}
	if rem%97 != 1 {
		return 0
	}
	return p
}

// credentialAt matches a token with a well-known prefix at i.
func credentialAt(t []byte, i int, m detMask, jwtBuf *[]byte) (int, detector) {
	rest := t[i:]
	run := func(from int, class uint8) int {
		p := from
		for p < len(rest) && ctab[rest[p]]&class != 0 {
			p++
		}
		return p
	}
	switch t[i] {
	case 'A':
		if len(rest) >= 20 && m.has(detAWSKey) && isAWSKeyPrefix(rest[:4]) {
			p := 4
			for p < len(rest) && (ctab[rest[p]]&cUpper != 0 || isDigit(rest[p])) {
				p++
			}
			if p == 20 && (p == len(rest) || !isAlnum(rest[p])) {
				return i + p, detAWSKey
			}
		}
		if len(rest) >= 39 && m.has(detGoogle) && string(rest[:4]) == "AIza" {
			if p := run(4, cB64URL); p == 39 {
				return i + p, detGoogle
			}
		}
	case 'g':
		if m.has(detGitHub) && len(rest) > 4 && string(rest[:2]) == "gh" && rest[3] == '_' {
			switch rest[2] {
			case 'p', 'o', 's', 'u', 'r':
				if p := run(4, cAlnum); p-4 >= 30 && (p == len(rest) || rest[p] != '_') {
					return i + p, detGitHub
				}
			}
		}
		if m.has(detGitHub) && len(rest) > 11 && string(rest[:11]) == "github_pat_" {
			p := 11
			for p < len(rest) && (isAlnum(rest[p]) || rest[p] == '_') {
				p++
			}
			if p-11 >= 22 {
				return i + p, detGitHub
			}
		}
	case 'x':
		if m.has(detSlack) && len(rest) > 5 {
			if (string(rest[:3]) == "xox" && rest[4] == '-' && (rest[3] == 'b' || rest[3] == 'p' || rest[3] == 'a' || rest[3] == 'o' || rest[3] == 'r' || rest[3] == 's')) ||
				string(rest[:5]) == "xapp-" {
				p := 5
				for p < len(rest) && (isAlnum(rest[p]) || rest[p] == '-') {
					p++
				}
				if p-5 >= 10 {
					return i + p, detSlack
				}
			}
		}
	case 's', 'r':
		if m.has(detStripe) && len(rest) > 8 && rest[1] == 'k' && rest[2] == '_' &&
			(string(rest[3:8]) == "live_" || string(rest[3:8]) == "test_") {
			if p := run(8, cAlnum); p-8 >= 16 {
				return i + p, detStripe
			}
		}
	case 'e':
		if m.has(detJWT) && len(rest) > 10 && string(rest[:3]) == "eyJ" {
			if p := jwtEnd(rest, jwtBuf); p > 0 {
				return i + p, detJWT
			}
		}
	}
	return 0, 0
}

func isAWSKeyPrefix(p []byte) bool {
	switch string(p) {
	case "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA":
		return true
	}
	return false
}

// jwtEnd matches header.payload.signature in base64url where the header
// decodes to a JSON object with an "alg" member.
func jwtEnd(t []byte, buf *[]byte) int {
	p := 0
	var dots [2]int
	for part := 0; part < 3; part++ {
		s := p
		for p < len(t) && ctab[t[p]]&cB64URL != 0 {
			p++
		}
		if part < 2 {
			if p == s || p >= len(t) || t[p] != '.' {
				return 0
			}
			dots[part] = p
			p++
		}
	}
	// JWE compact serialization has five parts; a lone '.' ends the sentence.
	for extra := 0; extra < 2 && p+1 < len(t) && t[p] == '.' && ctab[t[p+1]]&cB64URL != 0; extra++ {
		p++
		for p < len(t) && ctab[t[p]]&cB64URL != 0 {
			p++
		}
	}
	if p < len(t) && t[p] == '=' {
		return 0
	}
	h := t[:dots[0]]
	if len(h) > 1024 || dots[1]-dots[0] < 2 {
		return 0
	}
	enc := base64.RawURLEncoding
	b := (*buf)[:0]
	if cap(b) < enc.DecodedLen(len(h)) {
		b = make([]byte, 0, 1024)
	}
	b = b[:enc.DecodedLen(len(h))]
	n, err := enc.Decode(b, h)
	*buf = b[:0]
	if err != nil {
		return 0
	}
	hs := unsafe.String(unsafe.SliceData(b), n)
	if !gjson.Valid(hs) || !gjson.Get(hs, "alg").Exists() {
		return 0
	}
	return p
}

// awsSecret matches a 40-character AWS secret access key at i when the
// 64 bytes before it mention a secret ("secret", "aws_secret", ...).
func awsSecret(t []byte, i int) int {
	p := i
	upper, lower, digit := false, false, false
	for p < len(t) && ctab[t[p]]&cB64 != 0 && p-i <= 40 {
		c := t[p]
		upper = upper || ctab[c]&cUpper != 0
		digit = digit || isDigit(c)
		lower = lower || (c >= 'a' && c <= 'z')
		p++
	}
	if p-i != 40 || !(upper && lower && digit) || (p < len(t) && (t[p] == '=' || ctab[t[p]]&cB64 != 0)) {
		return 0
	}
	from := i - 64
	if from < 0 {
		from = 0
	}
	if !containsFold(t[from:i], "secret") {
		return 0
	}
	return p
}

// containsFold reports whether b contains the lower-case ASCII word w,
// ignoring ASCII case.
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for j < len(w) {
			c := b[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}
