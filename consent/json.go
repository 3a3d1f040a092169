package consent

import (
	"encoding/json"
	"errors"
	"strings"
)

// A minimal, strict JSON scanner for consent values: one pass that validates
// the whole document (RFC 8259, as encoding/json does) and hands out the
// members of the top-level object. It exists because consent values are
// parsed a million times during an initial load; strings without escapes
// are returned as zero-copy substrings.

var errSyntax = errors.New("not valid JSON")

const maxDepth = 1000

type scanner struct {
	s string
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) next() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// str scans a string at p.i and returns its decoded value.
func (p *scanner) str() (string, bool) {
	if p.next() != '"' {
		return "", false
	}
	p.i++
	start := p.i
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			raw := p.s[start:p.i]
			p.i++
			if !escaped {
				return raw, true
			}
			var out string
			if json.Unmarshal([]byte(p.s[start-1:p.i]), &out) != nil {
				return "", false
			}
			return out, true
		case c == '\\':
			escaped = true
			p.i++
			if p.i >= len(p.s) {
				return "", false
			}
			switch p.s[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if p.i+4 >= len(p.s) {
					return "", false
				}
				for _, h := range []byte(p.s[p.i+1 : p.i+5]) {
					if _, ok := unhex(h); !ok {
						return "", false
					}
				}
				p.i += 5
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		default:
			p.i++
		}
	}
	return "", false
}

func (p *scanner) digits() bool {
	start := p.i
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

func (p *scanner) number() bool {
	if p.next() == '-' {
		p.i++
	}
	switch c := p.next(); {
	case c == '0':
		p.i++
	case '1' <= c && c <= '9':
		p.digits()
	default:
		return false
	}
	if p.next() == '.' {
		p.i++
		if !p.digits() {
			return false
		}
	}
	if c := p.next(); c == 'e' || c == 'E' {
		p.i++
		if c := p.next(); c == '+' || c == '-' {
			p.i++
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

func (p *scanner) lit(word string) bool {
	if strings.HasPrefix(p.s[p.i:], word) {
		p.i += len(word)
		return true
	}
	return false
}

// value skips one value at p.i (after whitespace), validating it.
func (p *scanner) value(depth int) bool {
	if depth > maxDepth {
		return false
	}
	p.ws()
	switch c := p.next(); c {
	case '{':
		return p.object(depth, nil)
	case '[':
		p.i++
		p.ws()
		if p.next() == ']' {
			p.i++
			return true
		}
		for {
			if !p.value(depth + 1) {
				return false
			}
			p.ws()
			switch p.next() {
			case ',':
				p.i++
			case ']':
				p.i++
				return true
			default:
				return false
			}
		}
	case '"':
		_, ok := p.str()
		return ok
	case 't':
		return p.lit("true")
	case 'f':
		return p.lit("false")
	case 'n':
		return p.lit("null")
	default:
		return p.number()
	}
}

// object scans an object at p.i. For each member, member (if not nil) is
// called with the decoded key and the scanner positioned at the value
// (after whitespace); it must consume the value and return false to stop
// with an error. A nil member skips the values.
func (p *scanner) object(depth int, member func(key string) bool) bool {
	if p.next() != '{' {
		return false
	}
	p.i++
	p.ws()
	if p.next() == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		k, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if p.next() != ':' {
			return false
		}
		p.i++
		p.ws()
		if member != nil {
			if !member(k) {
				return false
			}
		} else if !p.value(depth + 1) {
			return false
		}
		p.ws()
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}
