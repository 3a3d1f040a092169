package redact

import (
	"encoding/base64"
	"hash/maphash"
)

// Pseudonym cache. The same ids recur event after event (a user's id, a
// channel, mentions of the same people), and an HMAC costs two SHA-256
// blocks plus its bookkeeping: about as much as scanning a short message.
// Each pooled work keeps a small set-associative cache from id to the
// base64url hash part of its pseudonym under the Engine's current key
// (immutable, so entries never go stale). A hit compares the whole id, so
// the cache changes no output; it holds only what the events themselves
// held, in the Engine's idle scratch (see workPool). It is private to its
// work, so no locking.

const (
	psMaxID   = 40                                       // longer ids bypass the cache
	psHashLen = (pseudonymHashBytes*8 + 5) / 6           // base64url characters, no padding
	psSets    = 256                                      // power of two
	psWays    = 4                                        // most recently inserted first
	_         = uint(64 - (1 + psMaxID + psHashLen + 1)) // an entry fits in 64 bytes
)

type psEntry struct {
	n    uint8 // id length + 1; 0 = empty
	id   [psMaxID]byte
	hash [psHashLen]byte
}

type psCache struct {
	seed maphash.Seed
	sets [psSets][psWays]psEntry
}

func newPSCache() *psCache { return &psCache{seed: maphash.MakeSeed()} }

// appendPseudonym is appendPseudonym with the current key, through the
// cache.
func (w *work) appendPseudonym(dst, id []byte) []byte {
	c := w.ps
	if c == nil || len(id) > psMaxID {
		return appendPseudonym(dst, w.hm, w.sum, w.e.keys.current, id)
	}
	set := &c.sets[maphash.Bytes(c.seed, id)&(psSets-1)]
	n := uint8(len(id) + 1)
	dst = append(dst, "ps_"...)
	dst = append(dst, w.e.keys.current...)
	dst = append(dst, '_')
	for k := range set {
		if e := &set[k]; e.n == n && string(e.id[:len(id)]) == string(id) {
			return append(dst, e.hash[:]...)
		}
	}
	w.hm.Reset()
	w.hm.Write(id)
	sum := w.hm.Sum(w.sum[:0])
	copy(set[1:], set[:psWays-1])
	e := &set[0]
	e.n = n
	copy(e.id[:], id)
	base64.RawURLEncoding.Encode(e.hash[:], sum[:pseudonymHashBytes])
	return append(dst, e.hash[:]...)
}
