package redact

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The functions in this file work on JSON that gjson.Valid accepted, so
// they only need to find boundaries, not to diagnose errors. Each returns a
// position inside or at the end of s and never panics on valid input.

// skipWS returns the position of the first non-whitespace byte at or
// after i. Every JSON whitespace byte is at most ' ', so one comparison
// settles the common case of compact JSON.
func skipWS(s string, i int) int {
	for i < len(s) && s[i] <= ' ' && isWS(s[i]) {
		i++
	}
	return i
}

// stringEnd returns the offset just past the closing quote of the string
// whose opening quote is at i. Short strings are scanned eight bytes at a
// time; past 64 bytes, strings.IndexByte (vectorized) finds the quotes.
func stringEnd(s string, i int) int {
	j := i + 1
	for lim := min(j+64, len(s)); j+8 <= lim; j += 8 {
		x := binary.LittleEndian.Uint64(unsafeBytes(s[j : j+8]))
		q := x ^ ('"' * lsb)
		b := x ^ ('\\' * lsb)
		if m := ((q-lsb)&^q | (b-lsb)&^b) & msb; m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			if s[j] == '"' {
				return j + 1
			}
			break // an escape: count backslashes below
		}
	}
	for {
		k := strings.IndexByte(s[j:], '"')
		if k < 0 {
			return len(s)
		}
		j += k
		// Count the backslashes right before the quote: odd means escaped.
		n := 0
		for b := j - 1; b > i && s[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// keyEnd is stringEnd for short strings such as keys; it also reports
// whether the string has escapes.
func keyEnd(s string, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"':
			return j + 1, esc
		case '\\':
			esc = true
			j++
		}
	}
	return len(s), esc
}

// valueEnd returns the offset just past the value starting at i.
func valueEnd(s string, i int) int { return valueEndBM(nil, s, i) }

// bitmapStringEnd is keyEnd with bm, the special-byte bitmap of s (see
// specialBitmap, in either mode): it jumps from special byte to special
// byte instead of looking at each. It gives up (ok false) at the first
// special byte that is neither '"' nor '\\' (a non-ASCII byte: a string
// of them is quicker to skip byte-wise than one stop per character).
func bitmapStringEnd(bm []uint64, s string, i int) (end int, esc, ok bool) {
	for j := i + 1; j < len(s); {
		j = nextBit(bm, j)
		if j >= len(s) {
			break
		}
		switch s[j] {
		case '"':
			return j + 1, esc, true
		case '\\':
			esc = true
			j += 2
		default:
			return 0, false, false
		}
	}
	return len(s), esc, true
}

// The walk's string and value ends use the document's special-byte
// bitmap if validation left one (w.sbm).

func (w *work) stringEnd(s string, i int) int { return stringEndBM(w.sbm, s, i) }

func (w *work) keyEnd(s string, i int) (int, bool) {
	if w.sbm != nil {
		if e, esc, ok := bitmapStringEnd(w.sbm, s, i); ok {
			return e, esc
		}
	}
	return keyEnd(s, i)
}

func (w *work) valueEnd(s string, i int) int { return valueEndBM(w.sbm, s, i) }

// stringEndBM is stringEnd with bm, the special-byte bitmap of s, or nil.
func stringEndBM(bm []uint64, s string, i int) int {
	if bm != nil {
		if e, _, ok := bitmapStringEnd(bm, s, i); ok {
			return e
		}
	}
	return stringEnd(s, i)
}

// valueEndBM is valueEnd with bm, the special-byte bitmap of s, or nil.
func valueEndBM(bm []uint64, s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		return stringEndBM(bm, s, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				j = stringEndBM(bm, s, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(s)
	default:
		j := i
		for j < len(s) {
			c := s[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			j++
		}
		return j
	}
}

// appendUnescaped appends the text encoded by the JSON string content
// (without quotes). Invalid escapes cannot occur in valid JSON; lone
// surrogates become U+FFFD, as encoding/json does.
func appendUnescaped(dst []byte, content string) []byte {
	return unescape(dst, content, nil, nil, 0)
}

// escMark records one escape sequence met by unescape: the text it appended
// holds the sequence's decoded bytes at [end-n, end), and from end on, an
// offset into the raw content is shift more than the offset into the text.
type escMark struct{ end, n, shift int32 }

// unescape is appendUnescaped; if marks is not nil, it also appends a mark
// per escape sequence (offsets relative to the text it appends), so that
// spans of the text map back to the raw content (see rawOffsets). If bm
// is not nil, it is the special-byte bitmap of a document in which
// content starts at offset off, and the backslashes are found with it
// instead of searched for.
func unescape(dst []byte, content string, marks *[]escMark, bm []uint64, off int) []byte {
	base := len(dst)
	for i := 0; i < len(content); {
		k := -1
		if bm != nil {
			// The bits in content are its backslashes and, in a
			// bitmap that marks them, its bytes from 0x80.
			for p := i; ; p++ {
				if p = nextBit(bm, off+p) - off; p >= len(content) {
					break
				}
				if content[p] == '\\' {
					k = p - i
					break
				}
			}
		} else {
			k = strings.IndexByte(content[i:], '\\')
		}
		if k < 0 {
			return append(dst, content[i:]...)
		}
		dst = append(dst, content[i:i+k]...)
		i += k
		if i+1 >= len(content) {
			return dst
		}
		c := content[i+1]
		i += 2
		d := len(dst)
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(content, i)
			if !ok {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				break
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := hex4(content, i+2)
				pair := utf8.RuneError
				if ok && i+1 < len(content) && content[i] == '\\' && content[i+1] == 'u' {
					pair = utf16.DecodeRune(r, r2)
				}
				if pair != utf8.RuneError {
					i += 6
				}
				r = pair
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		if marks != nil {
			end := len(dst) - base
			*marks = append(*marks, escMark{end: int32(end), n: int32(len(dst) - d), shift: int32(i - end)})
		}
	}
	return dst
}

// rawOffsets maps offsets into a text that unescape produced, in
// ascending order, back to offsets into its raw content.
type rawOffsets struct {
	marks []escMark
	k     int
	shift int
}

// at returns the raw offset of text offset u, or false if u falls inside
// an escape sequence's decoded bytes. Calls must not decrease u.
func (r *rawOffsets) at(u int) (int, bool) {
	for r.k < len(r.marks) && int(r.marks[r.k].end) <= u {
		r.shift = int(r.marks[r.k].shift)
		r.k++
	}
	if r.k < len(r.marks) && u > int(r.marks[r.k].end-r.marks[r.k].n) {
		return 0, false
	}
	return u + r.shift, true
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends b as JSON string content (without quotes).
// Invalid UTF-8 becomes \ufffd so the output is always valid JSON text.
func appendEscaped(dst []byte, b []byte) []byte {
	start := 0
	for i := 0; i < len(b); {
		// Skip plain ASCII eight bytes at a time.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i : i+8])
			if m := stringSpecial(x) | x&msb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, b[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, b[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, b[start:]...)
}

func appendEscapedString(dst []byte, s string) []byte {
	return appendEscaped(dst, unsafeBytes(s))
}
