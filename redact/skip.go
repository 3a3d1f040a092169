package redact

import "unsafe"

// Lane-rotated trigger tables, for nextTrigger.
//
// A trigger table entry has three 21-bit lanes, P (lane 0), C (lane 1) and
// N (lane 2), and position j triggers if P(t[j-1]) & C(t[j]) & N(t[j+1])
// has a kind bit set: with one table, each position costs two shifts to
// line the three fields up, and the shifts and the register copies they
// need are most of nextTrigger's work on prose. If instead the entry of
// the byte at position p has C in lane L(p) = -p mod 3, P one lane below
// and N one lane above (mod 3), then lane L(j) of e(j-1) & e(j) & e(j+1)
// is exactly P(t[j-1]) & C(t[j]) & N(t[j+1]), with no shift: each entry
// brings the right field to that lane. The other two lanes hold products
// of unrelated fields, so positions are collected per lane and each
// collection is read at its own lane only. The trigger table itself is
// the layout with C in lane 1; trigRot holds the other two.

// trigRot[k][0] and trigRot[k][1] are trigTabs[k] with C in lane 0 and in
// lane 2 (P one lane below, N one above).
var trigRot = func() (rt [len(trigTabs)][2][256]uint64) {
	for k := range trigTabs {
		for c, e := range trigTabs[k] {
			p, cur, next := e&trigAll, e>>21&trigAll, e>>42&trigAll
			rt[k][0][c] = cur | next<<21 | p<<42
			rt[k][1][c] = next | p<<21 | cur<<42
		}
	}
	return rt
}()

// rotations returns the rotated copies of tab, or nil if tab is not one of
// trigTabs (a table made by a test). tab is found by its address, so that
// the lookup costs the same for every table.
func rotations(tab *[256]uint64) *[2][256]uint64 {
	k := (uintptr(unsafe.Pointer(tab)) - uintptr(unsafe.Pointer(&trigTabs))) / unsafe.Sizeof(trigTabs[0])
	if k < uintptr(len(trigTabs)) && tab == &trigTabs[k] {
		return &trigRot[k]
	}
	return nil
}
