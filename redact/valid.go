package redact

import (
	"encoding/binary"
	"math/bits"
)

// validJSON reports whether s is one JSON value surrounded by optional
// whitespace. It accepts exactly what gjson.Valid accepts (no UTF-8 check,
// no depth limit) and is faster on long strings: string content is
// checked eight bytes at a time.
func validJSON(s string) bool {
	i, ok := validValue(s, skipWS(s, 0))
	return ok && skipWS(s, i) == len(s)
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// stringSpecial returns a mask with the high bit set in the first byte of
// x that is '"', '\\' or a control character (bytes after it may be set
// too).
func stringSpecial(x uint64) uint64 {
	q := x ^ ('"' * lsb)
	b := x ^ ('\\' * lsb)
	return ((q-lsb)&^q | (b-lsb)&^b | (x-0x20*lsb)&^x) & msb
}

// validValue validates the value at i and returns its end.
func validValue(s string, i int) (int, bool) {
	if i >= len(s) {
		return i, false
	}
	switch s[i] {
	case '{':
		return validObject(s, i+1)
	case '[':
		return validArray(s, i+1)
	case '"':
		return validString(s, i+1)
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

func validObject(s string, i int) (int, bool) {
	i = skipWS(s, i)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return i, false
		}
		var ok bool
		if i, ok = validString(s, i+1); !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		if i, ok = validValue(s, skipWS(s, i+1)); !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case '}':
			return i + 1, true
		case ',':
			i = skipWS(s, i+1)
		default:
			return i, false
		}
	}
}

func validArray(s string, i int) (int, bool) {
	i = skipWS(s, i)
	if i < len(s) && s[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = validValue(s, i); !ok {
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

// validString validates string content from i (after the opening quote)
// and returns the offset after the closing quote.
func validString(s string, i int) (int, bool) {
	for {
		for i+8 <= len(s) {
			m := stringSpecial(binary.LittleEndian.Uint64(unsafeBytes(s[i : i+8])))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(s) {
			return i, false
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
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
		case c < 0x20:
			return i, false
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
// and the value [val, valEnd).
type member struct {
	key, keyEnd, val, valEnd int32
}

// validIndexJSON is validJSON that also records the members of a root
// object in *root (reset first), so that the walk over the root needs no
// second pass over the values it skips (the long text, containers no rule
// looks into). The result is exactly validJSON's; *root is meaningful
// only if s is valid and its root is an object.
func validIndexJSON(s string, root *[]member) bool {
	*root = (*root)[:0]
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return validJSON(s)
	}
	i, ok := validObjectIndex(s, i+1, root)
	return ok && skipWS(s, i) == len(s)
}

// validObjectIndex is validObject, recording the members.
func validObjectIndex(s string, i int, root *[]member) (int, bool) {
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
		if i, ok = validString(s, i+1); !ok {
			return i, false
		}
		ke := i
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		v := skipWS(s, i+1)
		if i, ok = validValue(s, v); !ok {
			return i, false
		}
		*root = append(*root, member{key: int32(k), keyEnd: int32(ke), val: int32(v), valEnd: int32(i)})
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case '}':
			return i + 1, true
		case ',':
			i = skipWS(s, i+1)
		default:
			return i, false
		}
	}
}
