package redact

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// StreamConfig is the redaction part of one stream. The config loader
// inlines it into the stream's YAML (`yaml:",inline"`).
//
// At level anonymized the Anonymized rules apply, then the Always rules; at
// level allow only the Always rules apply. The zero value redacts nothing.
type StreamConfig struct {
	// Anonymized rules apply at level anonymized, before Always.
	Anonymized []Rule `yaml:"anonymized"`
	// Always rules apply to every forwarded event (levels anonymized and
	// allow). Use them for credentials: those are never forwarded.
	Always []Rule `yaml:"always"`
}

// Rule redacts the values found at one path.
type Rule struct {
	// Path is a gjson path of plain keys separated by '.', where a '#'
	// segment means every element of an array ("to.#",
	// "attachments.#.name") and a number indexes an array or names an
	// object key. '\' escapes the next character of a key. Modifiers (@),
	// pipes (|), queries (#(...)) and wildcards (* ?) are rejected.
	// Required. Every duplicate of a key matches, not only the first.
	Path string `yaml:"path"`
	// Action is one of:
	//   drop          remove the key (or array element) and its comma
	//   null          set the value to null
	//   replace       set the value to the string Value
	//   mask          keep the last Keep characters, '*' for the others (strings and numbers; other values become null)
	//   pseudonymize  keyed HMAC pseudonym "ps_<keyid>_<22 chars>" of a string or number; an email address (also "Name <a@b.c>")
	//                 is pseudonymized as its lower-cased address; objects and arrays become null; null and booleans are kept
	//   truncate      cut a string to MaxLen characters (after any scan on the same value)
	//   scan          replace free-text PII found by Detectors in a string (or in every string under an object/array, keys excepted)
	//   file          the value is a file object {name, mimetype, content_encoding, content_b64}: the name is scanned; text content
	//                 is decoded, decompressed, scanned and re-encoded; binary content has content_b64 set to null
	// Required.
	Action string `yaml:"action"`
	// Value is the replacement string for replace. Required there, and
	// rejected for other actions.
	Value string `yaml:"value,omitempty"`
	// Keep is the number of trailing characters mask keeps. Default: 0.
	Keep int `yaml:"keep,omitempty"`
	// MaxLen is the maximum number of characters truncate keeps. Required (> 0) for truncate.
	MaxLen int `yaml:"max_len,omitempty"`
	// Detectors limits scan and file to these detectors or groups (see
	// DetectorNames). Default: all.
	Detectors []string `yaml:"detectors,omitempty"`
}

// Options are the global redaction settings (top-level `redaction:` block).
// The zero value uses every default.
type Options struct {
	// Tokens overrides the replacement token per detector name.
	// Default: "[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]", "[SSN]",
	// "[URL_SECRET]" for url_secret and "[SECRET]" for the other credential
	// detectors. The mention detector pseudonymizes and takes no token.
	Tokens map[string]string `yaml:"tokens,omitempty"`
	// MaxFileBytes bounds the decoded and the decompressed size of one file's
	// content; a larger file fails the event with reason file_too_large.
	// Default: 8 MiB.
	MaxFileBytes int `yaml:"max_file_bytes,omitempty"`
	// PhoneRegions are the regions (ISO 3166 alpha-2) whose national phone
	// formats are recognised without a +country prefix. International
	// numbers (+CC...) are recognised for every region.
	// Default: [US, GB, DE, FR].
	PhoneRegions []string `yaml:"phone_regions,omitempty"`
}

// DefaultMaxFileBytes is the default of Options.MaxFileBytes.
const DefaultMaxFileBytes = 8 << 20

var defaultPhoneRegions = []string{"US", "GB", "DE", "FR"}

func (o Options) maxFileBytes() int {
	if o.MaxFileBytes > 0 {
		return o.MaxFileBytes
	}
	return DefaultMaxFileBytes
}

func (o Options) phoneRegions() []string {
	if len(o.PhoneRegions) > 0 {
		return o.PhoneRegions
	}
	return defaultPhoneRegions
}

// FieldError is one configuration problem. Path is relative to the block
// that was validated ("anonymized[2].path", "tokens.emial"), so the loader
// can prefix it ("streams[0].").
type FieldError struct {
	Path string
	Err  error
}

func (e FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e FieldError) Unwrap() error { return e.Err }

// Validate returns every problem in c, each with its relative YAML path.
func (c StreamConfig) Validate() []FieldError {
	var errs []FieldError
	for i, r := range c.Anonymized {
		errs = r.validate(fmt.Sprintf("anonymized[%d]", i), errs)
	}
	for i, r := range c.Always {
		errs = r.validate(fmt.Sprintf("always[%d]", i), errs)
	}
	return errs
}

// Validate returns every problem in o, each with its relative YAML path.
func (o Options) Validate() []FieldError {
	var errs []FieldError
	for name, tok := range o.Tokens {
		p := "tokens." + name
		d, ok := detectorByName(name)
		switch {
		case !ok:
			errs = append(errs, FieldError{p, fmt.Errorf("unknown detector %q (known: %s)", name, strings.Join(detectorNames[:], ", "))})
		case d == detMention:
			errs = append(errs, FieldError{p, errors.New("mentions are pseudonymized and take no token")})
		case tok == "":
			errs = append(errs, FieldError{p, errors.New("empty token")})
		case !utf8.ValidString(tok):
			errs = append(errs, FieldError{p, errors.New("token is not valid UTF-8")})
		}
	}
	if o.MaxFileBytes < 0 {
		errs = append(errs, FieldError{"max_file_bytes", errors.New("must not be negative")})
	}
	for i, r := range o.PhoneRegions {
		if !isPhoneRegion(r) {
			errs = append(errs, FieldError{fmt.Sprintf("phone_regions[%d]", i), fmt.Errorf("unknown phone region %q", r)})
		}
	}
	return errs
}

func detectorByName(name string) (detector, bool) {
	for i, n := range detectorNames {
		if n == name {
			return detector(i), true
		}
	}
	return 0, false
}

func actionByName(name string) (action, bool) {
	for i, n := range actionNames {
		if n == name {
			return action(i), true
		}
	}
	return 0, false
}

func (r Rule) validate(p string, errs []FieldError) []FieldError {
	if r.Path == "" {
		errs = append(errs, FieldError{p + ".path", errors.New("required")})
	} else if _, err := parsePath(r.Path); err != nil {
		errs = append(errs, FieldError{p + ".path", err})
	}
	act, ok := actionByName(r.Action)
	if !ok {
		if r.Action == "" {
			errs = append(errs, FieldError{p + ".action", fmt.Errorf("required (one of %s)", strings.Join(actionNames[:], ", "))})
		} else {
			errs = append(errs, FieldError{p + ".action", fmt.Errorf("unknown action %q (one of %s)", r.Action, strings.Join(actionNames[:], ", "))})
		}
		return errs
	}
	if act == actReplace && r.Value == "" {
		errs = append(errs, FieldError{p + ".value", errors.New("required for action replace")})
	}
	if act != actReplace && r.Value != "" {
		errs = append(errs, FieldError{p + ".value", fmt.Errorf("only used by action replace, not %s", r.Action)})
	}
	if act == actReplace && !utf8.ValidString(r.Value) {
		errs = append(errs, FieldError{p + ".value", errors.New("not valid UTF-8")})
	}
	if r.Keep < 0 {
		errs = append(errs, FieldError{p + ".keep", errors.New("must not be negative")})
	} else if r.Keep != 0 && act != actMask {
		errs = append(errs, FieldError{p + ".keep", fmt.Errorf("only used by action mask, not %s", r.Action)})
	}
	if act == actTruncate && r.MaxLen <= 0 {
		errs = append(errs, FieldError{p + ".max_len", errors.New("required (> 0) for action truncate")})
	} else if act != actTruncate && r.MaxLen != 0 {
		errs = append(errs, FieldError{p + ".max_len", fmt.Errorf("only used by action truncate, not %s", r.Action)})
	}
	if len(r.Detectors) > 0 && act != actScan && act != actFile {
		errs = append(errs, FieldError{p + ".detectors", fmt.Errorf("only used by actions scan and file, not %s", r.Action)})
	}
	for i, d := range r.Detectors {
		if _, ok := detectorMask(d); !ok {
			errs = append(errs, FieldError{fmt.Sprintf("%s.detectors[%d]", p, i), fmt.Errorf("unknown detector %q (known: all, pii, credentials, %s)", d, strings.Join(detectorNames[:], ", "))})
		}
	}
	return errs
}

func detectorMask(name string) (detMask, bool) {
	if m, ok := detectorGroups[name]; ok {
		return m, true
	}
	if d, ok := detectorByName(name); ok {
		return 1 << d, true
	}
	return 0, false
}

// segKind is the kind of one path segment.
type segKind uint8

const (
	segKey  segKind = iota // object key (or array index if the key is a number)
	segEach                // '#': every element of an array
)

type segment struct {
	kind  segKind
	key   string
	index int // >= 0 if key is a non-negative decimal number
}

const maxPathSegments = 32

// parsePath parses the gjson subset documented on Rule.Path.
func parsePath(path string) ([]segment, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	var segs []segment
	var key []byte
	escaped := false // current segment had an escape, so it is a literal key
	flush := func() error {
		if len(key) == 0 && !escaped {
			return fmt.Errorf("path %q: empty segment", path)
		}
		k := string(key)
		switch {
		case k == "#" && !escaped:
			segs = append(segs, segment{kind: segEach})
		default:
			idx := -1
			if n, err := strconv.Atoi(k); err == nil && n >= 0 && !escaped && strconv.Itoa(n) == k {
				idx = n
			}
			segs = append(segs, segment{kind: segKey, key: k, index: idx})
		}
		key = key[:0]
		escaped = false
		return nil
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch c {
		case '\\':
			if i+1 == len(path) {
				return nil, fmt.Errorf("path %q: trailing backslash", path)
			}
			i++
			key = append(key, path[i])
			escaped = true
		case '.':
			if err := flush(); err != nil {
				return nil, err
			}
		case '|':
			return nil, fmt.Errorf("path %q: pipes (|) are not supported", path)
		case '*', '?':
			return nil, fmt.Errorf("path %q: wildcards (%c) are not supported", path, c)
		case '@', '!', '=', '<', '>', '%', '~':
			if len(key) == 0 {
				return nil, fmt.Errorf("path %q: modifiers, literals and queries (%c) are not supported", path, c)
			}
			key = append(key, c)
		case '#':
			if len(key) == 0 && i+1 < len(path) && path[i+1] != '.' {
				return nil, fmt.Errorf("path %q: queries (#...) are not supported; use '#' alone for every array element", path)
			}
			key = append(key, c)
		case '(', ')', '[', ']', '{', '}', '"', ',':
			return nil, fmt.Errorf("path %q: character %q is not supported in a path (escape it with '\\')", path, c)
		default:
			if c < ' ' {
				return nil, fmt.Errorf("path %q: control character", path)
			}
			key = append(key, c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(segs) > maxPathSegments {
		return nil, fmt.Errorf("path %q: more than %d segments", path, maxPathSegments)
	}
	return segs, nil
}
