package redact

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tidwall/gjson"
)

// nextTrigger is what scan does to find the trigger at or after i, for
// one start: the bitmap of the whole text where there is a kernel, the
// scalar loop otherwise.
func nextTrigger(tab *[256]uint64, t []byte, i int) int {
	var b trigBits
	if b.fill(tab, t) {
		return nextBit(b.trig, i)
	}
	return scalarNextTrigger(tab, t, i)
}

// nextTriggerScalar is nextTrigger without the kernel.
func nextTriggerScalar(tab *[256]uint64, t []byte, i int) int { return scalarNextTrigger(tab, t, i) }

// TestTriggerKernels checks that every trigger table has an AVX2 kernel
// where the CPU has AVX2, so that the comparisons below exercise it, and
// none elsewhere (no AVX2, another architecture, -tags purego).
func TestTriggerKernels(t *testing.T) {
	for k := range trigTabs {
		if has := trigKernel(&trigTabs[k]) != nil; has != hasAVX2 {
			t.Errorf("table %d: has a kernel %v, the CPU has AVX2 %v", k, has, hasAVX2)
		}
	}
	foreign := trigTabs[len(trigTabs)-1]
	if trigKernel(&foreign) != nil {
		t.Error("trigKernel found a table that is not a trigger table")
	}
}

// checkTriggerPaths compares nextTrigger with nextTriggerScalar at every
// start offset of text, under every trigger table.
func checkTriggerPaths(t *testing.T, text []byte) {
	t.Helper()
	for k := range trigTabs {
		tab := &trigTabs[k]
		for i := 0; i <= len(text); i++ {
			if got, want := nextTrigger(tab, text, i), nextTriggerScalar(tab, text, i); got != want {
				t.Fatalf("table %d, text %q, start %d: nextTrigger = %d, scalar %d", k, text, i, got, want)
			}
		}
	}
}

// checkTriggerBits fills one trigBits per table for text the way scan
// does, over dirty scratch, and compares every position's trigger bit
// with the scalar definition and every secret bit with trigSecret's
// (positions 1 to len-2: the ends are not "ecr"); secretReach over
// random ranges with the byte-wise secretReach.
func checkTriggerBits(t *testing.T, text []byte, r *rand.Rand) {
	t.Helper()
	for k := range trigTabs {
		tab := &trigTabs[k]
		var b trigBits
		b.trig = make([]uint64, 0, len(text)/64+8)
		b.sec = make([]uint64, 0, len(text)/64+8)
		for j := range b.trig[:cap(b.trig)] {
			b.trig[:cap(b.trig)][j], b.sec[:cap(b.sec)][j] = ^uint64(0), ^uint64(0)
		}
		if !b.fill(tab, text) {
			if hasAVX2 && len(text) >= 2 {
				t.Fatalf("table %d: no bitmap for a text of %d bytes", k, len(text))
			}
			continue
		}
		n := len(text)
		for p := 0; p < len(b.trig)*64; p++ {
			got := b.trig[p>>6]>>(p&63)&1 != 0
			want := p == n
			if p < n { // the definition (see trigTabs)
				prev, next := trigAll, trigAll<<42
				if p > 0 {
					prev = tab[text[p-1]]
				}
				if p+1 < n {
					next = tab[text[p+1]]
				}
				want = prev&(tab[text[p]]>>21)&(next>>42)&trigAll != 0
			}
			if got != want {
				t.Fatalf("table %d, text %q: trigger bit of %d is %v, want %v", k, text, p, got, want)
			}
			gotSec := b.sec[p>>6]>>(p&63)&1 != 0
			wantSec := p >= 1 && p+1 < n && tab[text[p-1]]&(tab[text[p]]>>21)&(tab[text[p+1]]>>42)&trigSecret != 0
			if gotSec != wantSec {
				t.Fatalf("table %d, text %q: secret bit of %d is %v, want %v", k, text, p, gotSec, wantSec)
			}
		}
		if tab[' ']&(trigSecret<<21) == 0 && tab['c']&(trigSecret<<21) != 0 {
			for range 20 {
				from := r.IntN(n + 1)
				to := from + r.IntN(n-from+1)
				if got, want := b.secretReach(from, to), secretReach(text, from, to); got != want {
					t.Fatalf("table %d, text %q: secretReach(%d, %d) = %d, byte-wise %d", k, text, from, to, got, want)
				}
			}
		}
	}
}

// TestTriggerPathsLengths: every length up to 200 and every start, for
// texts without triggers (prose), full of them, and random.
func TestTriggerPathsLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	prose := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 5)
	for n := 0; n <= 200; n++ {
		checkTriggerPaths(t, prose[:n])
		dense := make([]byte, n)
		random := make([]byte, n)
		for j := range dense {
			dense[j] = triggerAlphabet[r.IntN(len(triggerAlphabet))]
			random[j] = byte(r.IntN(256))
		}
		checkTriggerPaths(t, dense)
		checkTriggerPaths(t, random)
		checkTriggerBits(t, dense, r)
		checkTriggerBits(t, random, r)
	}
}

// triggerAlphabet is rich in the bytes the trigger kinds look at.
const triggerAlphabet = "aAbBcCeEfFgGhHiIkKoOrRsSxXyYzZ0123456789  ..::@@++((<<[[==--//_%,\n\x80\xff"

// TestTriggerPathsEveryByte puts every byte value at every position of a
// window, within prose (no triggers) and next to every byte of the
// alphabet, in texts long enough for the kernel, so that each byte is
// seen as the previous, the trigger and the next byte in every lane and
// window position, including the last window and the text's ends.
func TestTriggerPathsEveryByte(t *testing.T) {
	base := bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 4)[:100]
	for _, n := range []int{32, 33, 63, 100} {
		for pos := 0; pos < n; pos++ {
			for _, nb := range []byte(" a0A:@") {
				for b := range 256 {
					text := bytes.Clone(base[:n])
					text[pos] = byte(b)
					if pos+1 < n {
						text[pos+1] = nb
					}
					if pos > 0 {
						text[pos-1] = nb
					}
					for k := range trigTabs {
						tab := &trigTabs[k]
						for _, i := range []int{0, 1, max(pos-2, 0), max(pos-1, 0), pos, min(pos+1, n)} {
							if got, want := nextTrigger(tab, text, i), nextTriggerScalar(tab, text, i); got != want {
								t.Fatalf("table %d, text %q, start %d: nextTrigger = %d, scalar %d", k, text, i, got, want)
							}
						}
					}
				}
			}
		}
	}
	// Every pair of bytes at a few positions, with the rest prose.
	for _, pos := range []int{0, 15, 16, 30, 31, 46, 62} {
		text := bytes.Clone(base[:64])
		for b := range 256 {
			for c := range 256 {
				text[pos], text[pos+1] = byte(b), byte(c)
				for k := range trigTabs {
					tab := &trigTabs[k]
					if got, want := nextTrigger(tab, text, 0), nextTriggerScalar(tab, text, 0); got != want {
						t.Fatalf("table %d, text %q: nextTrigger = %d, scalar %d", k, text, got, want)
					}
				}
			}
		}
	}
}

// TestTriggerPathsSecret puts "ecr" in each of its eight cases, and near
// misses, at every position of texts long enough for the kernel, which
// finds trigSecret with comparisons of its own rather than the planes.
func TestTriggerPathsSecret(t *testing.T) {
	base := bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 4)[:100]
	var words []string
	for m := range 8 {
		w := []byte("ecr")
		for j := range w {
			if m>>j&1 != 0 {
				w[j] -= 'a' - 'A'
			}
		}
		words = append(words, string(w))
	}
	words = append(words, "ec", "cr", "exr", "ecx", "xcr", "e\xc3r", "\xe5\xe3\xf2", "EcRet")
	for _, n := range []int{32, 33, 63, 100} {
		for pos := 0; pos < n; pos++ {
			for _, w := range words {
				text := bytes.Clone(base[:n])
				copy(text[pos:], w)
				for k := range trigTabs {
					tab := &trigTabs[k]
					for _, i := range []int{0, max(pos-1, 0), pos, min(pos+1, n)} {
						if got, want := nextTrigger(tab, text, i), nextTriggerScalar(tab, text, i); got != want {
							t.Fatalf("table %d, text %q, start %d: nextTrigger = %d, scalar %d", k, text, i, got, want)
						}
					}
				}
			}
		}
	}
}

// TestTriggerPathsRandom: long random texts from the alphabet (at every
// start), with sparse triggers (prose with a few alphabet bytes) too.
func TestTriggerPathsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		text := make([]byte, 200+r.IntN(1000))
		sparse := r.IntN(2) == 0
		for j := range text {
			switch {
			case sparse && r.IntN(40) != 0:
				text[j] = "etaoin shrdlu "[r.IntN(14)]
			case r.IntN(8) == 0:
				text[j] = byte(r.IntN(256))
			default:
				text[j] = triggerAlphabet[r.IntN(len(triggerAlphabet))]
			}
		}
		checkTriggerPaths(t, text)
		checkTriggerBits(t, text, r)
	}
}

// TestTriggerPathsCorpus: the texts of the chat bench corpus.
func TestTriggerPathsCorpus(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	b, err := os.ReadFile("testdata/bench/chat.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		text := []byte(gjson.GetBytes(line, "text").Str)
		checkTriggerPaths(t, text)
		checkTriggerBits(t, text, r)
	}
}
