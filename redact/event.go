package redact

import (
	"errors"
)

// Event is an event checked once for everything the stage needs before it
// decides: valid JSON, valid UTF-8 (RFC 8259 §8.1; invalid sequences are
// read differently downstream, which could rejoin PII the detectors saw
// split) and nesting of at most MaxDepth levels (a deeper document would
// break parsers downstream). Check also indexes the members of a root
// object, so that reading the consent ids and redacting need no further
// pass over the bytes the rules do not target.
//
// The zero value is ready to use; reuse one Event per goroutine, so that
// checking allocates nothing in steady state. An Event refers to the bytes
// it checked, which must not change while it is in use.
type Event struct {
	src    string
	root   []member
	keybuf []byte
	bm     []uint64 // Check's special-byte bitmap (see checker.bm)
	hasBM  bool     // bm is src's
	ok     bool     // Check accepted src
}

var (
	errNotUTF8  = errors.New("not valid UTF-8")
	errTooDeep  = errors.New("nesting deeper than 256 levels")
	errNotEvent = errors.New("not a valid JSON document")
)

// Check checks src and indexes it. It returns nil, or an *Error whose
// Reason is ReasonInvalidJSON (also for invalid UTF-8) or ReasonTooDeep.
// The validation is iterative in nothing but nesting, which it bounds, so
// hostile input cannot grow the stack.
func (ev *Event) Check(src []byte) error {
	ev.src, ev.ok = unsafeString(src), false
	ev.root = ev.root[:0]
	c := checker{hi: msb}
	if ev.hasBM = useBitmap; ev.hasBM {
		ev.bm = specialBitmap(ev.bm, ev.src, true)
		c.bm = ev.bm
	}
	if len(src) > 0 && c.document(ev.src, MaxDepth, &ev.root) {
		ev.ok = true
		return nil
	}
	ev.Reset()
	switch {
	case c.tooDeep:
		return newError(ReasonTooDeep, -1, errTooDeep)
	case c.badUTF8:
		return newError(ReasonInvalidJSON, -1, errNotUTF8)
	}
	return newError(ReasonInvalidJSON, -1, errNotEvent)
}

// Reset forgets the checked bytes (keeping ev's buffers), so that ev no
// longer refers to them.
func (ev *Event) Reset() {
	ev.src, ev.root, ev.ok, ev.hasBM = "", ev.root[:0], false, false
}

// Member returns the raw JSON value of the member of the root object named
// key (compared as the text the member names encode, escapes resolved)
// and how many members have that name; ("", 0) if there is none or the
// root is not an object. Check must have succeeded.
func (ev *Event) Member(key string) (raw string, n int) {
	s := ev.src
	for _, m := range ev.root {
		k := s[m.key+1 : m.keyEnd-1]
		if m.keyEsc {
			ev.keybuf = appendUnescaped(ev.keybuf[:0], k)
			k = unsafeString(ev.keybuf)
		}
		if k == key {
			if n == 0 {
				raw = s[m.val:m.valEnd]
			}
			n++
		}
	}
	return raw, n
}

// AppendRedactedEvent is AppendRedacted for an event that ev.Check has
// accepted: it redacts the checked bytes without validating them again.
func (e *Engine) AppendRedactedEvent(dst []byte, ev *Event, level Level, st *Stats) ([]byte, error) {
	if level != LevelAllow && level != LevelAnonymized {
		return dst, newError(ReasonInternal, -1, errors.New("invalid level"))
	}
	if !ev.ok { // never checked, or rejected: fail closed
		return dst, newError(ReasonInternal, -1, errors.New("event not checked"))
	}
	w := e.pool.Get()
	w.members, w.indexed = ev.root, true
	if ev.hasBM {
		w.sbm = ev.bm
	}
	out, err := e.redact(w, dst, ev.src, level, st)
	return out, err
}

// Source returns the checked bytes as a string, without copying.
func (ev *Event) Source() string { return ev.src }
