package redact

import (
	"errors"
	"fmt"
)

// Stable reasons carried by *Error. The stage uses them verbatim as
// quarantine reasons and metric labels, so they never change meaning.
const (
	ReasonInvalidJSON     = "invalid_json"      // the event is not valid JSON
	ReasonTooDeep         = "too_deep"          // nesting under a scanned value exceeds MaxDepth
	ReasonFileTooLarge    = "file_too_large"    // decoded or decompressed file content exceeds Options.MaxFileBytes
	ReasonBadBase64       = "bad_base64"        // content_b64 is not valid base64
	ReasonBadFileEncoding = "bad_file_encoding" // unknown or corrupt content_encoding
	ReasonInternal        = "internal"          // an invariant failed; the event is not forwarded (fail closed)
)

// MaxDepth bounds the nesting the engine descends into when a scan rule
// targets an object or array.
const MaxDepth = 256

// Error is returned by AppendRedacted for events that cannot be redacted.
// Reason is one of the Reason* constants; Offset is the byte offset in the
// input where the problem was found (-1 if unknown). Errors never include
// payload bytes, so they are safe to log.
type Error struct {
	Reason string
	Offset int
	Err    error // underlying cause, if any (never contains payload bytes)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("redact: %s at offset %d: %v", e.Reason, e.Offset, e.Err)
	}
	return fmt.Sprintf("redact: %s at offset %d", e.Reason, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of an *Error in err's chain, or "" if none.
func ReasonOf(err error) string {
	var re *Error
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func newError(reason string, off int, err error) *Error {
	return &Error{Reason: reason, Offset: off, Err: err}
}

// ErrNoKey is returned by KeyringFromEnv when no pseudonymization key is configured.
var ErrNoKey = errors.New("redact: no pseudonymization key: set ANONPROXY_HMAC_KEY or ANONPROXY_HMAC_KEY_FILE")
