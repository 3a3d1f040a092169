package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// nextTriggerRef is nextTrigger before the lane-rotated tables (see
// trigRot): eight positions per iteration with shifts. It is the
// reference the fast path must agree with everywhere.
func nextTriggerRef(tab *[256]uint64, t []byte, i int) int {
	n := len(t)
	prev := trigAll // the start of the text allows every kind
	if i > 0 {
		prev = tab[t[i-1]]
	}
	// Eight positions per iteration; the ninth byte is their lookahead.
	for ; i+9 <= n; i += 8 {
		b := (*[9]byte)(t[i : i+9])
		e0, e1, e2, e3 := tab[b[0]], tab[b[1]], tab[b[2]], tab[b[3]]
		e4, e5, e6, e7, e8 := tab[b[4]], tab[b[5]], tab[b[6]], tab[b[7]], tab[b[8]]
		x := prev&(e0>>21)&(e1>>42) | e0&(e1>>21)&(e2>>42) | e1&(e2>>21)&(e3>>42) | e2&(e3>>21)&(e4>>42) |
			e3&(e4>>21)&(e5>>42) | e4&(e5>>21)&(e6>>42) | e5&(e6>>21)&(e7>>42) | e6&(e7>>21)&(e8>>42)
		if x&trigAll != 0 {
			break
		}
		prev = e7
	}
	for ; i < n; i++ {
		e := tab[t[i]]
		next := trigAll << 42 // the end of the text allows every kind
		if i+1 < n {
			next = tab[t[i+1]]
		}
		if prev&(e>>21)&(next>>42)&trigAll != 0 {
			return i
		}
		prev = e
	}
	return n
}

// nextTriggerTables are the tables nextTrigger is checked with: the eight
// trigger tables, and a copy of the richest one, which is not found by
// rotations and so takes the one-position-at-a-time path.
func nextTriggerTables() []*[256]uint64 {
	var tabs []*[256]uint64
	for k := range trigTabs {
		tabs = append(tabs, &trigTabs[k])
	}
	foreign := trigTabs[len(trigTabs)-1]
	return append(tabs, &foreign)
}

// checkNextTrigger compares the trigger bitmap (trigBits, where the CPU
// has AVX2) and scalarNextTrigger with nextTriggerRef under every
// table, at every start offset of a text up to 1 KB and at every word
// boundary (where scan starts it) of a longer one. A start whose answer is
// 512 bytes or more away (in a base64 run under the PII table, say) costs
// the whole distance, so only every 61st of those is checked. The reference answers come
// from one forward sweep: every start in (a, b] has b =
// nextTriggerRef(a+1) as its answer.
func checkNextTrigger(t *testing.T, text []byte, want []int) []int {
	t.Helper()
	for k, tab := range nextTriggerTables() {
		want = want[:0]
		for i := 0; i <= len(text); {
			a := nextTriggerRef(tab, text, i)
			for ; i <= a; i++ {
				want = append(want, a)
			}
		}
		// The AVX2 path (where there is one) at every start: the
		// bitmap is computed once for the text.
		var b trigBits
		if b.fill(tab, text) {
			for i, w := range want {
				if got := nextBit(b.trig, i); got != w {
					t.Fatalf("table %d, text %q, start %d: trigBits = %d, reference %d", k, text, i, got, w)
				}
			}
		}
		for i, w := range want {
			if len(text) > 1024 && midWord(text, i) || w-i >= 512 && i%61 != 0 {
				continue
			}
			if got := scalarNextTrigger(tab, text, i); got != w {
				t.Fatalf("table %d, text %q, start %d: scalarNextTrigger = %d, reference %d", k, text, i, got, w)
			}
		}
	}
	return want
}

// TestNextTriggerMatchesReference runs checkNextTrigger on every string of
// the bench corpora (and the decoded base64 ones) and on random texts
// built from the bytes the trigger kinds look at.
func TestNextTriggerMatchesReference(t *testing.T) {
	files, err := filepath.Glob("testdata/bench/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatal("no bench corpora", err)
	}
	var texts [][]byte
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			texts = append(texts, []byte(v))
			if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) > 0 {
				texts = append(texts, b)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var v any
			if err := json.Unmarshal(line, &v); err != nil {
				t.Fatal(f, err)
			}
			walk(v)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aAbBeEfFgGhHiIkKoOrRsSxXyYzZ0123456789  ..::@@++((<<[[==--//_%,\n\x80\xff"
	for range 3000 {
		text := make([]byte, r.IntN(300))
		for j := range text {
			if r.IntN(8) == 0 {
				text[j] = byte(r.IntN(256))
			} else {
				text[j] = alphabet[r.IntN(len(alphabet))]
			}
		}
		texts = append(texts, text)
	}
	var want []int
	for _, text := range texts {
		want = checkNextTrigger(t, text, want)
	}
	t.Logf("%d texts, %d bytes", len(texts), func() (n int) {
		for _, x := range texts {
			n += len(x)
		}
		return n
	}())
}

// TestTrigRotLanes checks the lane arithmetic nextTrigger relies on, for
// every table and every triple of byte classes (bytes with equal entries
// behave alike): the product of the three entries of consecutive
// positions, each from the table for its position, has in the position's
// lane exactly the reference trigger bits.
func TestTrigRotLanes(t *testing.T) {
	for k := range trigTabs {
		tab := &trigTabs[k]
		rot := rotations(tab)
		if rot == nil {
			t.Fatalf("table %d: no rotations", k)
		}
		// lanes[l] is the table whose entries have C in lane l.
		lanes := [3]*[256]uint64{&rot[0], tab, &rot[1]}
		var reps []int // one byte per distinct entry
		seen := map[uint64]bool{}
		for c, e := range tab {
			if !seen[e] {
				seen[e] = true
				reps = append(reps, c)
			}
		}
		for _, p := range reps {
			for _, c := range reps {
				for _, n := range reps {
					want := tab[p] & (tab[c] >> 21) & (tab[n] >> 42) & trigAll
					// Position j has its result in lane l = -j mod 3; j-1
					// uses lane l+1 and j+1 lane l-1.
					for l := range 3 {
						v := lanes[(l+1)%3][p] & lanes[l][c] & lanes[(l+2)%3][n]
						if got := v >> (21 * l) & trigAll; got != want {
							t.Fatalf("table %d, lane %d, bytes %q: %#x, want %#x", k, l, []byte{byte(p), byte(c), byte(n)}, got, want)
						}
					}
				}
			}
		}
	}
	if rotations(new([256]uint64)) != nil {
		t.Fatal("rotations found a table that is not a trigger table")
	}
}

// FuzzNextTrigger compares nextTrigger with nextTriggerRef for arbitrary
// text and start offset under every table.
func FuzzNextTrigger(f *testing.F) {
	for _, s := range []string{
		"", "a", "the quick brown fox jumps over the lazy dog, ey",
		"mail a.b+c@example.com now", "call +1 (415) 555-2671 or 4111 1111 1111 1111",
		"aws wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ghp_x xoxb-1 sk_live_x eyJhbGciOi",
		"peer [2001:db8::1]:443 fe80::1 https://x.io/?token=abc <@U2> -----BEGIN KEY",
		"GB82WEST12345698765432 AKIAIOSFODNN7EXAMPLE AIzaSyA",
	} {
		f.Add([]byte(s), uint(0))
		f.Add([]byte(s), uint(len(s)/2))
	}
	tabs := nextTriggerTables()
	f.Fuzz(func(t *testing.T, text []byte, start uint) {
		i := int(start % uint(len(text)+1))
		for k, tab := range tabs {
			if got, want := nextTrigger(tab, text, i), nextTriggerRef(tab, text, i); got != want {
				t.Fatalf("table %d, text %q, start %d: nextTrigger = %d, reference %d", k, text, i, got, want)
			}
		}
	})
}
