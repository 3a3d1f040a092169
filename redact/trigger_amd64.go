//go:build amd64 && !purego

package redact

import (
	"math/bits"
	"slices"
	"unsafe"
)

// The AVX2 path of nextTrigger: 30 positions per 32-byte window, with
// exactly the result of the scalar loop.
//
// A window is 32 bytes; its positions 1 to 30 have both neighbours in it.
// Per byte, the kernel looks up a class byte (see trigKern.lut), and per
// plane (two of them) three bytes from the plane's part of the class
// byte: the boxes (below) the byte allows as the previous byte, as the
// trigger byte and as the next byte. With the first vector shifted one
// byte up and the last one down, a position triggers where the AND of
// the three has a bit set in either plane.
//
// The planes do not hold the trigger kinds of the table but boxes: sets
// P x C x N of (previous, current, next) bytes, all of whose triples
// trigger, which together cover every triple that triggers (see
// trigBoxes). A kind is such a box; boxes that share two of their three
// sets merge into one, and a box can grow where the other kinds already
// trigger, which lets more of them merge. The richest table needs 16
// boxes (it has 19 kinds): 8 whose trigger bytes are letters or digits
// and 8 for punctuation, one plane each. Each plane distinguishes at most
// 16 byte classes, so that one VPSHUFB looks up each of the three bytes.
// newTrigKern checks the result against the table for every triple of
// bytes; a table it cannot represent (none of trigTabs) has no kernel.

// trigKern is the kernel's data for one trigger table. The 32-byte rows
// hold a 16-entry VPSHUFB table twice, once per 128-bit lane.
type trigKern struct {
	// lut[h-2][l] is, for the byte 16h+l (h = 2..7), the class byte (the
	// byte's class in plane 0 in bits 0-3, in plane 1 in bits 4-7),
	// XORed with that of the byte 16(h-1)+l for h > 2: the kernel XORs
	// the lookups of every h up to the byte's high nibble. The bytes
	// below 0x20 and from 0x80 have class byte 0.
	lut [6][32]byte
	// plane[3π], plane[3π+1], plane[3π+2] give, by class in plane π, the
	// boxes of the plane whose P, C and N sets hold the class's bytes.
	plane [6][32]byte
	// secret is all ones if the table has the trigSecret kind: the
	// kernel finds "ecr" in any case with comparisons of its own, as it
	// would take the planes more byte classes than they have.
	secret [32]byte
}

// trigFillAVX2 is in trigger_amd64.s.
//
// It ORs into the bitmaps at trig and sec (each of at least n/64+2 words)
// bit j for each position j from 1 to n-2 of p[:n] (n must be at least
// 32) that triggers under k (with the bytes before and after it as its
// neighbours), and for each where trigSecret does.
//
//go:noescape
func trigFillAVX2(k *trigKern, p *byte, n int, trig, sec *uint64)

// trigKerns[k] is the kernel data for trigTabs[k] (nil: use the scalar
// loop). Making them takes about 0.2 ms, spent only where the CPU has
// AVX2.
var trigKerns = func() (ks [len(trigTabs)]*trigKern) {
	if !hasAVX2 {
		return ks
	}
	for k := range trigTabs {
		ks[k] = newTrigKern(&trigTabs[k])
	}
	return ks
}()

// trigKernel returns the kernel data for tab, or nil if tab is not one of
// trigTabs or has no kernel. Like rotations, it finds tab by its address.
func trigKernel(tab *[256]uint64) *trigKern {
	k := (uintptr(unsafe.Pointer(tab)) - uintptr(unsafe.Pointer(&trigTabs))) / unsafe.Sizeof(trigTabs[0])
	if k < uintptr(len(trigTabs)) && tab == &trigTabs[k] {
		return trigKerns[k]
	}
	return nil
}

// trigBox is a set of (previous, current, next) byte triples: each field
// is a set of byte classes (bit a: the class numbered a).
type trigBox struct{ p, c, n uint64 }

// trigBoxes returns the byte classes of tab (cls[b]: the class of byte b;
// bytes with equal entries share a class), the triples of classes that
// trigger (rel[a*nc+b]: the classes c for which (a, b, c) does) and boxes
// whose union is exactly those triples, or ok = false if tab has more
// than 64 classes.
func trigBoxes(tab *[256]uint64) (cls [256]uint8, nc int, rel []uint64, boxes []trigBox, ok bool) {
	var reps []uint64
	for b, e := range tab {
		a := 0
		for a < len(reps) && reps[a] != e {
			a++
		}
		if a == len(reps) {
			if a == 64 {
				return cls, 0, nil, nil, false
			}
			reps = append(reps, e)
		}
		cls[b] = uint8(a)
	}
	nc = len(reps)
	all := ^uint64(0) >> (64 - nc)
	// rel[a*nc+b] is the set of classes c for which (a, b, c) triggers.
	rel = make([]uint64, nc*nc)
	var next [21]uint64 // next[g]: the classes that allow kind g as the next byte
	for c, e := range reps {
		for g := range 21 {
			next[g] |= (e >> (42 + g) & 1) << c
		}
	}
	for a := range nc {
		for b := range nc {
			for x := reps[a] & (reps[b] >> 21) & trigAll; x != 0; x &= x - 1 {
				rel[a*nc+b] |= next[bits.TrailingZeros64(x)]
			}
		}
	}
	// The largest P (N, C) for which the box with the other two sets
	// given still triggers everywhere.
	maxP := func(cs, ns uint64) uint64 {
		ps := all
		for a := range nc {
			for m := cs; m != 0; m &= m - 1 {
				if rel[a*nc+bits.TrailingZeros64(m)]&ns != ns {
					ps &^= 1 << a
					break
				}
			}
		}
		return ps
	}
	maxN := func(ps, cs uint64) uint64 {
		ns := all
		for m := ps; m != 0; m &= m - 1 {
			for l := cs; l != 0; l &= l - 1 {
				ns &= rel[bits.TrailingZeros64(m)*nc+bits.TrailingZeros64(l)]
			}
		}
		return ns
	}
	maxC := func(ps, ns uint64) uint64 {
		cs := all
		for b := range nc {
			for m := ps; m != 0; m &= m - 1 {
				if rel[bits.TrailingZeros64(m)*nc+b]&ns != ns {
					cs &^= 1 << b
					break
				}
			}
		}
		return cs
	}
	// Start with the kinds; grow each box as far as it goes, merge boxes
	// that share two sets (their union is a box) or of which one holds
	// the other, and repeat until nothing changes.
	for g := range 21 {
		var x trigBox
		for a, e := range reps {
			x.p |= (e >> g & 1) << a
			x.c |= (e >> (21 + g) & 1) << a
			x.n |= (e >> (42 + g) & 1) << a
		}
		if x.p != 0 && x.c != 0 && x.n != 0 {
			boxes = append(boxes, x)
		}
	}
	for changed := true; changed; {
		changed = false
		for i := range boxes {
			x := &boxes[i]
			x.p = maxP(x.c, x.n)
			x.n = maxN(x.p, x.c)
			x.c = maxC(x.p, x.n)
		}
		for i := 0; i < len(boxes); i++ {
			for j := i + 1; j < len(boxes); j++ {
				x, y := boxes[i], boxes[j]
				u := trigBox{x.p | y.p, x.c | y.c, x.n | y.n}
				same := 0
				for _, eq := range []bool{x.p == y.p, x.c == y.c, x.n == y.n} {
					if eq {
						same++
					}
				}
				if same >= 2 || u == x || u == y {
					boxes[i] = u
					boxes = append(boxes[:j], boxes[j+1:]...)
					changed = true
					j = i // compare the merged box with all the others again
				}
			}
		}
	}
	return cls, nc, rel, boxes, true
}

// newTrigKern returns the kernel data for tab, or nil if tab does not fit
// the kernel: more than 16 boxes, more than 8 in a plane, more than 16
// classes in a plane, or bytes outside 0x20-0x7f that differ from 0x00.
func newTrigKern(tab *[256]uint64) *trigKern {
	// The kernel finds trigSecret with comparisons of its own, for
	// exactly the sets the kind has in trigTabs: "ecr" in any case.
	const sec = trigSecret | trigSecret<<21 | trigSecret<<42
	var rest [256]uint64
	secret := false
	for b, e := range tab {
		secret = secret || e&sec != 0
		rest[b] = e &^ sec
	}
	for b, e := range tab {
		c := byte(b) | 0x20 // 'e', 'c' and 'r' for exactly those letters in either case
		if secret && (e&trigSecret != 0 != (c == 'e') || e>>21&trigSecret != 0 != (c == 'c') || e>>42&trigSecret != 0 != (c == 'r')) {
			return nil
		}
	}
	cls, nc, rel, boxes, ok := trigBoxes(&rest)
	if !ok {
		return nil
	}
	// Plane 0 takes the boxes whose trigger bytes are letters and digits,
	// plane 1 the others, and either the other's overflow.
	var alnum uint64
	for b := range 256 {
		if isAlnum(byte(b)) {
			alnum |= 1 << cls[b]
		}
	}
	planes, ok := splitPlanes(boxes, nc, alnum)
	if !ok {
		return nil
	}
	// sig[π][a] is what plane π gives class a: its P, C and N bits.
	var sig [2][64][3]uint8
	for pl, bs := range planes {
		for a := range nc {
			for j, x := range bs {
				sig[pl][a][0] |= uint8(x.p>>a&1) << j
				sig[pl][a][1] |= uint8(x.c>>a&1) << j
				sig[pl][a][2] |= uint8(x.n>>a&1) << j
			}
		}
	}
	// Number the distinct signatures of each plane, that of byte 0x00
	// first, and give every byte its class byte.
	k := new(trigKern)
	if secret {
		for j := range k.secret {
			k.secret[j] = 0xff
		}
	}
	var id [2][64]uint8
	for pl := range 2 {
		var ids [][3]uint8
		for i := range nc {
			a := (i + int(cls[0])) % nc // cls[0] first
			s := sig[pl][a]
			j := 0
			for j < len(ids) && ids[j] != s {
				j++
			}
			if j == len(ids) {
				if j == 16 {
					return nil
				}
				ids = append(ids, s)
				for f := range 3 {
					k.plane[3*pl+f][j] = s[f]
					k.plane[3*pl+f][j+16] = s[f]
				}
			}
			id[pl][a] = uint8(j)
		}
	}
	var clsByte [256]uint8
	for b := range 256 {
		clsByte[b] = id[0][cls[b]] | id[1][cls[b]]<<4
		if (b < 0x20 || b >= 0x80) && clsByte[b] != 0 {
			return nil
		}
	}
	for h := 2; h < 8; h++ {
		for l := range 16 {
			v := clsByte[16*h+l]
			if h > 2 {
				v ^= clsByte[16*(h-1)+l]
			}
			k.lut[h-2][l], k.lut[h-2][l+16] = v, v
		}
	}
	// Check the planes against the table for every triple of classes:
	// next[π][j] is the classes whose N in plane π has box j.
	var next [2][8]uint64
	for a := range nc {
		for pl := range 2 {
			for j := range 8 {
				next[pl][j] |= uint64(k.plane[3*pl+2][id[pl][a]]>>j&1) << a
			}
		}
	}
	for a := range nc {
		for b := range nc {
			var got uint64
			for pl := range 2 {
				x := k.plane[3*pl][id[pl][a]] & k.plane[3*pl+1][id[pl][b]]
				for j := range 8 {
					if x>>j&1 != 0 {
						got |= next[pl][j]
					}
				}
			}
			if got != rel[a*nc+b] {
				return nil
			}
		}
	}
	return k
}

// splitPlanes splits boxes into the kernel's two planes: at most 8 boxes
// in each, and at most 16 distinct signatures (what a plane gives a byte
// class: the boxes of its P, C and N sets) in each. It tries first the
// boxes whose trigger bytes are letters and digits in plane 0 and the
// others in plane 1, with either's overflow in the other; failing that,
// every choice of plane 0's boxes.
func splitPlanes(boxes []trigBox, nc int, alnum uint64) (planes [2][]trigBox, ok bool) {
	fits := func(bs []trigBox) bool {
		if len(bs) > 8 {
			return false
		}
		var sigs [][3]uint8
		for a := range nc {
			var s [3]uint8
			for j, x := range bs {
				s[0] |= uint8(x.p>>a&1) << j
				s[1] |= uint8(x.c>>a&1) << j
				s[2] |= uint8(x.n>>a&1) << j
			}
			if !slices.Contains(sigs, s) {
				if len(sigs) == 16 {
					return false
				}
				sigs = append(sigs, s)
			}
		}
		return true
	}
	for _, x := range boxes {
		pl := 1
		if x.c&^alnum == 0 {
			pl = 0
		}
		planes[pl] = append(planes[pl], x)
	}
	for pl := range 2 {
		if o := &planes[1-pl]; len(planes[pl]) < 8 && len(*o) > 8 {
			m := min(8-len(planes[pl]), len(*o)-8)
			planes[pl] = append(planes[pl], (*o)[len(*o)-m:]...)
			*o = (*o)[:len(*o)-m]
		}
	}
	if fits(planes[0]) && fits(planes[1]) {
		return planes, true
	}
	if len(boxes) > 16 {
		return planes, false
	}
	// Every subset of the boxes for plane 0, by its bit mask.
	for set := uint32(0); set < 1<<len(boxes); set++ {
		if n := bits.OnesCount32(set); n > 8 || len(boxes)-n > 8 {
			continue
		}
		planes = [2][]trigBox{}
		for j, x := range boxes {
			pl := int(set>>j&1 ^ 1)
			planes[pl] = append(planes[pl], x)
		}
		if fits(planes[0]) && fits(planes[1]) {
			return planes, true
		}
	}
	return planes, false
}
