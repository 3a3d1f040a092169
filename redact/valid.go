package redact

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// validJSON reports whether s is one JSON value surrounded by optional
// whitespace. It accepts exactly what gjson.Valid accepts (no UTF-8 check,
// no depth limit) and is faster on long strings: string content is
// checked eight bytes at a time.
func validJSON(s string) bool {
	var c checker
	return c.document(s, noDepthLimit, nil)
}

// validIndexJSON is validJSON that also records the members of a root
// object in *root (reset first), so that the walk over the root needs no
// second pass over the values it skips (the long text, containers no rule
// looks into). The result is exactly validJSON's; *root is meaningful
// only if s is valid and its root is an object.
//
// If bm is not nil, it checks strings with the special-byte bitmap of s,
// which it builds in *bm (grown as needed; see specialBitmap).
func validIndexJSON(s string, root *[]member, bm *[]uint64) bool {
	var c checker
	*root = (*root)[:0]
	if bm != nil {
		*bm = specialBitmap(*bm, s, false)
		c.bm = *bm
	}
	return c.document(s, noDepthLimit, root)
}

const noDepthLimit = 1<<31 - 1

// checker is the one JSON validator. Its zero value accepts exactly what
// gjson.Valid accepts; with hi set to msb it also requires string contents
// to be valid UTF-8 (outside strings, valid JSON is ASCII). The depth
// limit is the document's argument. After a failed check, badUTF8 or
// tooDeep tell whether that was why.
type checker struct {
	hi      uint64 // msb when checking UTF-8: stop at non-ASCII bytes in strings
	badUTF8 bool
	tooDeep bool
	esc     bool // an escape was met since it was last cleared
	// bm, if not nil, is specialBitmap(s, hi != 0) of the document:
	// strings are then scanned by its bits.
	bm []uint64
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// document validates s as one value surrounded by optional whitespace,
// nested at most depth levels; if root is not nil and the value is an
// object, its members are appended to *root.
func (c *checker) document(s string, depth int, root *[]member) bool {
	i := skipWS(s, 0)
	var ok bool
	if root != nil && depth > 0 && i < len(s) && s[i] == '{' {
		i, ok = c.object(s, i+1, depth-1, root)
	} else {
		i, ok = c.value(s, i, depth)
	}
	return ok && skipWS(s, i) == len(s)
}

// stringSpecial returns a mask with the high bit set in the first byte of
// x that is '"', '\\' or a control character (bytes after it may be set
// too).
func stringSpecial(x uint64) uint64 {
	q := x ^ ('"' * lsb)
	b := x ^ ('\\' * lsb)
	return ((q-lsb)&^q | (b-lsb)&^b | (x-0x20*lsb)&^x) & msb
}

// value validates the value at i, nested at most depth more levels, and
// returns its end.
func (c *checker) value(s string, i, depth int) (int, bool) {
	if i >= len(s) {
		return i, false
	}
	switch s[i] {
	case '{', '[':
		if depth == 0 {
			c.tooDeep = true
			return i, false
		}
		if s[i] == '{' {
			return c.object(s, i+1, depth-1, nil)
		}
		return c.array(s, i+1, depth-1)
	case '"':
		if e := c.quickStr(s, i+1); e != 0 {
			return e, true
		}
		return c.str(s, i+1)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return validNumber(s, i)
	case 't':
		return i + 4, i+4 <= len(s) && s[i:i+4] == "true"
	case 'f':
		return i + 5, i+5 <= len(s) && s[i:i+5] == "false"
	case 'n':
		return i + 4, i+4 <= len(s) && s[i:i+4] == "null"
	}
	return i, false
}

// object validates an object's members from i (after '{'); with rec set,
// it appends each member to *rec.
func (c *checker) object(s string, i, depth int, rec *[]member) (int, bool) {
	i = skipWS(s, i)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return i, false
		}
		k := i
		var ok bool
		c.esc = false
		if e := c.quickStr(s, i+1); e != 0 {
			i = e
		} else if i, ok = c.str(s, i+1); !ok {
			return i, false
		}
		ke, keyEsc := i, c.esc
		// Compact JSON has no whitespace around ':' and ','; look for
		// the punctuation first and skip whitespace only if it is not
		// there.
		if i >= len(s) || s[i] != ':' {
			if i = skipWS(s, i); i >= len(s) || s[i] != ':' {
				return i, false
			}
		}
		v := i + 1
		if v < len(s) && s[v] <= ' ' {
			v = skipWS(s, v)
		}
		c.esc = false
		e := 0
		if v < len(s) && s[v] == '"' {
			e = c.quickStr(s, v+1)
		}
		if e != 0 {
			i = e
		} else if i, ok = c.value(s, v, depth); !ok {
			return i, false
		}
		if rec != nil {
			*rec = append(*rec, member{key: int32(k), keyEnd: int32(ke), val: int32(v), valEnd: int32(i),
				keyEsc: keyEsc, strEsc: c.esc && s[v] == '"'})
		}
		if i < len(s) && s[i] <= ' ' {
			i = skipWS(s, i)
		}
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case '}':
			return i + 1, true
		case ',':
			i++
			if i < len(s) && s[i] <= ' ' {
				i = skipWS(s, i)
			}
		default:
			return i, false
		}
	}
}

func (c *checker) array(s string, i, depth int) (int, bool) {
	i = skipWS(s, i)
	if i < len(s) && s[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = c.value(s, i, depth); !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ']':
			return i + 1, true
		case ',':
			i = skipWS(s, i+1)
		default:
			return i, false
		}
	}
}

// quickStr returns the offset after the closing quote of the string
// whose content starts at i if the bitmap (c.bm) says that the next
// special byte is that quote, as it is for most strings; otherwise 0, and
// the caller is to call str. It is small enough to be inlined.
func (c *checker) quickStr(s string, i int) int {
	if bm := c.bm; bm != nil {
		// At least 57 bits from i, across a word boundary too, so that
		// where a string ends does not decide a branch.
		m := bitsFrom(bm, i)
		if j := i + bits.TrailingZeros64(m); m != 0 && j < len(s) && s[j] == '"' {
			return j + 1
		}
	}
	return 0
}

// str validates string content from i (after the opening quote) and
// returns the offset after the closing quote.
func (c *checker) str(s string, i int) (int, bool) {
	hi, bm := c.hi, c.bm
	for {
		if bm != nil {
			i = nextBit(bm, i)
		} else {
			// Without the bitmap (no AVX2), eight bytes at a time.
			for ; i+8 <= len(s); i += 8 {
				x := binary.LittleEndian.Uint64(unsafeBytes(s[i : i+8]))
				if m := stringSpecial(x) | x&hi; m != 0 {
					i += bits.TrailingZeros64(m) >> 3
					break
				}
			}
		}
		if i >= len(s) {
			return i, false
		}
		switch b := s[i]; {
		case b == '"':
			return i + 1, true
		case b == '\\':
			c.esc = true
			if i+1 >= len(s) {
				return i, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex4(s[i+2:i+6]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case b < 0x20:
			return i, false
		case b >= 0x80 && hi != 0:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				c.badUTF8 = true
				return i, false
			}
			i += size
		default:
			i++
		}
	}
}

func isHex4(h string) bool {
	return ctab[h[0]]&cHex != 0 && ctab[h[1]]&cHex != 0 && ctab[h[2]]&cHex != 0 && ctab[h[3]]&cHex != 0
}

// validNumber validates the number at i (a '-' or a digit) and returns
// its end; what follows is the caller's to check.
func validNumber(s string, i int) (int, bool) {
	if s[i] == '-' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return i, false
		}
	}
	if s[i] == '0' {
		i++
	} else {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return i, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return i, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i, true
}

// member is one member of the root object, as offsets into the document:
// the key's opening quote, the end of the key (after its closing quote),
// and the value [val, valEnd); and whether the key, and the value if it is
// a string, have escapes (so that readers need not look for them again).
type member struct {
	key, keyEnd, val, valEnd int32
	keyEsc, strEsc           bool
}
