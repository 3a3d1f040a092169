package redact

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"sync/atomic"

	"github.com/nyaruka/phonenumbers"
)

// groups is a run of digit groups separated by single ' ', '-', '.' or '/'.
type groups struct {
	n     int
	start [8]int32
	end   [8]int32
	sep   [8]byte // separator before group k (0 for the first)
}

func (g *groups) parse(t []byte, i int) {
	g.n = 0
	p := i
	for g.n < len(g.start) {
		s := p
		p = digitRunEnd(t, p)
		if p == s || p-s > 19 {
			return
		}
		g.start[g.n], g.end[g.n] = int32(s), int32(p)
		g.n++
		if p+1 < len(t) && (t[p] == ' ' || t[p] == '-' || t[p] == '.' || t[p] == '/') && isDigit(t[p+1]) {
			g.sep[g.n%len(g.sep)] = t[p]
			p++
			continue
		}
		return
	}
}

func (g *groups) len(k int) int { return int(g.end[k] - g.start[k]) }

// ipv4Shape reports whether the groups can be an IPv4 address: four or
// more, the first three followed by '.'.
func (g *groups) ipv4Shape() bool {
	return g.n >= 4 && g.sep[1] == '.' && g.sep[2] == '.' && g.sep[3] == '.'
}

// parenNext reports whether a separator and '(' follow the last group,
// where phone's grammar goes on and parse's does not.
func (g *groups) parenNext(t []byte) bool {
	if g.n == 0 {
		return false
	}
	p := int(g.end[g.n-1])
	return p+1 < len(t) && (t[p] == ' ' || t[p] == '-' || t[p] == '.' || t[p] == '/') && t[p+1] == '('
}

// digitRunEnd returns the end of the run of ASCII digits at p, eight bytes
// at a time where it can: a loop per byte mispredicts at the end of
// nearly every number, as their lengths vary.
func digitRunEnd(t []byte, p int) int {
	for ; p+8 <= len(t); p += 8 {
		if m := notDigits(binary.LittleEndian.Uint64(t[p : p+8])); m != 0 {
			return p + bits.TrailingZeros64(m)>>3
		}
	}
	for p < len(t) && isDigit(t[p]) {
		p++
	}
	return p
}

// notDigits returns x's bytes that are not ASCII digits, as their high
// bits. The additions are to the low seven bits of each byte, so no
// carry crosses into the next; bytes from 0x80 are not digits.
func notDigits(x uint64) uint64 {
	const l7 = 0x7f * lsb
	v := x & l7
	return ((v + (0x80-':')*lsb) | ^(v + (0x80-'0')*lsb) | x) & msb
}

// sameSep reports whether groups 1..k-1 are all separated by one of seps.
func (g *groups) sameSep(k int, seps string) bool {
	if k < 2 {
		return true
	}
	s := g.sep[1]
	ok := false
	for i := 0; i < len(seps); i++ {
		ok = ok || seps[i] == s
	}
	if !ok {
		return false
	}
	for j := 2; j < k; j++ {
		if g.sep[j] != s {
			return false
		}
	}
	return true
}

// endsWord reports whether position p ends a token: not followed by an
// alnum, nor by a separator and another digit (the number would go on).
func endsWord(t []byte, p int) bool {
	if p >= len(t) {
		return true
	}
	c := t[p]
	if isAlnum(c) || c == '_' {
		return false
	}
	if (c == '.' || c == '-') && p+1 < len(t) && isDigit(t[p+1]) {
		return false
	}
	return true
}

// ipv4At matches a dotted-quad IPv4 address at i; a port after it is kept.
func ipv4At(t []byte, i int) int {
	if i > 0 && (t[i-1] == '.' || t[i-1] == '-') {
		return 0
	}
	p := i
	for oct := 0; oct < 4; oct++ {
		if oct > 0 {
			if p >= len(t) || t[p] != '.' {
				return 0
			}
			p++
		}
		s := p
		p = digitRunEnd(t, p)
		l := p - s
		if l == 0 || l > 3 || (l > 1 && t[s] == '0') {
			return 0
		}
		if v := num(t[s:p]); v > 255 {
			return 0
		}
	}
	if !endsWord(t, p) {
		return 0
	}
	return p
}

// ssnAt matches a US SSN "AAA-GG-SSSS" (or with spaces) with valid ranges:
// area not 000, 666 or 9xx; group not 00; serial not 0000.
func ssnAt(t []byte, i int, g *groups) int {
	if g.n != 3 || g.len(0) != 3 || g.len(1) != 2 || g.len(2) != 4 || !g.sameSep(3, "- ") {
		return 0
	}
	end := int(g.end[2])
	if !endsWord(t, end) || (i > 0 && (t[i-1] == '-' || t[i-1] == '.')) {
		return 0
	}
	a := t[i : i+3]
	area := int(a[0]-'0')*100 + int(a[1]-'0')*10 + int(a[2]-'0')
	if area == 0 || area == 666 || area >= 900 {
		return 0
	}
	gs := g.start[1]
	if t[gs] == '0' && t[gs+1] == '0' {
		return 0
	}
	ss := g.start[2]
	if string(t[ss:ss+4]) == "0000" {
		return 0
	}
	return end
}

// cardAt matches a payment card number of 13-19 digits, contiguous or in
// groups separated consistently by spaces or dashes, with a known brand
// prefix and a valid Luhn check digit.
func cardAt(t []byte, i int, g *groups) int {
	if i > 0 && (t[i-1] == '-' || t[i-1] == '.') {
		return 0
	}
	var d [19]byte
	for k := g.n; k >= 1; k-- {
		if !g.sameSep(k, " -") {
			continue
		}
		n := 0
		for j := 0; j < k; j++ {
			n += g.len(j)
		}
		if n < 13 || n > 19 {
			continue
		}
		end := int(g.end[k-1])
		if k == g.n && !endsWord(t, end) {
			return 0
		}
		if k < g.n && g.sep[k] != g.sep[1] && k > 1 {
			continue
		}
		n = 0
		for j := 0; j < k; j++ {
			n += copy(d[n:], t[g.start[j]:g.end[j]])
		}
		if cardBrand(d[:n]) && luhn(d[:n]) {
			return end
		}
	}
	return 0
}

func num(d []byte) int {
	v := 0
	for _, c := range d {
		v = v*10 + int(c-'0')
	}
	return v
}

func cardBrand(d []byte) bool {
	l := len(d)
	switch {
	case d[0] == '4': // Visa
		return l == 13 || l == 16 || l == 19
	case d[0] == '5': // Mastercard
		p := num(d[:2])
		return p >= 51 && p <= 55 && l == 16
	case d[0] == '2': // Mastercard 2-series
		p := num(d[:4])
		return p >= 2221 && p <= 2720 && l == 16
	case d[0] == '3':
		p2 := num(d[:2])
		switch {
		case p2 == 34 || p2 == 37: // Amex
			return l == 15
		case p2 == 35: // JCB
			p := num(d[:4])
			return p >= 3528 && p <= 3589 && l >= 16
		case p2 == 36 || p2 == 38 || p2 == 39: // Diners
			return l >= 14
		case p2 == 30:
			p := num(d[:3])
			return p <= 305 && l >= 14
		}
	case d[0] == '6': // Discover
		if l < 16 {
			return false
		}
		if string(d[:4]) == "6011" || string(d[:2]) == "65" {
			return true
		}
		if p := num(d[:3]); p >= 644 && p <= 649 {
			return true
		}
		p := num(d[:6])
		return p >= 622126 && p <= 622925
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	double := false
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
	return sum%10 == 0
}

// phone matches a phone number at i: international when t[i] is '+',
// otherwise a national number in one of the configured regions. Candidate
// shapes are checked here; libphonenumber validates them, behind a
// verdict cache so recurring numbers cost no allocation.
func (sc *scanner) phone(t []byte, i int, intl bool) int {
	var ends [8]int32
	var digits [8]int8
	var seps [8]byte
	var lens [8]int8
	n := 0
	p := i
	if intl {
		p++
	} else if i >= 2 && isDigit(t[i-2]) && (t[i-1] == ' ' || t[i-1] == '-' || t[i-1] == '.' || t[i-1] == '/') {
		// A national number does not start in the middle of a digit run.
		return 0
	}
	d := 0
	paren := false
	gs := p
	glen := 0
	for p < len(t) && n < len(ends) {
		c := t[p]
		switch {
		case isDigit(c):
			d++
			glen++
			p++
			if d > 15 {
				n = 0 // too long: not a phone number
				p = len(t)
			}
			continue
		case c == '(' && !paren && glen == 0 && p+1 < len(t) && isDigit(t[p+1]):
			paren = true
			p++
			continue
		case c == ')' && paren && glen > 0:
			paren = false
			p++
			if p < len(t) && t[p] == ' ' && p+1 < len(t) && isDigit(t[p+1]) {
				p++
			}
			ends[n], digits[n], lens[n], seps[n] = int32(p), int8(d), int8(glen), ')'
			n++
			glen = 0
			continue
		}
		if glen > 0 {
			ends[n], digits[n], lens[n] = int32(p), int8(d), int8(glen)
			n++
			glen = 0
		}
		if (c == ' ' || c == '-' || c == '.' || c == '/') && p+1 < len(t) && (isDigit(t[p+1]) || t[p+1] == '(') && p > gs && !paren {
			if n > 0 && seps[n-1] == 0 {
				seps[n-1] = c
			}
			p++
			continue
		}
		break
	}
	if glen > 0 && n < len(ends) && !paren {
		ends[n], digits[n], lens[n] = int32(p), int8(d), int8(glen)
		n++
	}
	// Try the longest candidate first, then drop trailing groups.
	for k := n; k >= 1 && k > n-4; k-- {
		end := int(ends[k-1])
		for end > i && (t[end-1] == ' ' || t[end-1] == ')' && !isDigit(t[end-2])) {
			end--
		}
		if k == n && !endsWord(t, end) && !(end < len(t) && t[end] == ')') {
			return 0
		}
		if k < n && seps[k-1] == seps[0] && seps[0] != 0 && k > 1 && !(intl) {
			// A national number does not stop in the middle of a uniformly
			// separated run (dates, ISBNs, version lists).
			continue
		}
		dn := int(digits[k-1])
		if intl {
			if dn < 7 || dn > 15 {
				continue
			}
		} else if !nationalShape(t, i, lens[:k], seps[:k], dn) {
			continue
		}
		if sc.e.phoneValid(t[i:end], intl) {
			sc.add(i, end, detPhone)
			return end
		}
	}
	return 0
}

// nationalShape accepts the shapes national numbers are written in:
// US "(415) 555-2671", "415-555-2671", "415.555.2671", "415 555 2671",
// "1-415-555-2671"; trunk-prefixed European numbers "020 7946 0958",
// "030 12345678", "0151/23456789", "01 23 45 67 89", "0612345678".
func nationalShape(t []byte, i int, lens []int8, seps []byte, d int) bool {
	k := len(lens)
	first := t[i]
	if first == '(' {
		first = t[i+1]
		if first != '0' {
			// US: (415) 555-2671
			return d == 10 && k == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 4 && (seps[1] == '-' || seps[1] == ' ' || seps[1] == '.')
		}
	}
	if first != '0' {
		if d == 10 && k == 3 && lens[0] == 3 && lens[1] == 3 && lens[2] == 4 && seps[0] == seps[1] && seps[0] != '/' {
			return first >= '2'
		}
		if d == 11 && k == 4 && first == '1' && lens[0] == 1 && lens[1] == 3 && lens[2] == 3 && lens[3] == 4 && seps[0] == seps[1] && seps[1] == seps[2] {
			return true
		}
		return false
	}
	if d < 9 || d > 12 {
		return false
	}
	if k == 1 {
		return d == 10 || d == 11
	}
	// one separator kind, except that the area code may be closed by '/' or ')'
	s := seps[k-2]
	for j := 1; j < k-1; j++ {
		if seps[j] != s {
			return false
		}
	}
	if seps[0] != s && seps[0] != '/' && seps[0] != ')' {
		return false
	}
	for j := 1; j < k; j++ {
		if lens[j] < 2 {
			return false
		}
	}
	return true
}

var phoneSeed = maphash.MakeSeed()

// phoneValid validates a candidate with libphonenumber, remembering the
// verdict in a fixed-size lock-free cache: an entry holds the candidate's
// 62-bit hash, a "set" bit and the verdict bit.
func (e *Engine) phoneValid(cand []byte, intl bool) bool {
	h := maphash.Bytes(phoneSeed, cand)
	if intl {
		h ^= 0x9e3779b97f4a7c15
	}
	// 4-way set associative: a bucket is 4 consecutive entries.
	base := (h >> 2) % uint64(len(e.phoneCache)/4) * 4
	tag := h &^ 3
	for k := uint64(0); k < 4; k++ {
		if v := e.phoneCache[base+k].Load(); v&^3 == tag && v&2 != 0 {
			return v&1 != 0
		}
	}
	ok := e.phoneValidSlow(string(cand), intl)
	v := tag | 2
	if ok {
		v |= 1
	}
	victim := base + (h>>40)%4
	for k := uint64(0); k < 4; k++ {
		if e.phoneCache[base+k].Load() == 0 {
			victim = base + k
			break
		}
	}
	e.phoneCache[victim].Store(v)
	return ok
}

func (e *Engine) phoneValidSlow(s string, intl bool) bool {
	if intl {
		num, err := phonenumbers.Parse(s, "")
		return err == nil && phonenumbers.IsValidNumber(num)
	}
	for _, r := range e.regions {
		num, err := phonenumbers.Parse(s, r)
		if err == nil && phonenumbers.IsValidNumberForRegion(num, r) {
			return true
		}
	}
	return false
}

type phoneCache [16384]atomic.Uint64

func isPhoneRegion(r string) bool {
	return phonenumbers.GetSupportedRegions()[r]
}
