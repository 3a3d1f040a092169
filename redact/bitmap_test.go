package redact

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// bitmapRef is specialBitmap byte by byte.
func bitmapRef(s string, high bool) []uint64 {
	bm := make([]uint64, len(s)/64+2) // the last word stays zero
	for j := 0; j < len(s); j++ {
		if c := s[j]; c == '"' || c == '\\' || c < 0x20 || high && c >= 0x80 {
			bm[j/64] |= 1 << (j % 64)
		}
	}
	bm[len(s)/64] |= 1 << (len(s) % 64)
	return bm
}

// TestSpecialBitmap checks the bitmap kernel (AVX2 where the CPU has it)
// and the portable one against the byte-by-byte definition: every length
// up to 300 at every alignment, every byte value at every position, and
// random bytes, in both modes.
func TestSpecialBitmap(t *testing.T) {
	var scratch []uint64
	check := func(s string) {
		t.Helper()
		for _, high := range []bool{false, true} {
			want := bitmapRef(s, high)
			// Dirty scratch: the result must not depend on what it held.
			for k := range scratch[:cap(scratch)] {
				scratch[:cap(scratch)][k] = ^uint64(0)
			}
			scratch = specialBitmap(scratch, s, high)
			if !reflect.DeepEqual(scratch, want) {
				t.Fatalf("specialBitmap(%q, %v) = %x, want %x", s, high, scratch, want)
			}
			got := make([]uint64, len(s)/64+2)
			for k := range got {
				got[k] = ^uint64(0)
			}
			fillSpecialBitmapGo(got, s, high)
			got[len(got)-2] = got[len(got)-2]&(1<<(len(s)%64)-1) | 1<<(len(s)%64)
			got[len(got)-1] = 0
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fillSpecialBitmapGo(%q, %v) = %x, want %x", s, high, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 300+64)
	for i := range buf {
		buf[i] = byte(0x20 + r.IntN(0x60))
		if r.IntN(8) == 0 {
			buf[i] = byte(r.IntN(256))
		}
	}
	for n := 0; n <= 300; n++ {
		for off := 0; off < 64; off++ {
			check(string(buf[off : off+n]))
		}
	}
	for _, n := range []int{64, 65, 128} {
		plain := []byte(strings.Repeat("a", n))
		for p := 0; p < n; p++ {
			for c := 0; c < 256; c++ {
				b := append([]byte(nil), plain...)
				b[p] = byte(c)
				check(string(b))
			}
		}
	}
	for range 20000 {
		b := make([]byte, r.IntN(1000))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(2) == 0 {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		check(string(b))
	}
	t.Logf("AVX2 kernel: %v", hasAVX2)
}

// checkResult is everything a check reports.
type checkResult struct {
	ok, badUTF8, tooDeep bool
	root                 []member
}

// runCheck runs the checker on s in the given mode, with or without the
// bitmap.
func runCheck(s string, hi uint64, depth int, bitmap bool) checkResult {
	c := checker{hi: hi}
	if bitmap {
		c.bm = specialBitmap(nil, s, hi != 0)
	}
	var root []member
	// The members recorded before an error are not part of the
	// contract, but they are compared too: they are the checker's state.
	ok := c.document(s, depth, &root)
	return checkResult{ok, c.badUTF8, c.tooDeep, root}
}

// compareBitmapCheck fails if the bitmap path's results differ from the
// eight-bytes-at-a-time path's on s, in either UTF-8 mode.
func compareBitmapCheck(t testing.TB, s string) {
	t.Helper()
	for _, mode := range []struct {
		hi    uint64
		depth int
	}{{0, noDepthLimit}, {msb, MaxDepth}, {0, 3}, {msb, 3}} {
		want := runCheck(s, mode.hi, mode.depth, false)
		got := runCheck(s, mode.hi, mode.depth, true)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("hi=%x depth=%d: bitmap check of %q = %+v, want %+v", mode.hi, mode.depth, s, got, want)
		}
	}
}

// fuzzSeedInputs returns the seed corpus files of the fuzz targets.
func fuzzSeedInputs(t testing.TB) []string {
	files, _ := filepath.Glob("testdata/fuzz/*/*")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			l = strings.TrimSpace(l)
			if i := strings.IndexByte(l, '('); i > 0 && strings.HasSuffix(l, ")") {
				if v, err := strconv.Unquote(l[i+1 : len(l)-1]); err == nil {
					out = append(out, v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no fuzz seeds")
	}
	return out
}

// randJSON writes a random JSON value, with strings of every kind of
// content (escapes, UTF-8, long runs).
func randJSON(r *rand.Rand, b *strings.Builder, depth int) {
	switch k := r.IntN(10); {
	case k < 2 && depth > 0:
		b.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			randString(r, b)
			b.WriteByte(':')
			if r.IntN(4) == 0 {
				b.WriteString(" ")
			}
			randJSON(r, b, depth-1)
		}
		b.WriteByte('}')
	case k < 4 && depth > 0:
		b.WriteByte('[')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(", "[:1+r.IntN(2)])
			}
			randJSON(r, b, depth-1)
		}
		b.WriteByte(']')
	case k < 8:
		randString(r, b)
	default:
		b.WriteString([]string{"1", "-0.5e3", "true", "false", "null", "123456789"}[r.IntN(6)])
	}
}

func randString(r *rand.Rand, b *strings.Builder) {
	b.WriteByte('"')
	n := r.IntN(8)
	if r.IntN(4) == 0 {
		n = r.IntN(200)
	}
	for range n {
		switch k := r.IntN(40); {
		case k == 0:
			b.WriteString([]string{`\"`, `\\`, `\/`, `\n`, `\u00e9`, `\ud83d\ude00`, `\t`}[r.IntN(7)])
		case k == 1:
			b.WriteString([]string{"é", "€", "😀", "\u2028"}[r.IntN(4)])
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	b.WriteByte('"')
}

// mutate returns s with a few random bit flips, special bytes, deletions
// or a truncation.
func mutate(r *rand.Rand, s string) string {
	b := []byte(s)
	for range 1 + r.IntN(3) {
		if len(b) == 0 {
			break
		}
		p := r.IntN(len(b))
		switch r.IntN(5) {
		case 0:
			b[p] ^= 1 << r.IntN(8)
		case 1:
			b[p] = "\"\\\x00\x1f\x80\xff\xc3{}[],:"[r.IntN(13)]
		case 2:
			b = append(b[:p], b[p+1:]...)
		case 3:
			b = b[:p]
		case 4:
			b = append(b[:p], append([]byte{"\"\\\xe2\x82"[r.IntN(4)]}, b[p:]...)...)
		}
	}
	return string(b)
}

// TestBitmapCheckMatches checks that the validator reports exactly the
// same with and without the bitmap: results, reasons and the recorded
// root members, on the bench corpora, the fuzz seeds, random JSON and
// random mutations of all of them.
func TestBitmapCheckMatches(t *testing.T) {
	var inputs []string
	for _, name := range []string{"chat", "files", "messages"} {
		for _, ev := range benchEvents(t, name) {
			inputs = append(inputs, string(ev))
		}
	}
	inputs = append(inputs, validSeeds...)
	inputs = append(inputs, eventSeeds...)
	inputs = append(inputs, fuzzSeedInputs(t)...)
	r := rand.New(rand.NewPCG(9, 10))
	for range 3000 {
		var b strings.Builder
		if r.IntN(2) == 0 {
			b.WriteByte('{')
			randString(r, &b)
			b.WriteByte(':')
			randJSON(r, &b, 4)
			b.WriteByte('}')
		} else {
			randJSON(r, &b, 5)
		}
		inputs = append(inputs, b.String())
	}
	n := len(inputs)
	for _, s := range inputs {
		compareBitmapCheck(t, s)
	}
	for k := range 30000 {
		s := inputs[k%n]
		if len(s) > 4096 && k%8 != 0 {
			continue // keep it quick: mutate fewer of the big ones
		}
		compareBitmapCheck(t, mutate(r, s))
	}
	for range 2000 {
		s := inputs[r.IntN(n)]
		compareBitmapCheck(t, s[:r.IntN(len(s)+1)])
	}
}

// TestBitmapToggle runs AppendRedacted and Event.Check with useBitmap on
// and off over the bench corpora and mutations of them: same results.
func TestBitmapToggle(t *testing.T) {
	defer func(v bool) { useBitmap = v }(useBitmap)
	e := testEngine(t, fuzzCfg, Options{MaxFileBytes: 1 << 16})
	r := rand.New(rand.NewPCG(11, 12))
	var inputs []string
	for _, name := range []string{"chat", "files", "messages"} {
		for _, ev := range benchEvents(t, name) {
			inputs = append(inputs, string(ev))
		}
	}
	inputs = append(inputs, fuzzSeedInputs(t)...)
	for range 1000 {
		var b strings.Builder
		for k, key := range []string{"text", "meta", "to", "file", "attachments", "user_id"} {
			b.WriteString(`,"`[1-min(k, 1):] + key + `":`)
			randJSON(r, &b, 4)
		}
		inputs = append(inputs, "{"+b.String()+"}")
	}
	for k := range 4000 {
		inputs = append(inputs, mutate(r, inputs[k%len(inputs)]))
	}
	_, engines := loadExample(t)
	run := func(s string) string {
		var b strings.Builder
		for _, e := range []*Engine{e, engines["chat"], engines["files"], engines["messages"]} {
			var ev Event
			cerr := ev.Check([]byte(s))
			for _, lv := range []Level{LevelAllow, LevelAnonymized} {
				out, err := e.AppendRedacted(nil, []byte(s), lv, nil)
				fmt.Fprintf(&b, "%q %v\n", out, err)
				if cerr == nil {
					out, err = e.AppendRedactedEvent(nil, &ev, lv, nil)
					fmt.Fprintf(&b, "%q %v\n", out, err)
				}
			}
			fmt.Fprintf(&b, "%v %v\n", cerr, ev.root)
		}
		return b.String()
	}
	for _, s := range inputs {
		useBitmap = false
		want := run(s)
		useBitmap = true
		if got := run(s); got != want {
			t.Fatalf("useBitmap on: %s\noff: %s\nfor %q", got, want, s)
		}
	}
}

// TestBitmapValueEnd checks the walk's bitmap string and value ends
// against the byte-wise ones at every value start of valid documents
// (strings, found outside other strings, and containers), with bitmaps
// of both modes.
func TestBitmapValueEnd(t *testing.T) {
	var docs []string
	for _, name := range []string{"chat", "files", "messages"} {
		for _, ev := range benchEvents(t, name) {
			docs = append(docs, string(ev))
		}
	}
	docs = append(docs, validSeeds...)
	docs = append(docs, eventSeeds...)
	docs = append(docs, fuzzSeedInputs(t)...)
	r := rand.New(rand.NewPCG(13, 14))
	for range 3000 {
		var b strings.Builder
		randJSON(r, &b, 5)
		docs = append(docs, b.String())
	}
	n, fallbacks := 0, 0
	for _, s := range docs {
		if !validJSON(s) {
			continue
		}
		n++
		for _, high := range []bool{false, true} {
			bm := specialBitmap(nil, s, high)
			for i, in := 0, false; i < len(s); i++ {
				c := s[i]
				switch {
				case in && c == '\\':
					i++
					continue
				case in && c == '"':
					in = false
					continue
				case in || c != '"' && c != '{' && c != '[':
					continue
				}
				if got, want := valueEndBM(bm, s, i), valueEnd(s, i); got != want {
					t.Fatalf("valueEndBM(%q, %d) = %d, want %d", s, i, got, want)
				}
				if c == '"' {
					in = true
					w := work{sbm: bm}
					ge, gesc := w.keyEnd(s, i)
					we, wesc := keyEnd(s, i)
					if ge != we || gesc != wesc || w.stringEnd(s, i) != we || stringEnd(s, i) != we {
						t.Fatalf("bitmap keyEnd(%q, %d) = %d, %v; want %d, %v", s, i, ge, gesc, we, wesc)
					}
					if e, esc, ok := bitmapStringEnd(bm, s, i); ok && (e != we || esc != wesc) {
						t.Fatalf("bitmapStringEnd(%q, %d) = %d, %v; want %d, %v", s, i, e, esc, we, wesc)
					} else if !ok {
						fallbacks++
					}
				}
			}
		}
	}
	if n < 3000 || fallbacks == 0 {
		t.Fatalf("only %d valid documents, %d strings with non-ASCII bytes", n, fallbacks)
	}
}
