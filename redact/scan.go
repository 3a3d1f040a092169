package redact

// Free-text scanning: one forward pass over the text. At every word start
// (an ASCII letter or digit not preceded by one) and at a few punctuation
// characters ('+', '(', '<', '[', ':', '-') the scanner tries the detectors
// that can begin there, validates the candidate (Luhn, mod-97, ranges,
// libphonenumber, JWT header, ...) and, on a match, records the span and
// continues after it. Matches are therefore in order and never overlap.
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
	jwt  []byte // JWT header decode buffer
}

func (sc *scanner) add(start, end int, d detector) {
	sc.ms = append(sc.ms, match{start: int32(start), end: int32(end), det: d})
}

// scan appends the matches in t to sc.ms.
func (sc *scanner) scan(t []byte) {
	n := len(t)
	m := sc.mask
	for i := 0; i < n; {
		c := t[i]
		if ctab[c]&cAlnum != 0 {
			i = sc.word(t, i)
			continue
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
		i = next
	}
}

// wordEnd returns the end of the alnum run at i.
func wordEnd(t []byte, i int) int {
	for i < len(t) && ctab[t[i]]&cAlnum != 0 {
		i++
	}
	return i
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
	const maxRun = 80
	m := sc.mask
	n := len(t)
	c0 := t[i]
	j := i
	aend := -1
	lim := min(n, i+maxRun)
	for j < lim {
		cl := ctab[t[j]]
		if cl&cLocal == 0 {
			break
		}
		if cl&cAlnum == 0 && aend < 0 {
			aend = j
		}
		j++
	}
	if aend < 0 {
		aend = j
		for aend < n && ctab[t[aend]]&cAlnum != 0 {
			aend++
		}
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
	m := sc.mask
	if m.has(detIP) {
		if end := ipv4At(t, i); end > 0 {
			sc.add(i, end, detIP)
			return end
		}
	}
	if m&(1<<detSSN|1<<detCard|1<<detPhone) == 0 {
		return 0
	}
	var g groups
	g.parse(t, i)
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

// urlAuthority handles the authority after "scheme://" at a: a password in
// the userinfo is a url_secret. Scanning continues at the host.
func (sc *scanner) urlAuthority(t []byte, a int) int {
	end := a
	at := -1
	for end < len(t) {
		c := t[end]
		if c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '<' || c == '>' || c == '\'' {
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

var secretParams = []string{
	"token", "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "api-key",
	"key", "secret", "client_secret", "password", "passwd", "pwd", "sig", "signature",
	"x-amz-signature", "x-amz-security-token", "auth", "session", "sessionid", "session_id",
}

func isSecretParam(name []byte) bool {
	if len(name) > 24 {
		return false
	}
	var buf [24]byte
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	l := buf[:len(name)]
	for _, p := range secretParams {
		if string(l) == p {
			return true
		}
	}
	return false
}

func paramValueEnd(t []byte, i int) int {
	for i < len(t) {
		switch t[i] {
		case '&', ' ', '\t', '\n', '\r', '"', '\'', '<', '>', '#', ';', ',', ')':
			return i
		}
		i++
	}
	return i
}

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
	for q := p; q+9 <= len(t); q++ {
		if t[q] == '-' && string(t[q:q+9]) == "-----END " {
			r := q + 9
			for r < len(t) && r-q < 80 && t[r] != '\n' {
				if t[r] == '-' && r+5 <= len(t) && string(t[r:r+5]) == "-----" {
					return r + 5
				}
				r++
			}
			return r
		}
	}
	return len(t)
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
