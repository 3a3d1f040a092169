package consent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unsafe"
)

// SubjectKind says whether a consent record is about a tenant or a user.
type SubjectKind uint8

const (
	// SubjectTenant is a tenant-level record, key "t:<tenant_id>".
	SubjectTenant SubjectKind = iota + 1
	// SubjectUser is a user-level record, key "u:<tenant_id>:<user_id>";
	// the tenant id is empty for tenantless products ("u::<user_id>").
	SubjectUser
)

func (k SubjectKind) String() string {
	switch k {
	case SubjectTenant:
		return "tenant"
	case SubjectUser:
		return "user"
	}
	return fmt.Sprintf("SubjectKind(%d)", uint8(k))
}

// Subject is the decoded form of a consent key. Tenant and User hold the
// ids as they appear in events (percent-decoded).
type Subject struct {
	Kind   SubjectKind
	Tenant string
	User   string // empty for SubjectTenant
}

// Key returns the subject's canonical consent key (see TenantKey, UserKey).
func (s Subject) Key() string {
	if s.Kind == SubjectTenant {
		return TenantKey(s.Tenant)
	}
	return UserKey(s.Tenant, s.User)
}

// MaxKeyLen is the longest consent key the table accepts, in bytes, after
// canonical encoding. Longer keys are reported as malformed and ignored.
const MaxKeyLen = 4096

// ErrMalformedKey is wrapped by every error of ParseKey.
var ErrMalformedKey = errors.New("consent: malformed key")

// TenantKey returns the consent key of a tenant: "t:" followed by the
// percent-encoded id (RFC 3986: every byte but the unreserved characters
// A-Z a-z 0-9 - . _ ~ is written as %XX with upper-case hex digits).
func TenantKey(tenant string) string {
	return string(appendTenantKey(make([]byte, 0, 2+len(tenant)), tenant))
}

// UserKey returns the consent key of a user: "u:<tenant>:<user>" with both
// ids percent-encoded as in TenantKey. tenant is empty for tenantless
// products, which gives "u::<user>".
func UserKey(tenant, user string) string {
	return string(appendUserKey(make([]byte, 0, 3+len(tenant)+len(user)), tenant, user))
}

// AppendUserKey appends UserKey(tenant, user) to dst, in the spirit of
// strconv.Append*: no allocation when dst has room.
func AppendUserKey(dst []byte, tenant, user string) []byte { return appendUserKey(dst, tenant, user) }

func appendTenantKey(dst []byte, tenant string) []byte {
	dst = append(dst, 't', ':')
	return appendEscaped(dst, tenant)
}

func appendUserKey(dst []byte, tenant, user string) []byte {
	dst = append(dst, 'u', ':')
	dst = appendEscaped(dst, tenant)
	dst = append(dst, ':')
	return appendEscaped(dst, user)
}

const upperhex = "0123456789ABCDEF"

var unreservedTab = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			b == '-' || b == '.' || b == '_' || b == '~'
	}
	return t
}()

func unreserved(c byte) bool { return unreservedTab[c] }

// plainID reports whether id consists of unreserved characters only, so
// that it is its own percent-encoding.
func plainID(id string) bool {
	// Four bytes per branch: ids are short, their branches the cost.
	t := (*[256]uint8)(unsafe.Pointer(&unreservedTab))
	for ; len(id) >= 4; id = id[4:] {
		if t[id[0]]&t[id[1]]&t[id[2]]&t[id[3]] == 0 {
			return false
		}
	}
	for i := 0; i < len(id); i++ {
		if t[id[i]] == 0 {
			return false
		}
	}
	return true
}

func appendEscaped(dst []byte, s string) []byte {
	i := 0
	for i < len(s) && unreservedTab[s[i]] {
		i++
	}
	if i == len(s) {
		return append(dst, s...) // the common case: nothing to escape
	}
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkID validates one encoded id and reports whether it is already in
// canonical form (only unreserved bytes and %XX escapes, upper-case, of bytes
// that must be escaped).
func checkID(s string) (canonical bool, err error) {
	canonical = true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return false, fmt.Errorf("truncated escape at byte %d", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return false, fmt.Errorf("invalid escape %q at byte %d", s[i:i+3], i)
			}
			b := hi<<4 | lo
			if unreserved(b) || s[i+1] != upperhex[hi] || s[i+2] != upperhex[lo] {
				canonical = false
			}
			i += 2
		case c == ':':
			return false, fmt.Errorf("unescaped ':' at byte %d", i)
		case !unreserved(c):
			// Lenient: a byte that should have been escaped is taken
			// literally (a record meant for this subject must not be lost).
			canonical = false
		}
	}
	return canonical, nil
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			b = append(b, hi<<4|lo)
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// splitKey checks a key's structure and returns its kind and still-encoded ids.
func splitKey(key string) (kind SubjectKind, tenant, user string, canonical bool, err error) {
	var c1, c2 bool
	switch {
	case strings.HasPrefix(key, "t:"):
		kind, tenant = SubjectTenant, key[2:]
		if tenant == "" {
			return 0, "", "", false, errors.New("empty tenant id")
		}
		if c1, err = checkID(tenant); err != nil {
			return 0, "", "", false, fmt.Errorf("tenant id: %w", err)
		}
		return kind, tenant, "", c1, nil
	case strings.HasPrefix(key, "u:"):
		rest := key[2:]
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return 0, "", "", false, errors.New("user key without ':' between tenant and user id")
		}
		kind, tenant, user = SubjectUser, rest[:i], rest[i+1:]
		if user == "" {
			return 0, "", "", false, errors.New("empty user id")
		}
		if c1, err = checkID(tenant); err != nil {
			return 0, "", "", false, fmt.Errorf("tenant id: %w", err)
		}
		if c2, err = checkID(user); err != nil {
			return 0, "", "", false, fmt.Errorf("user id: %w", err)
		}
		return kind, tenant, user, c1 && c2, nil
	}
	return 0, "", "", false, errors.New(`want "t:<tenant>" or "u:<tenant>:<user>"`)
}

// ParseKey parses a consent key. Escapes are decoded (hex digits in either
// case); bytes that should have been escaped but were not are taken
// literally, so "t:a b" and "t:a%20b" name the same tenant. A ':' inside an
// id, an invalid escape, an empty tenant id in a tenant key, an empty user id
// or an unknown prefix is an error wrapping ErrMalformedKey.
func ParseKey(key string) (Subject, error) {
	kind, tenant, user, _, err := splitKey(key)
	if err != nil {
		return Subject{}, fmt.Errorf("%w %q: %v", ErrMalformedKey, truncateForLog(key), err)
	}
	return Subject{Kind: kind, Tenant: unescape(tenant), User: unescape(user)}, nil
}

// canonicalKey returns the canonical form of a raw record key: raw itself
// when it already is canonical (the common case, no allocation), otherwise
// its re-encoding.
func canonicalKey(raw []byte) ([]byte, SubjectKind, error) {
	kind, tenant, user, canonical, err := splitKey(bytesView(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("%w %q: %v", ErrMalformedKey, truncateForLog(string(raw)), err)
	}
	if !canonical {
		if kind == SubjectTenant {
			raw = appendTenantKey(nil, unescape(tenant))
		} else {
			raw = appendUserKey(nil, unescape(tenant), unescape(user))
		}
	}
	if len(raw) > MaxKeyLen {
		return nil, 0, fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformedKey, len(raw), MaxKeyLen)
	}
	return raw, kind, nil
}

func truncateForLog(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Key hashing. The table hashes a key by its encoded ids rather than by its
// bytes, so that Decide can hash an event's ids in place, without building
// the key, and hash the tenant id once for both of its lookups:
//
//	hash("t:<T>")     = hashID(seed, T)
//	hash("u:<T>:<U>") = hashID(hashID(seed, T), U)
//
// hashID is wyhash (as in the Go runtime's fallback hash): one 64×64→128-bit
// multiply per 16 bytes, good in both the low bits (the index slot) and the
// high bits (the slot's tag). The seed is random per table.
const (
	hashK1 = 0xa0761d6478bd642f
	hashK2 = 0xe7037ed1a0b428db
	hashK3 = 0x8ebc6af09c88c6e3
	hashK4 = 0x589965cc75374cc3
)

func hashMix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func hashID(seed uint64, id string) uint64 {
	n := len(id)
	p := unsafe.Pointer(unsafe.StringData(id))
	seed ^= hashK1
	var a, b uint64
	switch {
	case n == 0:
	case n < 4:
		a = uint64(id[0])<<16 | uint64(id[n>>1])<<8 | uint64(id[n-1])
	case n <= 8:
		a = read4(p, 0)
		b = read4(p, uintptr(n-4))
	case n <= 16:
		a = read8(p, 0)
		b = read8(p, uintptr(n-8))
	default:
		l := uintptr(n)
		for ; l > 16; l -= 16 {
			seed = hashMix(read8(p, 0)^hashK2, read8(p, 8)^seed)
			p = unsafe.Add(p, 16)
		}
		// The last 16 bytes of id, overlapping the ones already mixed.
		a = read8(p, l-16)
		b = read8(p, l-8)
	}
	return hashMix(hashK4^uint64(n), hashMix(a^hashK2, b^seed^hashK3))
}

// read4 and read8 read little-endian words at p+off, which the caller
// guarantees to lie within one string.
func read4(p unsafe.Pointer, off uintptr) uint64 {
	return uint64(binary.LittleEndian.Uint32(unsafe.Slice((*byte)(unsafe.Add(p, off)), 4)))
}

func read8(p unsafe.Pointer, off uintptr) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(p, off)), 8))
}

// keyIDs splits a canonical key into its kind byte ('t' or 'u') and its
// encoded ids. ok is false if key is not of either form.
func keyIDs(key string) (kind byte, tenant, user string, ok bool) {
	if len(key) < 2 || key[1] != ':' {
		return 0, "", "", false
	}
	switch key[0] {
	case 't':
		return 't', key[2:], "", true
	case 'u':
		i := strings.IndexByte(key[2:], ':')
		if i < 0 {
			return 0, "", "", false
		}
		return 'u', key[2 : 2+i], key[3+i:], true
	}
	return 0, "", "", false
}
