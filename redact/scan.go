package redact

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// Free-text scanning: one forward pass over the text. At every word start
// (an ASCII letter or digit not preceded by one) and at a few punctuation
// characters ('+', '(', '<', '[', ':', '-') the scanner tries the detectors
// that can begin there, validates the candidate (Luhn, mod-97, ranges,
// libphonenumber, JWT header, ...) and, on a match, records the span and
// continues after it. Matches are therefore in order and never overlap.
// Most bytes cannot matter: scan skips them with one table lookup each and
// runs the detectors only around trigger bytes (see scan and trigTabs),
// with exactly the result of trying every word start.
// The pass allocates nothing unless a phone-number candidate misses the
// verdict cache (libphonenumber allocates).

const (
	cAlnum uint8 = 1 << iota
	cDigit
	cUpper
	cHex
	cLocal  // email local part: alnum . _ % + -
	cDomain // alnum . -
	cB64    // alnum + /
	cB64URL // alnum _ -
)

var ctab = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		var v uint8
		switch {
		case c >= '0' && c <= '9':
			v = cAlnum | cDigit | cHex
		case c >= 'A' && c <= 'Z':
			v = cAlnum | cUpper
			if c <= 'F' {
				v |= cHex
			}
		case c >= 'a' && c <= 'z':
			v = cAlnum
			if c <= 'f' {
				v |= cHex
			}
		}
		if v&cAlnum != 0 {
			v |= cLocal | cDomain | cB64 | cB64URL
		}
		switch c {
		case '.':
			v |= cLocal | cDomain
		case '_':
			v |= cLocal | cB64URL
		case '%':
			v |= cLocal
		case '+':
			v |= cLocal | cB64
		case '-':
			v |= cLocal | cDomain | cB64URL
		case '/':
			v |= cB64
		}
		t[c] = v
	}
	return t
}()

func isAlnum(c byte) bool { return ctab[c]&cAlnum != 0 }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// match is one detected span [start, end) of the scanned text. For
// mentions, aux is the end of the user id (the id starts at start+2).
type match struct {
	start, end int32
	aux        int32
	det        detector
}

// scanner holds what one scan needs; it lives in the pooled scratch.
type scanner struct {
	e    *Engine
	mask detMask
	ms   []match
	jwt  []byte   // JWT header decode buffer
	tb   trigBits // the triggers of the text being scanned, if bitsOK
	// bitsOK: tb holds the text's triggers (the AVX2 path); otherwise
	// scan asks scalarNextTrigger.
	bitsOK bool
	// With shaped set, shapeAt is the digit word start whose numberShape
	// scan has just found to pass, with its groups and digits in shapeG
	// and shapeDigits, so that numeric does not parse them again.
	shaped      bool
	shapeAt     int
	shapeG      groups
	shapeDigits int
}

func (sc *scanner) add(start, end int, d detector) {
	sc.ms = append(sc.ms, match{start: int32(start), end: int32(end), det: d})
}

// scan appends the matches in t to sc.ms.
//
// The result is exactly that of stepping through t with step from 0 (the
// reference loop: a detector pass at every word start and at a few
// punctuation characters). Most positions cannot start a match, so scan
// skips them: the next byte that could matter (see trigTabs) comes from
// a bitmap of the text's triggers computed 30 bytes at a time with AVX2
// (see trigBits), or, without AVX2, from scalarNextTrigger, with one
// table lookup per byte and no data-dependent branch; and slow replays the
// reference loop from the earliest position that byte can influence
// until the loop is back at a word boundary. A digit word's trigger needs
// no replay unless its digit groups have a number's shape (numberShape):
// most are dates, times, versions and counts. Between
// triggers the reference loop would only step over words and punctuation
// without a match, so skipping them changes nothing.
func (sc *scanner) scan(t []byte) {
	tab := triggerTable(sc.mask)
	sc.bitsOK = sc.tb.fill(tab, t)
	lo := 0   // the reference loop is at lo, a word boundary; nothing before lo is left to do
	from := 0 // the next trigger is at or after from (lo, or past skipped digit words)
	for from < len(t) {
		var a int
		if sc.bitsOK {
			a = nextBit(sc.tb.trig, from)
		} else {
			a = scalarNextTrigger(tab, t, from)
		}
		if a >= len(t) {
			return
		}
		// A digit is only ever the trigger of a digit word, which serves
		// numeric alone: where numeric would find nothing, the reference
		// loop steps over the word, so the trigger is no trigger (a replay
		// for a later one may start before it; that is still the reference
		// loop, which lo does not need to pass it for).
		if isDigit(t[a]) {
			d, ok := numberShape(t, a, &sc.shapeG)
			if !ok {
				from = a + 1
				continue
			}
			sc.shaped, sc.shapeAt, sc.shapeDigits = true, a, d
		} else if t[a] == '=' && !secretNameBefore(t, a) {
			// '=' is only ever the trigger of a secret parameter's value.
			from = a + 1
			continue
		}
		lo = sc.slow(t, lo, a)
		sc.shaped = false
		from = lo
	}
}

// step runs the reference loop once at position i and returns where it
// continues.
func (sc *scanner) step(t []byte, i int) int {
	n := len(t)
	m := sc.mask
	c := t[i]
	if ctab[c]&cAlnum != 0 {
		return sc.word(t, i)
	}
	next := i + 1
	switch c {
	case '+':
		if m.has(detPhone) && i+1 < n && isDigit(t[i+1]) && (i == 0 || !isAlnum(t[i-1])) {
			if end := sc.phone(t, i, true); end > 0 {
				next = end
			}
		}
	case '(':
		if m.has(detPhone) && i+1 < n && isDigit(t[i+1]) {
			if end := sc.phone(t, i, false); end > 0 {
				next = end
			}
		}
	case '<':
		if m.has(detMention) && i+2 < n && t[i+1] == '@' {
			if end := sc.mention(t, i); end > 0 {
				next = end
			}
		}
	case '[':
		if m.has(detIP) {
			if end := ipv6Bracketed(t, i); end > 0 {
				sc.add(i, end, detIP)
				next = end
			}
		}
	case ':':
		if m.has(detIP) && i+1 < n && t[i+1] == ':' && (i == 0 || (t[i-1] != ':' && !isAlnum(t[i-1]))) {
			if end := ipv6At(t, i); end > 0 {
				sc.add(i, end, detIP)
				next = end
			}
		}
	case '-':
		if m.has(detPrivateKey) && i+11 <= n && string(t[i:i+11]) == "-----BEGIN " {
			if end := pemBlock(t, i); end > 0 {
				sc.add(i, end, detPrivateKey)
				next = end
			}
		}
	}
	return next
}

// midWord reports whether i is inside an alnum run, where the reference
// loop arrives only at the end of a match or of a skipped colon run.
func midWord(t []byte, i int) bool {
	return i > 0 && i < len(t) && ctab[t[i-1]]&cAlnum != 0 && ctab[t[i]]&cAlnum != 0
}

// slow handles the trigger at a: it replays the reference loop from the
// earliest word start a can affect (not before lo) until it has passed a
// and is at a word boundary, and returns that position.
//
// A byte affects earlier word starts only through word: a word's
// local-part run (at most maxRun bytes) may end at '@', ':' or '=' (email,
// URL, IPv6, secret parameter). So the replay starts where the local-part
// run around a starts: a later trigger in the same run is then handled by
// this replay.
//
// A byte also affects later word starts through the AWS secret detector,
// which needs "secret" in the 64 bytes before its match: an "ecr" whose
// 'c' is at p allows a secret at word starts up to p+62 (see
// secretReach), so the replay goes on at least that far, for every such
// p it passes (each extension may pass another).
func (sc *scanner) slow(t []byte, lo, a int) int {
	r := a
	for r > lo && a-r < maxRun && ctab[t[r-1]]&cLocal != 0 {
		r--
	}
	// The reference loop steps at word boundaries only (lo is one).
	for r > lo && midWord(t, r) {
		r++
	}
	i, until := r, a
	// Before a there is no trigger, so no "ecr" either: the replay needs
	// to look for them only from a on.
	for from := a; ; from = i {
		for i < len(t) && (i <= until || midWord(t, i)) {
			i = sc.step(t, i)
		}
		if !sc.mask.has(detAWSSecret) {
			return i
		}
		var u int
		if sc.bitsOK {
			u = sc.tb.secretReach(from, i)
		} else {
			u = secretReach(t, from, i)
		}
		if u <= until {
			return i
		}
		until = u
	}
}

// secretReach returns the last word start an AWS secret may have because
// of an "ecr" (any case) whose 'c' is in [from, to), or -1 if there is none:
// the "secret" around it must be in the 64 bytes before the secret (see
// awsSecret), so that is 62 bytes after the 'c'.
func secretReach(t []byte, from, to int) int {
	reach := -1
	isCtx := func(p int) bool {
		return p > 0 && p+1 < len(t) && t[p]|0x20 == 'c' && t[p-1]|0x20 == 'e' && t[p+1]|0x20 == 'r'
	}
	p := from
	// Eight bytes at a time, looking for 'c' or 'C' (c|0x20 == 'c' for
	// no other byte); the mask may have false positives past a true one,
	// which isCtx rules out.
	for ; p+8 <= len(t) && p < to; p += 8 {
		y := binary.LittleEndian.Uint64(t[p:p+8]) | 0x20*lsb ^ 'c'*lsb
		for m := (y - lsb) &^ y & msb; m != 0; m &= m - 1 {
			if q := p + bits.TrailingZeros64(m)>>3; q < to && isCtx(q) {
				reach = q + 62
			}
		}
	}
	for ; p < to; p++ {
		if isCtx(p) {
			reach = p + 62
		}
	}
	return reach
}

// Trigger tables. Every trigger is a byte that needs a certain previous
// and next byte: the reference loop does something other than stepping
// over a word or a punctuation byte only if one of these occurs. Each
// trigger kind is a bit; a table entry gives, for one byte value,
//
//	bits  0-20  the kinds it allows as the previous byte
//	bits 21-41  the kinds it is the trigger byte of
//	bits 42-62  the kinds it allows as the next byte
//
// and position i triggers if entry(t[i-1]) & entry(t[i])>>21 &
// entry(t[i+1])>>42 has a kind bit set. The text's start and end allow
// every kind. Each kind's condition is necessary for the detectors it
// serves (see word, step and the detectors), so a position that triggers
// nothing is one where the reference loop would find nothing and not skip
// ahead either.
const (
	trigWordDigit uint64 = 1 << iota // a word starting with a digit and a digit or separator: card, phone, SSN, IPv4
	trigWordUpper                    // a word starting with 'A' and an upper-case letter: AWS access key, Google API key
	trigIBAN                         // an upper-case letter between one and a digit: the country code of an IBAN
	trigWordG                        // gh.., gi..: GitHub tokens
	trigWordX                        // xo.., xa..: Slack tokens
	trigWordK                        // sk.., rk..: Stripe keys
	trigWordE                        // ey..: JWT
	trigSecret                       // 'c' between 'e' and 'r', any case: "secret", the context of an AWS secret key
	trigColonHex                     // ':' after a hex digit or '.': IPv6 ending a word
	trigColonNext                    // ':' before ':' or '/': "::" IPv6, scheme://
	trigEquals                       // '=' after an alnum: secret parameter
	trigAt                           // '@' after a local-part byte other than '.', before a domain byte: email
	trigPlus                         // '+' after a non-alnum, before a digit: international phone
	trigParen                        // '(' before a digit: national phone
	trigLess                         // '<' before '@': mention
	trigBracket                      // '[' before a hex digit or ':': bracketed IPv6
	trigDash                         // '-' before '-': PEM block
	trigAll       uint64 = 1<<21 - 1
)

const (
	tabPII = 1 << iota
	tabCred
	tabMention
)

var trigTabs = func() (tabs [8][256]uint64) {
	for k := range tabs {
		tab := &tabs[k]
		// kind makes the bytes cur trigger kind g when the previous byte
		// is in prev and the next in next (nil: any byte).
		kind := func(g uint64, prev func(c byte) bool, cur func(c byte) bool, next func(c byte) bool) {
			for c := range 256 {
				if prev == nil || prev(byte(c)) {
					tab[c] |= g
				}
				if cur(byte(c)) {
					tab[c] |= g << 21
				}
				if next == nil || next(byte(c)) {
					tab[c] |= g << 42
				}
			}
		}
		is := func(s string) func(c byte) bool {
			return func(c byte) bool { return strings.IndexByte(s, c) >= 0 }
		}
		class := func(cl uint8) func(c byte) bool { return func(c byte) bool { return ctab[c]&cl != 0 } }
		notAlnum := func(c byte) bool { return ctab[c]&cAlnum == 0 }
		upper, digit, hex := class(cUpper), class(cDigit), class(cHex)
		if k&tabPII != 0 {
			// A digit word can only start a match if a digit or a group
			// separator follows (see numeric; '@', ':' and a secret's
			// context have triggers of their own).
			kind(trigWordDigit, notAlnum, digit, func(c byte) bool { return digit(c) || strings.IndexByte(" -./", c) >= 0 })
			// The trigger is the country code's second letter: the window
			// cannot see that the first starts a word, but a replay from
			// it starts at the word start (see slow).
			kind(trigIBAN, upper, upper, digit)
			kind(trigColonHex, func(c byte) bool { return hex(c) || c == '.' }, is(":"), nil)
			kind(trigColonNext, nil, is(":"), is(":"))
			kind(trigAt, func(c byte) bool { return ctab[c]&cLocal != 0 && c != '.' }, is("@"), class(cDomain))
			kind(trigPlus, notAlnum, is("+"), digit)
			kind(trigParen, nil, is("("), digit)
			kind(trigBracket, nil, is("["), func(c byte) bool { return hex(c) || c == ':' })
		}
		if k&tabCred != 0 {
			kind(trigWordUpper, notAlnum, is("A"), upper)
			kind(trigWordG, notAlnum, is("g"), is("hi"))
			kind(trigWordX, notAlnum, is("x"), is("oa"))
			kind(trigWordK, notAlnum, is("sr"), is("k"))
			kind(trigWordE, notAlnum, is("e"), is("y"))
			kind(trigSecret, is("eE"), is("cC"), is("rR"))
			kind(trigColonNext, nil, is(":"), is("/"))
			kind(trigEquals, class(cAlnum), is("="), nil)
			kind(trigDash, nil, is("-"), is("-"))
		}
		if k&tabMention != 0 {
			kind(trigLess, nil, is("<"), is("@"))
		}
	}
	return tabs
}()

func triggerTable(m detMask) *[256]uint64 {
	k := 0
	if m&maskPII != 0 {
		k |= tabPII
	}
	if m&maskCredentials != 0 {
		k |= tabCred
	}
	if m.has(detMention) {
		k |= tabMention
	}
	return &trigTabs[k]
}

// trigBits holds the trigger positions of one text and, among them, the
// positions of kind trigSecret, as bitmaps (bit j%64 of word j/64 for
// position j), with a set bit at len(t) in trig so that nextBit always
// stops. The AVX2 kernel computes them 30 positions at a time for the
// whole text in one call, as the triggers are dense enough (one position
// in ~60 in chat text) that stopping at each would cost more in calls.
type trigBits struct {
	trig, sec []uint64
	noSec     bool // sec is all zero (most texts have no "ecr")
}

// fill computes the bitmaps of t under tab with the AVX2 kernel, or
// reports false (and computes nothing) if there is none: without AVX2,
// for a text under two bytes, or for a table that is not one of trigTabs.
func (b *trigBits) fill(tab *[256]uint64, t []byte) bool {
	n := len(t)
	if !hasAVX2 || n < 2 {
		return false
	}
	k := trigKernel(tab)
	if k == nil {
		return false
	}
	w := n>>6 + 2
	if cap(b.trig) < w {
		b.trig, b.sec = make([]uint64, w, w+w/4), make([]uint64, w, w+w/4)
	}
	b.trig, b.sec = b.trig[:w], b.sec[:w]
	clear(b.trig)
	clear(b.sec)
	if n >= 32 {
		trigFillAVX2(k, &t[0], n, &b.trig[0], &b.sec[0])
	} else {
		// A shorter text (a file name, a subject) is one window with
		// padding: positions from n-1 on read it, so they are cleared
		// (n-1 is the text's end, below).
		var pad [32]byte
		copy(pad[:], t)
		trigFillAVX2(k, &pad[0], 32, &b.trig[0], &b.sec[0])
		keep := uint64(1)<<(n-1) - 1
		b.trig[0] &= keep
		b.sec[0] &= keep
	}
	// The start of the text allows every kind as the previous byte, its
	// end every kind as the next (neither is an "ecr").
	if tab[t[0]]>>21&(tab[t[1]]>>42)&trigAll != 0 {
		b.trig[0] |= 1
	}
	if tab[t[n-2]]&(tab[t[n-1]]>>21)&trigAll != 0 {
		b.trig[(n-1)>>6] |= 1 << (uint(n-1) & 63)
	}
	b.trig[n>>6] |= 1 << (uint(n) & 63)
	var sec uint64
	for _, x := range b.sec {
		sec |= x
	}
	b.noSec = sec == 0
	return true
}

// secretReach is secretReach(t, from, to) read from the bitmap: the last
// "ecr" whose 'c' is in [from, to), plus 62, or -1.
func (b *trigBits) secretReach(from, to int) int {
	if b.noSec || from >= to {
		return -1
	}
	lo, hi := from>>6, (to-1)>>6
	for w := hi; w >= lo; w-- {
		m := b.sec[w]
		if w == hi {
			m &= ^uint64(0) >> (63 - uint(to-1)&63)
		}
		if w == lo {
			m &= ^uint64(0) << (uint(from) & 63)
		}
		if m != 0 {
			return w<<6 + 63 - bits.LeadingZeros64(m) + 62
		}
	}
	return -1
}

// scalarNextTrigger returns the first position at or after i (a word
// boundary) that triggers under tab, or len(t), without the AVX2 kernel.
func scalarNextTrigger(tab *[256]uint64, t []byte, i int) int {
	n := len(t)
	// Without AVX2, in texts under two bytes, or under a table that is not
	// one of trigTabs: the scalar loop.
	prev := trigAll // the start of the text allows every kind
	if i > 0 {
		prev = tab[t[i-1]]
	}
	// Nine positions per iteration; the tenth byte is their lookahead. The
	// entry of the byte at i+s comes from the table with C in lane -s mod 3
	// (see trigRot): tab itself for the byte before the chunk and for every
	// third byte from i+2, so prev carries over in tab's layout, and the
	// lookahead's entry is the next chunk's first. x0, x1 and x2 collect
	// the positions whose result is in lane 0 (i, i+3, i+6), 1 (i+2, i+5,
	// i+8) and 2 (i+1, i+4, i+7).
	if rot := rotations(tab); rot != nil && i+10 <= n {
		r0, r2 := &rot[0], &rot[1]
		e0 := r0[t[i]]
		for ; i+10 <= n; i += 9 {
			b := (*[10]byte)(t[i : i+10])
			e1 := r2[b[1]]
			e2 := tab[b[2]]
			x0 := prev & e0 & e1
			x2 := e0 & e1 & e2
			e3 := r0[b[3]]
			x1 := e1 & e2 & e3
			e4 := r2[b[4]]
			x0 |= e2 & e3 & e4
			e5 := tab[b[5]]
			x2 |= e3 & e4 & e5
			e6 := r0[b[6]]
			x1 |= e4 & e5 & e6
			e7 := r2[b[7]]
			x0 |= e5 & e6 & e7
			e8 := tab[b[8]]
			x2 |= e6 & e7 & e8
			e9 := r0[b[9]]
			x1 |= e7 & e8 & e9
			if (x0|x1>>21|x2>>42)&trigAll != 0 {
				break // the loop below finds the position
			}
			prev, e0 = e8, e9
		}
	}
	// The chunk with the trigger, the last few bytes of the text, or a
	// table that is not one of trigTabs: one position at a time.
	for ; i < n; i++ {
		e := tab[t[i]]
		next := trigAll << 42 // the end of the text allows every kind
		if i+1 < n {
			next = tab[t[i+1]]
		}
		if prev&(e>>21)&(next>>42)&trigAll != 0 {
			return i
		}
		prev = e
	}
	return n
}

// maxRun bounds the local-part run word looks at, so that the scan stays
// linear on inputs like "a.a.a.a...".
const maxRun = 80

// wordEnd returns the end of the alnum run at i, eight bytes at a time
// where it can: a loop per byte mispredicts at the end of nearly every
// word, as their lengths vary (in one process, toggling the two: -3 % per
// anonymized chat event).
func wordEnd(t []byte, i int) int {
	for ; i+8 <= len(t); i += 8 {
		if m := notAlnum(binary.LittleEndian.Uint64(t[i : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(t) && ctab[t[i]]&cAlnum != 0 {
		i++
	}
	return i
}

// notAlnum returns x's bytes that are not ASCII letters or digits, as
// their high bits. The range tests add to the low seven bits of each
// byte, so no carry crosses into the next; bytes from 0x80 are not alnum.
func notAlnum(x uint64) uint64 {
	const l7 = 0x7f * lsb
	v := x & l7
	w := (x | 0x20*lsb) & l7 // upper case to lower case
	digit := (v + (0x80-'0')*lsb) &^ (v + (0x7f-'9')*lsb)
	letter := (w + (0x80-'a')*lsb) &^ (w + (0x7f-'z')*lsb)
	return (^(digit | letter) | x) & msb
}

// word runs the detectors that start at an alnum word start i and returns
// where scanning continues: after a match, or at the end of the alnum run.
//
// One bounded pass finds the run of email-local characters (alnum . _ % +
// -) and the character that ends it; that character selects the few
// detectors worth trying ('@' email, ':' URL or IPv6, '=' secret
// parameter), the first byte selects the prefixed tokens. The bound keeps
// the scan linear on inputs like "a.a.a.a...".
func (sc *scanner) word(t []byte, i int) int {
	m := sc.mask
	n := len(t)
	c0 := t[i]
	// aend ends the alnum run at i; j ends the local-part run, which
	// continues it with . _ % + - but stops at maxRun bytes.
	aend := wordEnd(t, i)
	lim := min(n, i+maxRun)
	j := min(aend, lim)
	for j < lim && ctab[t[j]]&cLocal != 0 {
		j++
	}
	var term byte
	if j < n {
		term = t[j]
	}
	switch term {
	case '@':
		if m.has(detEmail) && t[j-1] != '.' && j-i <= 64 {
			if end := emailDomainEnd(t, j+1); end > 0 {
				sc.add(i, end, detEmail)
				return end
			}
		}
	case ':':
		if m.has(detURLSecret) && j+2 < n && t[j+1] == '/' && t[j+2] == '/' && ctab[c0]&cDigit == 0 {
			return sc.urlAuthority(t, j+3)
		}
		if m.has(detIP) && ctab[c0]&cHex != 0 {
			if end := ipv6At(t, i); end > 0 {
				sc.add(i, end, detIP)
				return end
			} else if end < 0 {
				return -end // skip a failed colon run as a whole (MAC addresses, times)
			}
		}
	case '=':
		if m.has(detURLSecret) && isSecretParam(t[i:j]) {
			if end := paramValueEnd(t, j+1); end > j+1 {
				sc.add(j+1, end, detURLSecret)
				return end
			}
		}
	}
	if ctab[c0]&cDigit != 0 {
		if end := sc.numeric(t, i); end > 0 {
			return end
		}
	} else {
		if m&maskCredentials != 0 && j-i >= 8 && credentialLead(c0, t[i+1]) {
			{
				if end, d := credentialAt(t, i, m, &sc.jwt); end > 0 {
					sc.add(i, end, d)
					return end
				}
			}
		}
		if ctab[c0]&cUpper != 0 && m.has(detIBAN) && i+3 < n && isDigit(t[i+2]) {
			if end := ibanAt(t, i); end > 0 {
				sc.add(i, end, detIBAN)
				return end
			}
		}
	}
	if (j-i >= 40 || term == '/') && m.has(detAWSSecret) && (i == 0 || ctab[t[i-1]]&cB64 == 0) {
		if end := awsSecret(t, i); end > 0 {
			sc.add(i, end, detAWSSecret)
			return end
		}
	}
	return aend
}

// numeric tries the detectors that start with a digit.
func (sc *scanner) numeric(t []byte, i int) int {
	var g *groups
	var digits int
	if sc.shaped && i == sc.shapeAt {
		g, digits = &sc.shapeG, sc.shapeDigits
	} else {
		g = new(groups)
		var ok bool
		if digits, ok = numberShape(t, i, g); !ok {
			return 0
		}
	}
	m := sc.mask
	if m.has(detIP) && g.ipv4Shape() {
		if end := ipv4At(t, i); end > 0 {
			sc.add(i, end, detIP)
			return end
		}
	}
	if m&(1<<detSSN|1<<detCard|1<<detPhone) == 0 {
		return 0
	}
	if m.has(detSSN) {
		if end := ssnAt(t, i, g); end > 0 {
			sc.add(i, end, detSSN)
			return end
		}
	}
	if m.has(detCard) && digits >= 13 {
		if end := cardAt(t, i, g); end > 0 {
			sc.add(i, end, detCard)
			return end
		}
	}
	if m.has(detPhone) && (digits >= 9 || g.parenNext(t)) {
		if end := sc.phone(t, i, false); end > 0 {
			return end
		}
	}
	return 0
}

// numberShape parses the digit groups at the digit word start i into g and
// reports whether any number detector can match there, with the groups'
// digit count. Both numeric and scan's digit-word filter ask it, so the
// filter skips exactly the words numeric would reject.
//
// A number right after "<digit>-" or "<digit>." continues another: the
// IPv4, SSN and card detectors reject a '-' or '.' before their match,
// and phone a separator after a digit. (Each group of a date, version or
// serial would otherwise be parsed as a number again.) Most numbers in
// text are one short group ("3 files", "at 10:30"): an IPv4 address and
// an SSN have several groups, a card number 13 or more digits, a phone
// number 9 or more (phone's groups are these, unless a separator and '('
// follow them).
func numberShape(t []byte, i int, g *groups) (digits int, ok bool) {
	if i >= 2 && (t[i-1] == '-' || t[i-1] == '.') && isDigit(t[i-2]) {
		return 0, false
	}
	g.parse(t, i)
	if g.n == 1 && g.len(0) < 9 {
		return 0, false
	}
	for k := range g.n {
		digits += g.len(k)
	}
	return digits, digits >= 9 || g.ipv4Shape() || g.parenNext(t)
}

// urlAuthority handles the authority after "scheme://" at a: a password in
// the userinfo is a url_secret. Scanning continues at the host.
func (sc *scanner) urlAuthority(t []byte, a int) int {
	end := a
	at := -1
	for end < len(t) {
		c := t[end]
		if authorityEnd[c] {
			break
		}
		if c == '@' {
			at = end
		}
		end++
	}
	if at < 0 {
		return a
	}
	for p := a; p < at; p++ {
		if t[p] == ':' {
			if p+1 < at {
				sc.add(p+1, at, detURLSecret)
			}
			break
		}
	}
	return at + 1
}

// secretParams are the query parameter and key=value names whose value
// is a secret, in lower case.
var secretParams = map[string]bool{}

// secretHeads and secretTails are necessary conditions for a name in
// secretParams, so that most names are ruled out without a lookup: a
// name of length l (under 25) has bit foldIndex(its first byte) set in
// secretHeads[l], and entry tailOf(its last two bytes) set in
// secretTails.
var (
	secretHeads [25]uint32
	secretTails [1 << 10]bool
)

func init() {
	for _, p := range strings.Fields(`token access_token refresh_token id_token auth_token
		api_key apikey api-key key secret client_secret password passwd pwd sig signature
		x-amz-signature x-amz-security-token auth session sessionid session_id`) {
		secretParams[p] = true
		secretHeads[len(p)] |= 1 << foldIndex(p[0])
		secretTails[tailOf([]byte(p), len(p))] = true
	}
}

// foldIndex maps a byte to 0-31, equally for an ASCII letter in either
// case.
func foldIndex(c byte) int { return int((c | 0x20) & 31) }

// mayBeSecretParam reports whether t[i:e] passes secretHeads and
// secretTails, as every name in secretParams does in either case.
func mayBeSecretParam(t []byte, i, e int) bool {
	return secretHead(t, i, e) && secretTails[tailOf(t, e)]
}

// secretHead reports whether t[i:e] passes secretHeads.
func secretHead(t []byte, i, e int) bool {
	return e-i >= 2 && e-i < len(secretHeads) && secretHeads[e-i]>>foldIndex(t[i])&1 != 0
}

// tailOf is the secretTails entry of the two bytes before e (e >= 2).
func tailOf(t []byte, e int) int { return foldIndex(t[e-2])<<5 | foldIndex(t[e-1]) }

// isSecretParam reports whether a query parameter or key=value name is
// one whose value is a secret, ignoring ASCII case.
func isSecretParam(name []byte) bool {
	if !mayBeSecretParam(name, 0, len(name)) {
		return false
	}
	var buf [len(secretHeads)]byte
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return secretParams[string(buf[:len(name)])]
}

// secretNameBefore reports whether a word that starts before the '=' at a
// may end its local-part run there with a secret parameter's name (see
// word): whether an alnum byte in the local-part run before a may start
// a name that isSecretParam accepts. Any byte of the run counts, not only
// word starts, as the reference loop may also arrive inside a word.
// Nothing else makes a '=' matter, so scan steps past the others.
func secretNameBefore(t []byte, a int) bool {
	if a < 2 || !secretTails[tailOf(t, a)] {
		return false
	}
	// The tail is the same for every start: only the heads are left.
	for i := a - 1; i >= 0 && a-i < len(secretHeads) && ctab[t[i]]&cLocal != 0; i-- {
		if ctab[t[i]]&cAlnum != 0 && secretHead(t, i, a) {
			return true
		}
	}
	return false
}

// paramValueEnd returns the end of a secret parameter's value at i.
func paramValueEnd(t []byte, i int) int {
	for i < len(t) && !paramValueStop[t[i]] {
		i++
	}
	return i
}

// paramValueStop has the bytes that end a parameter's value.
var paramValueStop = func() (e [256]bool) {
	for _, c := range []byte("& \t\n\r\"'<>#;,)") {
		e[c] = true
	}
	return e
}()

// emailDomainEnd validates the domain starting at d (just after '@') and
// returns its end, or 0.
func emailDomainEnd(t []byte, d int) int {
	end := d
	for end < len(t) && ctab[t[end]]&cDomain != 0 {
		end++
	}
	// A trailing '.' or '-' ends the sentence, not the domain.
	for end > d && (t[end-1] == '.' || t[end-1] == '-') {
		end--
	}
	if end-d > 253 || end == d {
		return 0
	}
	labels := 0
	ls := d
	for p := d; p <= end; p++ {
		if p < end && t[p] != '.' {
			continue
		}
		l := t[ls:p]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return 0
		}
		labels++
		if p == end { // the TLD: letters only, at least two
			if len(l) < 2 {
				return 0
			}
			for _, c := range l {
				if ctab[c]&cAlnum == 0 || ctab[c]&cDigit != 0 {
					return 0
				}
			}
		}
		ls = p + 1
	}
	if labels < 2 {
		return 0
	}
	return end
}

// mention matches "<@ID>" and "<@ID|label>" at i.
func (sc *scanner) mention(t []byte, i int) int {
	j := i + 2
	for j < len(t) && ctab[t[j]]&cAlnum != 0 {
		j++
	}
	if j == i+2 || j >= len(t) || j-i > 64 {
		return 0
	}
	idEnd := j
	if t[j] == '|' {
		for j < len(t) && t[j] != '>' && t[j] != '\n' && j-idEnd < 128 {
			j++
		}
	}
	if j >= len(t) || t[j] != '>' {
		return 0
	}
	sc.ms = append(sc.ms, match{start: int32(i), end: int32(j + 1), aux: int32(idEnd), det: detMention})
	return j + 1
}

// pemBlock matches a PEM private key block at i ("-----BEGIN "). A block
// without its END line runs to the end of the text (fail closed).
func pemBlock(t []byte, i int) int {
	p := i + 11
	lab := p
	for p < len(t) && p-lab < 64 && (ctab[t[p]]&cUpper != 0 || t[p] == ' ') {
		p++
	}
	if p+5 > len(t) || string(t[p:p+5]) != "-----" || !containsPrivateKey(t[lab:p]) {
		return 0
	}
	p += 5
	k := strings.Index(unsafeString(t[p:]), "-----END ")
	if k < 0 {
		return len(t)
	}
	q := p + k
	r := q + 9
	for r < len(t) && r-q < 80 && t[r] != '\n' {
		if t[r] == '-' && r+5 <= len(t) && string(t[r:r+5]) == "-----" {
			return r + 5
		}
		r++
	}
	return r
}

func containsPrivateKey(label []byte) bool {
	const k = "PRIVATE KEY"
	for i := 0; i+len(k) <= len(label); i++ {
		if string(label[i:i+len(k)]) == k {
			return true
		}
	}
	return false
}

// credentialLead is a cheap filter on the first two bytes of a word for
// credentialAt: AKIA/ASIA/A..., AIza, gh*_, xox*/xapp, sk_/rk_, eyJ.
func credentialLead(c0, c1 byte) bool {
	switch c0 {
	case 'A':
		return c1 >= 'A' && c1 <= 'Z'
	case 'g':
		return c1 == 'h' || c1 == 'i'
	case 'x':
		return c1 == 'o' || c1 == 'a'
	case 's', 'r':
		return c1 == 'k'
	case 'e':
		return c1 == 'y'
	}
	return false
}

// authorityEnd has the bytes that end a URL's authority.
var authorityEnd = func() (e [256]bool) {
	for _, c := range []byte("/?# \t\n\r\"<>'") {
		e[c] = true
	}
	return e
}()
