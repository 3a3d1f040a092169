package redact

import (
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// Level is the consent level an event is redacted for. The zero value is
// not a level: AppendRedacted refuses it (fail closed).
type Level uint8

const (
	// LevelAllow applies the Always rules only.
	LevelAllow Level = iota + 1
	// LevelAnonymized applies the Anonymized rules, then the Always rules.
	LevelAnonymized
)

func (l Level) String() string {
	switch l {
	case LevelAllow:
		return "allow"
	case LevelAnonymized:
		return "anonymized"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// ParseLevel parses "allow" or "anonymized".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "allow":
		return LevelAllow, nil
	case "anonymized":
		return LevelAnonymized, nil
	}
	return 0, fmt.Errorf("redact: unknown level %q (want allow or anonymized)", s)
}

// crule is a compiled Rule.
type crule struct {
	segs   []segment
	act    action
	value  []byte // replace: the quoted JSON string
	keep   int
	maxLen int
	mask   detMask
}

// Engine redacts the events of one stream. It is immutable after Compile
// and safe for concurrent use by any number of goroutines.
type Engine struct {
	rules   [3][]crule // by Level
	trees   [3]*pathNode
	tokens  [numDetectors][]byte
	tokEsc  [numDetectors][]byte // JSON-escaped tokens
	tokUTF8 bool                 // every token is valid UTF-8
	keys    *Keyring
	regions []string
	maxFile int

	phoneCache phoneCache
	zdec       *zstd.Decoder
	zenc       *zstd.Encoder
	pool       workPool
}

// workPool keeps an Engine's idle scratch. Unlike a sync.Pool, the GC
// does not empty it: a work holds warm caches (recent pseudonyms, 64 KB)
// that a process allocating elsewhere — the stage's Kafka client does,
// per record — would otherwise lose at every collection, paying the
// HMACs and the allocation again. It holds at most as many works as there
// were concurrent calls.
type workPool struct {
	mu   sync.Mutex
	free []*work
	New  func() *work
}

func (p *workPool) Get() *work {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	return p.New()
}

func (p *workPool) Put(w *work) {
	p.mu.Lock()
	p.free = append(p.free, w)
	p.mu.Unlock()
}

// Compile validates cfg and opts and returns an Engine. keys may be nil
// only if no rule pseudonymizes (no pseudonymize action and no scan or
// file rule with the mention detector); otherwise the error wraps ErrNoKey.
// Configuration problems are returned joined, each a FieldError.
func Compile(cfg StreamConfig, opts Options, keys *Keyring) (*Engine, error) {
	var errs []error
	for _, fe := range opts.Validate() {
		errs = append(errs, fe)
	}
	for _, fe := range cfg.Validate() {
		errs = append(errs, fe)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Engine{keys: keys, regions: opts.phoneRegions(), maxFile: opts.maxFileBytes(), tokUTF8: true}
	for d := range numDetectors {
		tok := defaultTokens[d]
		if t, ok := opts.Tokens[detectorNames[d]]; ok {
			tok = t
		}
		e.tokens[d] = []byte(tok)
		e.tokEsc[d] = appendEscapedString(nil, tok)
		e.tokUTF8 = e.tokUTF8 && utf8.ValidString(tok)
	}
	compile := func(rs []Rule) []crule {
		var out []crule
		for _, r := range rs {
			segs, _ := parsePath(r.Path)
			act, _ := actionByName(r.Action)
			cr := crule{segs: segs, act: act, keep: r.Keep, maxLen: r.MaxLen}
			if act == actReplace {
				cr.value = append(appendEscapedString([]byte{'"'}, r.Value), '"')
			}
			if act == actScan || act == actFile {
				cr.mask = maskAll
				if len(r.Detectors) > 0 {
					cr.mask = 0
					for _, d := range r.Detectors {
						m, _ := detectorMask(d)
						cr.mask |= m
					}
				}
			}
			out = append(out, cr)
		}
		return out
	}
	always := compile(cfg.Always)
	e.rules[LevelAllow] = foldRules(always)
	e.rules[LevelAnonymized] = foldRules(append(compile(cfg.Anonymized), always...))
	for _, lv := range []Level{LevelAllow, LevelAnonymized} {
		e.trees[lv] = buildPathTree(e.rules[lv])
	}
	needKey, needFile := false, false
	for _, r := range e.rules[LevelAnonymized] {
		needKey = needKey || r.act == actPseudonymize || r.mask.has(detMention)
		needFile = needFile || r.act == actFile
	}
	if needKey && keys == nil {
		return nil, fmt.Errorf("redact: the rules pseudonymize (action pseudonymize or the mention detector): %w", ErrNoKey)
	}
	if needFile {
		var err error
		e.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(e.maxFile)))
		if err != nil {
			return nil, fmt.Errorf("redact: zstd decoder: %w", err)
		}
		// The fastest level, like gzip's in file.go: re-compression
		// only keeps the content's encoding.
		e.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return nil, fmt.Errorf("redact: zstd encoder: %w", err)
		}
	}
	e.pool.New = func() *work {
		w := &work{e: e, sum: make([]byte, 0, 32)}
		if e.keys != nil {
			w.hm = e.keys.newHash()
			w.ps = newPSCache()
		}
		w.sc.e = e
		return w
	}
	return e, nil
}

// foldRules folds a scan or file rule into an earlier one with the same
// path and action: their edits have the same spans, and mergeEdits would
// combine them into one with the union of their detectors anyway, after
// walking the value twice. (The reference configuration scans text with
// every detector at level anonymized and with the credential detectors
// always.)
func foldRules(rules []crule) []crule {
	out := rules[:0:0]
next:
	for _, r := range rules {
		if r.act == actScan || r.act == actFile {
			for k := range out {
				o := &out[k]
				if o.act == r.act && o.maxLen == r.maxLen && slices.Equal(o.segs, r.segs) {
					o.mask |= r.mask
					continue next
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// edit is one replaced span [start, end) of the input.
type edit struct {
	start, end int32
	act        action
	flags      uint8
	keep       int32
	maxLen     int32
	mask       detMask
	seq        int32
	value      []byte // replace
	mime, enc  [2]int32
	esc        escHint // whether the value, a string, has escapes, if known
}

const (
	flagPrevComma uint8 = 1 << iota // a dropped last member: also remove the comma before it
	flagFile                        // content_b64 of a file object
)

// work is the per-call scratch, pooled per Engine.
type work struct {
	e      *Engine
	edits  []edit
	sc     scanner
	un     []byte    // unescaped string
	marks  []escMark // the escapes met unescaping un
	out    []byte    // plain text being built
	keybuf []byte
	idbuf  []byte
	hm     hash.Hash
	sum    []byte
	ps     *psCache // nil if the Engine has no keys
	f      fileScratch
	depth  int
	// members are the root object's members when indexed is set (see
	// validIndexJSON); the walk then skips nothing at the root. root is
	// AppendRedacted's buffer for them; an Event brings its own.
	root    []member
	members []member
	indexed bool
	bm      []uint64 // AppendRedacted's special-byte bitmap (see validIndexJSON)
	// sbm is the special-byte bitmap of the document being redacted, or
	// nil: w.bm, or an Event's.
	sbm []uint64
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
func unsafeBytes(s string) []byte  { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// AppendRedacted appends the redacted form of the JSON event src for the
// given level to dst and returns the extended buffer. The caller owns both
// buffers; src is not modified and not retained, and must not overlap
// dst's spare capacity. Every byte outside a replaced span is copied
// unchanged; the output is valid JSON. On error, dst is returned with its
// original length and the error is an *Error (use ReasonOf). st, if not
// nil, is incremented; it must not be shared between concurrent calls.
func (e *Engine) AppendRedacted(dst, src []byte, level Level, st *Stats) ([]byte, error) {
	if level != LevelAllow && level != LevelAnonymized {
		return dst, newError(ReasonInternal, -1, fmt.Errorf("invalid level %d", level))
	}
	s := unsafeString(src)
	w := e.pool.Get()
	// One pass validates and indexes the root object's members.
	var bm *[]uint64
	if useBitmap {
		bm = &w.bm
	}
	if !validIndexJSON(s, &w.root, bm) {
		e.pool.Put(w)
		return dst, newError(ReasonInvalidJSON, -1, nil)
	}
	w.members, w.indexed = w.root, true
	if bm != nil {
		w.sbm = w.bm // the walk uses it too
	}
	return e.redact(w, dst, s, level, st)
}

// redact runs w on s and puts w back in the pool.
func (e *Engine) redact(w *work, dst []byte, s string, level Level, st *Stats) ([]byte, error) {
	out, err := w.run(dst, s, e.rules[level], e.trees[level], st)
	w.members, w.sbm = nil, nil // may be an Event's
	w.release()
	e.pool.Put(w)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// release drops oversized buffers so one huge event does not pin memory.
// The free list keeps every work it is given, for the life of the Engine,
// so each buffer is capped here at what ordinary events need.
func (w *work) release() {
	const keep = 1 << 20
	if cap(w.un) > keep {
		w.un = nil
	}
	if cap(w.out) > keep {
		w.out = nil
	}
	if cap(w.keybuf) > keep {
		w.keybuf = nil
	}
	if cap(w.idbuf) > keep {
		w.idbuf = nil
	}
	if cap(w.root) > keep/16 {
		w.root = nil
	}
	if cap(w.bm) > keep/64 {
		w.bm = nil
	}
	if cap(w.edits) > keep/64 {
		w.edits = nil
	}
	if cap(w.marks) > keep/16 {
		w.marks = nil
	}
	if cap(w.sc.ms) > keep/16 {
		w.sc.ms = nil
	}
	w.f.release(keep)
}

func (w *work) run(dst []byte, s string, rules []crule, tree *pathNode, st *Stats) ([]byte, error) {
	w.edits = w.edits[:0]
	i := skipWS(s, 0)
	if err := w.walkRules(s, i, rules, tree); err != nil {
		return dst, err
	}
	if len(w.edits) == 0 {
		return append(dst, s...), nil
	}
	w.sortEdits()
	w.mergeEdits()
	base := len(dst)
	prev := 0
	var err error
	for k := range w.edits {
		ed := &w.edits[k]
		dst = append(dst, s[prev:ed.start]...)
		if ed.flags&flagPrevComma != 0 {
			j := len(dst) - 1
			for j >= base && isWS(dst[j]) {
				j--
			}
			if j >= base && dst[j] == ',' {
				dst = dst[:j]
			}
		}
		dst, err = w.apply(dst, s, ed, st)
		if err != nil {
			return dst[:base], err
		}
		prev = int(ed.end)
	}
	return append(dst, s[prev:]...), nil
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// pathNode is a node of the rules' paths merged into a tree, so that one
// walk over the document serves every rule.
type pathNode struct {
	ends []int32     // rules whose path ends here, ascending
	keys []pathChild // segKey segments below
	each *pathNode   // the '#' segment below
	// byLen[l] has bit c set if keys[c].key is l bytes long (the last
	// entry stands for every longer length), so that a member whose key
	// length no child has costs one lookup instead of a comparison per
	// child. Only for nodes of at most 64 children.
	byLen [32]uint64
}

// child returns the child whose key is key, or nil.
func (n *pathNode) child(key string) *pathNode {
	if len(n.keys) > 64 {
		for c := range n.keys {
			if n.keys[c].key == key {
				return n.keys[c].node
			}
		}
		return nil
	}
	for set := n.byLen[min(len(key), len(n.byLen)-1)]; set != 0; set &= set - 1 {
		if c := &n.keys[bits.TrailingZeros64(set)]; c.key == key {
			return c.node
		}
	}
	return nil
}

type pathChild struct {
	key   string
	index int // >= 0 if key is a number, which also indexes arrays
	node  *pathNode
}

func buildPathTree(rules []crule) *pathNode {
	root := &pathNode{}
	for k := range rules {
		n := root
		for _, seg := range rules[k].segs {
			if seg.kind == segEach {
				if n.each == nil {
					n.each = &pathNode{}
				}
				n = n.each
				continue
			}
			var next *pathNode
			for _, c := range n.keys {
				if c.key == seg.key {
					next = c.node
					break
				}
			}
			if next == nil {
				next = &pathNode{}
				if len(n.keys) < 64 {
					n.byLen[min(len(seg.key), len(n.byLen)-1)] |= 1 << len(n.keys)
				}
				n.keys = append(n.keys, pathChild{key: seg.key, index: seg.index, node: next})
			}
			n = next
		}
		n.ends = append(n.ends, int32(k))
	}
	return root
}

// walkRules records the edits of all rules on the document at i, in one
// walk over the document along the path tree. The edits are the same as
// those of walking the document once per rule; only the order differs,
// and sortEdits makes that canonical. If there is an error, walkRules
// returns the one the rule-by-rule walk finds first.
func (w *work) walkRules(s string, i int, rules []crule, tree *pathNode) error {
	w.depth = 0
	var err error
	if w.indexed && len(tree.ends) == 0 && i < len(s) && s[i] == '{' {
		err = w.walkRoot(s, rules, tree)
	} else {
		_, err = w.walkTree(s, i, -1, rules, tree, -1)
	}
	if err != nil {
		w.edits = w.edits[:0]
		for k := range rules {
			w.depth = 0
			if err := w.walk(s, i, rules[k].segs, &rules[k], int32(k), -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkTree records the edits of the rules in the tree below n on the
// value at i and returns the value's end. ve is the value's end, or -1 if
// not known yet: the walk then finds it on its way where it can (a
// container it walks through, a file object) instead of scanning for it
// first. mstart is as for walk.
func (w *work) walkTree(s string, i, ve int, rules []crule, n *pathNode, mstart int) (int, error) {
	if len(n.ends) > 0 {
		for _, k := range n.ends {
			r := &rules[k]
			if ve < 0 && r.act == actFile && i < len(s) && s[i] == '{' {
				var err error
				if ve, err = w.fileTarget(s, i, -1, r, k); err != nil {
					return ve, err
				}
				continue
			}
			if ve < 0 {
				ve = w.valueEnd(s, i)
			}
			if err := w.targetEnd(s, i, ve, r, k, mstart); err != nil {
				return ve, err
			}
		}
	}
	if i >= len(s) {
		return i, nil
	}
	switch s[i] {
	case '{':
		if len(n.keys) == 0 {
			break
		}
		j := skipWS(s, i+1)
		for j < len(s) && s[j] == '"' {
			ke, esc := w.keyEnd(s, j)
			v := skipWS(s, skipWS(s, ke)+1) // past ':'
			key := s[j+1 : ke-1]
			if esc {
				w.keybuf = appendUnescaped(w.keybuf[:0], key)
				key = unsafeString(w.keybuf)
			}
			var vend int
			if c := n.child(key); c != nil {
				var err error
				if vend, err = w.walkTree(s, v, -1, rules, c, j); err != nil {
					return vend, err
				}
			} else {
				vend = w.valueEnd(s, v)
			}
			j = skipWS(s, vend)
			if j < len(s) && s[j] == ',' {
				j = skipWS(s, j+1)
				continue
			}
			break
		}
		if j < len(s) && s[j] == '}' {
			ve = j + 1
		}
	case '[':
		if n.each == nil && len(n.keys) == 0 {
			break
		}
		j := skipWS(s, i+1)
		for idx := 0; j < len(s) && s[j] != ']'; idx++ {
			var vend int
			if n.each != nil {
				var err error
				if vend, err = w.walkTree(s, j, -1, rules, n.each, j); err != nil {
					return vend, err
				}
			} else {
				vend = w.valueEnd(s, j)
			}
			for c := range n.keys {
				if n.keys[c].index == idx {
					if _, err := w.walkTree(s, j, vend, rules, n.keys[c].node, j); err != nil {
						return vend, err
					}
				}
			}
			j = skipWS(s, vend)
			if j < len(s) && s[j] == ',' {
				j = skipWS(s, j+1)
			}
		}
		if j < len(s) {
			ve = j + 1
		}
	}
	if ve < 0 {
		ve = w.valueEnd(s, i)
	}
	return ve, nil
}

// walkRoot is walkTree for the root object, over the members recorded
// by validIndexJSON instead of the bytes.
func (w *work) walkRoot(s string, rules []crule, n *pathNode) error {
	if len(n.keys) == 0 {
		return nil
	}
	for k := range w.members {
		m := &w.members[k]
		// A key without escapes is as long as its raw bytes: most root
		// members have a length no rule's key has.
		if !m.keyEsc && len(n.keys) <= 64 && n.byLen[min(int(m.keyEnd-m.key-2), len(n.byLen)-1)] == 0 {
			continue
		}
		key := s[m.key+1 : m.keyEnd-1]
		if m.keyEsc {
			w.keybuf = appendUnescaped(w.keybuf[:0], key)
			key = unsafeString(w.keybuf)
		}
		if c := n.child(key); c != nil {
			first := len(w.edits)
			if _, err := w.walkTree(s, int(m.val), int(m.valEnd), rules, c, int(m.key)); err != nil {
				return err
			}
			// The index knows whether the value has escapes: an edit of
			// exactly this value takes that along.
			esc := escNone
			if m.strEsc {
				esc = escSome
			}
			for k := first; k < len(w.edits); k++ {
				if w.edits[k].start == m.val {
					w.edits[k].esc = esc
				}
			}
		}
	}
	return nil
}

// walk finds the values at segs below the value at i and records edits.
// mstart is the start of the member (its key) or array element holding
// the value, -1 for the root.
func (w *work) walk(s string, i int, segs []segment, r *crule, seq int32, mstart int) error {
	if len(segs) == 0 {
		return w.target(s, i, r, seq, mstart)
	}
	if i >= len(s) {
		return nil
	}
	seg := &segs[0]
	switch s[i] {
	case '{':
		if seg.kind != segKey {
			return nil
		}
		j := skipWS(s, i+1)
		for j < len(s) && s[j] == '"' {
			ke := w.stringEnd(s, j)
			v := skipWS(s, skipWS(s, ke)+1) // past ':'
			ve := w.valueEnd(s, v)
			if w.keyEq(s[j+1:ke-1], seg.key) {
				if err := w.walk(s, v, segs[1:], r, seq, j); err != nil {
					return err
				}
			}
			j = skipWS(s, ve)
			if j < len(s) && s[j] == ',' {
				j = skipWS(s, j+1)
				continue
			}
			break
		}
	case '[':
		if seg.kind == segKey && seg.index < 0 {
			return nil
		}
		j := skipWS(s, i+1)
		for n := 0; j < len(s) && s[j] != ']'; n++ {
			ve := w.valueEnd(s, j)
			if seg.kind == segEach || n == seg.index {
				if err := w.walk(s, j, segs[1:], r, seq, j); err != nil {
					return err
				}
			}
			j = skipWS(s, ve)
			if j < len(s) && s[j] == ',' {
				j = skipWS(s, j+1)
			}
		}
	}
	return nil
}

// keyEq compares a raw (still escaped) key with a path key.
func (w *work) keyEq(raw, key string) bool {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw == key
	}
	w.keybuf = appendUnescaped(w.keybuf[:0], raw)
	return string(w.keybuf) == key
}

func (w *work) add(ed edit) { w.edits = append(w.edits, ed) }

// target records the edit of rule r on the value at i.
func (w *work) target(s string, i int, r *crule, seq int32, mstart int) error {
	return w.targetEnd(s, i, w.valueEnd(s, i), r, seq, mstart)
}

// targetEnd is target for the value [i, ve).
func (w *work) targetEnd(s string, i, ve int, r *crule, seq int32, mstart int) error {
	ed := edit{start: int32(i), end: int32(ve), act: r.act, keep: int32(r.keep), maxLen: int32(r.maxLen), mask: r.mask, seq: seq, value: r.value}
	switch r.act {
	case actDrop:
		if mstart < 0 {
			ed.act = actNull // the root cannot be dropped; paths are never empty, so this is defensive
			break
		}
		ed.start = int32(mstart)
		k := skipWS(s, ve)
		if k < len(s) && s[k] == ',' {
			ed.end = int32(skipWS(s, k+1))
		} else {
			ed.flags |= flagPrevComma
		}
	case actScan:
		if s[i] == '{' || s[i] == '[' {
			return w.scanAll(s, i, r, seq)
		}
	case actFile:
		_, err := w.fileTarget(s, i, ve, r, seq)
		return err
	}
	w.add(ed)
	return nil
}

// scanAll records scan edits for every string and number under the
// container at i (object keys are not scanned).
func (w *work) scanAll(s string, i int, r *crule, seq int32) error {
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > MaxDepth {
		return newError(ReasonTooDeep, i, nil)
	}
	obj := s[i] == '{'
	j := skipWS(s, i+1)
	for j < len(s) && s[j] != '}' && s[j] != ']' {
		if obj {
			ke := w.stringEnd(s, j)
			j = skipWS(s, skipWS(s, ke)+1)
		}
		ve := w.valueEnd(s, j)
		switch s[j] {
		case '{', '[':
			if err := w.scanAll(s, j, r, seq); err != nil {
				return err
			}
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			w.add(edit{start: int32(j), end: int32(ve), act: actScan, mask: r.mask, seq: seq})
		}
		j = skipWS(s, ve)
		if j < len(s) && s[j] == ',' {
			j = skipWS(s, j+1)
		}
	}
	return nil
}

// sortEdits orders edits by start, then longest first, then rule order.
// Insertion sort: there are few edits and they arrive nearly sorted.
func (w *work) sortEdits() {
	ed := w.edits
	for i := 1; i < len(ed); i++ {
		for j := i; j > 0 && editLess(&ed[j], &ed[j-1]); j-- {
			ed[j], ed[j-1] = ed[j-1], ed[j]
		}
	}
}

func editLess(a, b *edit) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	if a.end != b.end {
		return a.end > b.end
	}
	return a.seq < b.seq
}

func structural(a action) bool {
	return a == actDrop || a == actNull || a == actReplace || a == actMask || a == actPseudonymize
}

// mergeEdits removes edits nested in an earlier one (the outer edit
// replaces the whole value) and combines edits of the same span: a later
// structural edit wins (rules apply in order); scans, truncations and file
// processing combine (union of detectors, shortest max_len).
func (w *work) mergeEdits() {
	out := w.edits[:0]
	for k := range w.edits {
		ed := w.edits[k]
		if len(out) > 0 {
			last := &out[len(out)-1]
			if ed.start < last.end {
				if ed.start == last.start && ed.end == last.end {
					switch {
					case structural(ed.act):
						*last = ed
					case structural(last.act):
					default:
						last.mask |= ed.mask
						if ed.maxLen > 0 && (last.maxLen == 0 || ed.maxLen < last.maxLen) {
							last.maxLen = ed.maxLen
						}
						if ed.flags&flagFile != 0 && last.flags&flagFile == 0 {
							ed.mask, ed.maxLen = last.mask, last.maxLen
							*last = ed
						}
						if last.flags&flagFile == 0 && last.mask != 0 {
							last.act = actScan
						}
					}
				}
				continue
			}
		}
		out = append(out, ed)
	}
	w.edits = out
}

// escHint tells whether a string value has escapes, if the index knows.
type escHint uint8

const (
	escUnknown escHint = iota
	escNone
	escSome
)

// escaped reports whether the content of a raw JSON string has escapes.
func (h escHint) escaped(content string) bool {
	if h == escUnknown {
		return strings.IndexByte(content, '\\') >= 0
	}
	return h == escSome
}

// apply appends the replacement for ed (ed.esc: whether the string it
// replaces has escapes, if the index knows).
func (w *work) apply(dst []byte, s string, ed *edit, st *Stats) ([]byte, error) {
	esc := ed.esc
	raw := s[ed.start:ed.end]
	switch ed.act {
	case actDrop:
		st.act(actDrop)
		return dst, nil
	case actNull:
		st.act(actNull)
		return append(dst, "null"...), nil
	case actReplace:
		st.act(actReplace)
		return append(dst, ed.value...), nil
	case actMask:
		return w.mask(dst, raw, int(ed.keep), esc, st), nil
	case actPseudonymize:
		return w.pseudonymize(dst, raw, esc, st), nil
	case actFile:
		if ed.flags&flagFile != 0 {
			return w.file(dst, s, ed, st)
		}
		return append(dst, "null"...), nil
	}
	// scan / truncate
	if raw[0] == '"' {
		return w.text(dst, raw, int(ed.start), ed.mask, int(ed.maxLen), esc, st), nil
	}
	if ed.mask != 0 && raw[0] != '{' && raw[0] != '[' && raw[0] != 't' && raw[0] != 'f' && raw[0] != 'n' {
		// a number: scan its text; if anything matches it becomes a string
		w.sc.ms = w.sc.ms[:0]
		w.sc.mask = ed.mask
		w.sc.scan(unsafeBytes(raw))
		if len(w.sc.ms) > 0 {
			dst = append(dst, '"')
			dst = w.appendReplaced(dst, unsafeBytes(raw), w.sc.ms, true, st)
			st.act(actScan)
			return append(dst, '"'), nil
		}
	}
	return append(dst, raw...), nil
}

// stringText returns the text a raw JSON string encodes, unescaping into
// w.un only if needed.
func (w *work) stringText(raw string, esc escHint) []byte {
	content := raw[1 : len(raw)-1]
	if !esc.escaped(content) {
		return unsafeBytes(content)
	}
	w.un = appendUnescaped(w.un[:0], content)
	return w.un
}

// text scans and/or truncates a string value, raw, at offset at of the
// document.
func (w *work) text(dst []byte, raw string, at int, mask detMask, maxLen int, esc escHint, st *Stats) []byte {
	content := raw[1 : len(raw)-1]
	escaped := esc.escaped(content)
	t := unsafeBytes(content)
	if escaped {
		w.marks = w.marks[:0]
		w.un = unescape(w.un[:0], content, &w.marks, w.sbm, at+1)
		t = w.un
	}
	ms := w.sc.ms[:0]
	if mask != 0 {
		w.sc.ms = ms
		w.sc.mask = mask
		w.sc.scan(t)
		ms = w.sc.ms
	}
	trunc := maxLen > 0 && len(t) > maxLen && utf8.RuneCount(t) > maxLen
	if len(ms) == 0 && !trunc {
		return append(dst, raw...)
	}
	if len(ms) > 0 {
		st.act(actScan)
	}
	if !trunc && (!escaped || w.e.tokUTF8) {
		// Without escapes the content is its own JSON encoding: copy it
		// around the matches. With escapes, the raw content between the
		// matches is copied too, escapes as they were; failing that,
		// escaping the pieces between the matches is escaping the whole,
		// as every replacement is valid UTF-8 (UTF-8 is self-synchronizing).
		dst = append(dst, '"')
		if escaped {
			dst = w.appendReplacedEscaped(dst, content, t, ms, st)
		} else {
			dst = w.appendReplaced(dst, t, ms, true, st)
		}
		return append(dst, '"')
	}
	w.out = w.appendReplaced(w.out[:0], t, ms, false, st)
	o := w.out
	if maxLen > 0 && utf8.RuneCount(o) > maxLen {
		n := 0
		for i := range string(o) {
			if n == maxLen {
				o = o[:i]
				break
			}
			n++
		}
		st.act(actTruncate)
	}
	dst = append(dst, '"')
	dst = appendEscaped(dst, o)
	return append(dst, '"')
}

// appendReplacedEscaped appends the JSON string content raw with the
// matches in t, the text raw encodes, replaced: the raw bytes between the
// matches are copied as they are, escapes included (w.marks maps the text
// back to them). Should a match boundary fall inside an escape's decoded
// bytes, it is appendEscaped of the output of appendReplaced (esc false)
// instead, which needs every token to be valid UTF-8.
func (w *work) appendReplacedEscaped(dst []byte, raw string, t []byte, ms []match, st *Stats) []byte {
	base := len(dst)
	ro := rawOffsets{marks: w.marks}
	prev := 0 // in raw
	for _, m := range ms {
		r0, ok0 := ro.at(int(m.start))
		r1, ok1 := ro.at(int(m.end))
		if !ok0 || !ok1 {
			return w.appendReescaped(dst[:base], t, ms, st)
		}
		dst = append(dst, raw[prev:r0]...)
		dst = w.appendTok(dst, t, m)
		prev = r1
	}
	// Counted only now: the fallback above counts as it writes.
	for _, m := range ms {
		st.det(m.det)
	}
	return append(dst, raw[prev:]...)
}

// appendReescaped is appendEscaped of the output of appendReplaced (esc
// false) in one pass; every token must be valid UTF-8.
func (w *work) appendReescaped(dst, t []byte, ms []match, st *Stats) []byte {
	prev := 0
	for _, m := range ms {
		dst = appendEscaped(dst, t[prev:m.start])
		dst = w.appendToken(dst, t, m, st)
		prev = int(m.end)
	}
	return appendEscaped(dst, t[prev:])
}

// appendToken appends the JSON-escaped replacement of match m of text t.
func (w *work) appendToken(dst, t []byte, m match, st *Stats) []byte {
	st.det(m.det)
	return w.appendTok(dst, t, m)
}

// appendTok is appendToken without counting the match.
func (w *work) appendTok(dst, t []byte, m match) []byte {
	if m.det == detMention {
		dst = append(dst, '<', '@')
		dst = w.appendPseudonym(dst, t[m.start+2:m.aux])
		return append(dst, '>')
	}
	return append(dst, w.e.tokEsc[m.det]...)
}

// appendReplaced appends t with every match replaced. If esc, t is JSON
// string content already and replacements are written JSON-escaped;
// otherwise everything is written as plain text.
func (w *work) appendReplaced(dst, t []byte, ms []match, esc bool, st *Stats) []byte {
	prev := 0
	for _, m := range ms {
		dst = append(dst, t[prev:m.start]...)
		if esc || m.det == detMention { // a pseudonym needs no escaping
			dst = w.appendToken(dst, t, m, st)
		} else {
			st.det(m.det)
			dst = append(dst, w.e.tokens[m.det]...)
		}
		prev = int(m.end)
	}
	return append(dst, t[prev:]...)
}

// mask keeps the last keep characters of a string or number.
func (w *work) mask(dst []byte, raw string, keep int, esc escHint, st *Stats) []byte {
	var t []byte
	switch raw[0] {
	case '"':
		t = w.stringText(raw, esc)
	case '{', '[', 't', 'f':
		st.act(actMask)
		return append(dst, "null"...)
	case 'n':
		return append(dst, raw...)
	default:
		t = unsafeBytes(raw)
	}
	st.act(actMask)
	n := utf8.RuneCount(t)
	dst = append(dst, '"')
	i := 0
	for k := 0; k < n-keep; k++ {
		_, size := utf8.DecodeRune(t[i:])
		i += size
		dst = append(dst, '*')
	}
	dst = appendEscaped(dst, t[i:])
	return append(dst, '"')
}

// pseudonymize replaces a string or number with its keyed pseudonym. An
// email address ("a@b.c" or "Name <a@b.c>") is pseudonymized as the
// lower-cased address, so the same mailbox gives the same pseudonym.
func (w *work) pseudonymize(dst []byte, raw string, esc escHint, st *Stats) []byte {
	var t []byte
	switch raw[0] {
	case '"':
		t = w.stringText(raw, esc)
	case '{', '[':
		st.act(actPseudonymize)
		return append(dst, "null"...)
	case 't', 'f', 'n':
		return append(dst, raw...)
	default:
		t = unsafeBytes(raw)
	}
	st.act(actPseudonymize)
	t = w.normalizeID(t)
	dst = append(dst, '"')
	dst = w.appendPseudonym(dst, t)
	return append(dst, '"')
}

// normalizeID maps an email value to its lower-cased address; other ids
// are returned as they are.
func (w *work) normalizeID(t []byte) []byte {
	at := -1
	for i, c := range t {
		if c == '@' {
			at = i
			break
		}
	}
	if at < 0 {
		return t
	}
	if lt := lastIndexByte(t, '<'); lt >= 0 {
		if gt := lastIndexByte(t, '>'); gt > lt {
			t = t[lt+1 : gt]
		}
	}
	for len(t) > 0 && isWS(t[0]) {
		t = t[1:]
	}
	for len(t) > 0 && isWS(t[len(t)-1]) {
		t = t[:len(t)-1]
	}
	w.idbuf = w.idbuf[:0]
	for _, c := range t {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		w.idbuf = append(w.idbuf, c)
	}
	return w.idbuf
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}
