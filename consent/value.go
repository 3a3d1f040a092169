package consent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// ErrMalformedValue is wrapped by every error of ParseValue. A malformed
// value counts as deny for every category of its key (fail closed).
var ErrMalformedValue = errors.New("consent: malformed value")

// Record is a parsed consent value.
type Record struct {
	// Default is the level of categories not listed in Categories; deny when
	// the value has no "default" field.
	Default Level
	// Categories maps a category to its level; nil when there are none.
	Categories map[string]Level
	// UpdatedAt and UpdatedBy are carried as written, for audit; they do not
	// influence any decision and are not validated.
	UpdatedAt string
	UpdatedBy string
}

// Level returns the record's level for category: Categories[category] if
// present, else Default.
func (r *Record) Level(category string) Level {
	if l, ok := r.Categories[category]; ok {
		return l
	}
	return r.Default
}

// ParseValue parses a consent value: a JSON object with the optional fields
// "default" (a level name), "categories" (an object of category → level
// name), "updated_at" and "updated_by" (strings). Unknown fields are
// ignored. The value must not be nil: a nil value is a tombstone, which is
// not a record. Invalid JSON, a non-object, a level that is not a string or
// not a known name, a "categories" that is not an object, and duplicate
// field or category names are errors wrapping ErrMalformedValue.
func ParseValue(value []byte) (Record, error) {
	var p valueParser
	if _, err := p.parse(value, true); err != nil {
		return Record{}, err
	}
	r := Record{Default: p.def, UpdatedAt: strings.Clone(p.updatedAt), UpdatedBy: strings.Clone(p.updatedBy)}
	if len(p.cats) > 0 {
		r.Categories = make(map[string]Level, len(p.cats))
		for _, c := range p.cats {
			r.Categories[strings.Clone(c.name)] = c.level
		}
	}
	return r, nil
}

type catLevel struct {
	name  string // aliases the value bytes; copied before it is kept
	level Level
}

// valueParser parses consent values into the canonical encoding of their
// level vector (see encodeVec); it is reused across records by one goroutine.
type valueParser struct {
	def                  Level
	cats                 []catLevel
	updatedAt, updatedBy string
	vec                  []byte
}

// bytesView returns b as a string without copying; b must not be modified
// while the string is in use.
func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parse parses value. The returned vector encoding is valid until the next
// call. Category names and, with meta, updatedAt/updatedBy may alias value.
func (p *valueParser) parse(value []byte, meta bool) ([]byte, error) {
	p.def, p.cats, p.updatedAt, p.updatedBy = LevelDeny, p.cats[:0], "", ""
	sc := scanner{s: bytesView(value)}
	sc.ws()
	if sc.next() != '{' {
		if !sc.value(0) {
			return nil, fmt.Errorf("%w: not valid JSON", ErrMalformedValue)
		}
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedValue)
	}
	var semErr error // a well-formed document that is not a valid record
	var seenDefault, seenCats, seenAt, seenBy bool
	level := func(what string, isDefault bool) bool {
		if sc.next() != '"' {
			if semErr == nil {
				semErr = fmt.Errorf("%w: %s: level is not a string", ErrMalformedValue, what)
			}
			return sc.value(1)
		}
		s, ok := sc.str()
		if !ok {
			return false
		}
		l, err := ParseLevel(s)
		if err != nil && semErr == nil {
			semErr = fmt.Errorf("%w: %s: %v", ErrMalformedValue, what, err)
		}
		if isDefault {
			p.def = l
		} else {
			p.cats = append(p.cats, catLevel{name: what, level: l})
		}
		return true
	}
	dup := func(name string) {
		if semErr == nil {
			semErr = fmt.Errorf("%w: duplicate field %q", ErrMalformedValue, name)
		}
	}
	meta1 := func(dst *string) bool {
		start := sc.i
		if sc.next() == '"' {
			s, ok := sc.str()
			if ok && meta {
				*dst = s
			}
			return ok
		}
		if !sc.value(1) {
			return false
		}
		if meta {
			*dst = sc.s[start:sc.i]
		}
		return true
	}
	ok := sc.object(0, func(k string) bool {
		switch k {
		case "default":
			if seenDefault {
				dup(k)
			}
			seenDefault = true
			return level("default", true)
		case "categories":
			if seenCats {
				dup(k)
			}
			seenCats = true
			if sc.next() != '{' {
				if semErr == nil {
					semErr = fmt.Errorf("%w: categories: not a JSON object", ErrMalformedValue)
				}
				return sc.value(1)
			}
			return sc.object(1, func(c string) bool { return level(c, false) })
		case "updated_at":
			if seenAt {
				dup(k)
			}
			seenAt = true
			return meta1(&p.updatedAt)
		case "updated_by":
			if seenBy {
				dup(k)
			}
			seenBy = true
			return meta1(&p.updatedBy)
		}
		return sc.value(1)
	})
	sc.ws()
	if !ok || sc.i != len(sc.s) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrMalformedValue)
	}
	if semErr != nil {
		return nil, semErr
	}
	// Insertion sort: records list few categories.
	for i := 1; i < len(p.cats); i++ {
		for j := i; j > 0 && p.cats[j].name < p.cats[j-1].name; j-- {
			p.cats[j], p.cats[j-1] = p.cats[j-1], p.cats[j]
		}
	}
	for i := 1; i < len(p.cats); i++ {
		if p.cats[i].name == p.cats[i-1].name {
			return nil, fmt.Errorf("%w: duplicate category %q", ErrMalformedValue, p.cats[i].name)
		}
	}
	p.vec = encodeVec(p.vec[:0], false, p.def, p.cats)
	return p.vec, nil
}

// encodeVec appends the canonical encoding of a level vector, the key under
// which distinct vectors are interned: a flags byte (1 = malformed), the
// default level, then per category in name order: uvarint name length,
// name, level.
func encodeVec(dst []byte, malformed bool, def Level, cats []catLevel) []byte {
	var flags byte
	if malformed {
		flags = 1
	}
	dst = append(dst, flags, byte(def))
	for _, c := range cats {
		dst = binary.AppendUvarint(dst, uint64(len(c.name)))
		dst = append(dst, c.name...)
		dst = append(dst, byte(c.level))
	}
	return dst
}

// malformedVec is the encoding of the vector of a malformed value.
var malformedVec = encodeVec(nil, true, LevelDeny, nil)
