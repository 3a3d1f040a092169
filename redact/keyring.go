package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"os"
	"strings"
)

// Environment variables read by KeyringFromEnv.
const (
	EnvKey     = "ANONPROXY_HMAC_KEY"
	EnvKeyFile = "ANONPROXY_HMAC_KEY_FILE"
	EnvKeyID   = "ANONPROXY_HMAC_KEY_ID"
)

// DefaultKeyID is the id of a key given without one.
const DefaultKeyID = "k1"

// MinKeyBytes is the minimum length of a pseudonymization secret.
const MinKeyBytes = 16

// pseudonymHashBytes HMAC bytes are kept: 128 bits, 22 base64url characters.
const pseudonymHashBytes = 16

// Keyring holds the HMAC-SHA256 pseudonymization keys. The current key
// produces every pseudonym; the others stay available so pseudonyms made
// before a rotation can be recomputed (Pseudonym with that id) and mapped to
// new ones. A Keyring is immutable and safe for concurrent use. It never
// prints its secrets.
type Keyring struct {
	current string
	keys    map[string][]byte
	order   []string
}

// NewKeyring returns a keyring with the given keys (id -> secret) whose
// current key is current. Ids are 1-16 characters [A-Za-z0-9]; secrets are
// at least MinKeyBytes bytes.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	k := &Keyring{current: current, keys: make(map[string][]byte, len(keys))}
	for id, secret := range keys {
		if err := checkKey(id, secret); err != nil {
			return nil, err
		}
		k.keys[id] = append([]byte(nil), secret...)
		k.order = append(k.order, id)
	}
	if _, ok := k.keys[current]; !ok {
		return nil, fmt.Errorf("redact: current key id %q is not in the keyring", current)
	}
	return k, nil
}

func checkKey(id string, secret []byte) error {
	if id == "" || len(id) > 16 {
		return fmt.Errorf("redact: key id %q: want 1-16 characters [A-Za-z0-9]", id)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return fmt.Errorf("redact: key id %q: want 1-16 characters [A-Za-z0-9]", id)
		}
	}
	if len(secret) < MinKeyBytes {
		return fmt.Errorf("redact: key %q: secret shorter than %d bytes", id, MinKeyBytes)
	}
	return nil
}

// ParseKeyring parses the key format documented in the package doc: one
// key per line, "id:secret" or a bare secret (id DefaultKeyID); blank
// lines and lines starting with '#' are ignored. The current key is
// currentID if not empty, else the last key in text (append new keys at
// the end to rotate).
func ParseKeyring(text, currentID string) (*Keyring, error) {
	keys := map[string][]byte{}
	last := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		id, secret := DefaultKeyID, line
		if i := strings.IndexByte(line, ':'); i > 0 && i <= 16 && isKeyID(line[:i]) {
			id, secret = line[:i], line[i+1:]
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("redact: key line %d: duplicate key id %q", n+1, id)
		}
		if err := checkKey(id, []byte(secret)); err != nil {
			return nil, fmt.Errorf("redact: key line %d: %w", n+1, err)
		}
		keys[id] = []byte(secret)
		last = id
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	if currentID == "" {
		currentID = last
	}
	return NewKeyring(currentID, keys)
}

func isKeyID(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return s != ""
}

// KeyringFromEnv reads the keys from ANONPROXY_HMAC_KEY (the secret, or
// "id:secret") or, if that is unset, from the file named by
// ANONPROXY_HMAC_KEY_FILE (see ParseKeyring). ANONPROXY_HMAC_KEY_ID selects
// the current key; by default it is the last one given. Without a key it
// returns ErrNoKey.
func KeyringFromEnv() (*Keyring, error) {
	return keyringFrom(os.Getenv, os.ReadFile)
}

func keyringFrom(getenv func(string) string, readFile func(string) ([]byte, error)) (*Keyring, error) {
	cur := getenv(EnvKeyID)
	if v := getenv(EnvKey); v != "" {
		return ParseKeyring(v, cur)
	}
	if f := getenv(EnvKeyFile); f != "" {
		b, err := readFile(f)
		if err != nil {
			return nil, fmt.Errorf("redact: read %s: %w", EnvKeyFile, err)
		}
		return ParseKeyring(string(b), cur)
	}
	return nil, ErrNoKey
}

// CurrentID returns the id of the key that produces pseudonyms.
func (k *Keyring) CurrentID() string { return k.current }

// IDs returns the key ids in the keyring.
func (k *Keyring) IDs() []string { return append([]string(nil), k.order...) }

// String never reveals secrets.
func (k *Keyring) String() string {
	return fmt.Sprintf("redact.Keyring{current: %q, keys: %d}", k.current, len(k.keys))
}

// Pseudonym returns the pseudonym of value under key keyID ("" = current),
// exactly as the engine writes it (without JSON quoting). It is meant for
// tools (re-keying, lookups by an authorised operator), not the hot path.
func (k *Keyring) Pseudonym(keyID, value string) (string, error) {
	if keyID == "" {
		keyID = k.current
	}
	secret, ok := k.keys[keyID]
	if !ok {
		return "", fmt.Errorf("redact: unknown key id %q", keyID)
	}
	h := hmac.New(sha256.New, secret)
	return string(appendPseudonym(nil, h, make([]byte, 0, sha256.Size), keyID, []byte(value))), nil
}

func (k *Keyring) newHash() hash.Hash { return hmac.New(sha256.New, k.keys[k.current]) }

// appendPseudonym appends "ps_<id>_<base64url(HMAC(value)[:16])>". h is a
// keyed HMAC owned by the caller; it is reset here. sum is caller-owned
// scratch with capacity sha256.Size, so nothing escapes to the heap.
func appendPseudonym(dst []byte, h hash.Hash, sum []byte, id string, value []byte) []byte {
	h.Reset()
	h.Write(value)
	s := h.Sum(sum[:0])
	dst = append(dst, "ps_"...)
	dst = append(dst, id...)
	dst = append(dst, '_')
	return base64.RawURLEncoding.AppendEncode(dst, s[:pseudonymHashBytes])
}
