package redact

import (
	"fmt"
	"sort"
	"testing"

	"github.com/tidwall/gjson"
)

func TestZZTriggerStats(t *testing.T) {
	_, engines := loadExample(t)
	e := engines["chat"]
	evs := benchEvents(t, "chat")
	tab := triggerTable(maskAll)
	kinds := map[int]int{}
	var nTrig, nSlow, nBytes, nText, nStep, nMatch int
	sc := &scanner{e: e, mask: maskAll}
	byDet := map[detector]int{}
	for _, ev := range evs {
		txt := []byte(gjson.GetBytes(ev, "text").String())
		nText++
		nBytes += len(txt)
		lo := 0
		sc.ms = sc.ms[:0]
		for lo < len(txt) {
			a := nextTrigger(tab, txt, lo)
			if a >= len(txt) {
				break
			}
			nTrig++
			prev, next := trigAll, trigAll<<42
			if a > 0 {
				prev = tab[txt[a-1]]
			}
			if a+1 < len(txt) {
				next = tab[txt[a+1]]
			}
			k := prev & (tab[txt[a]] >> 21) & (next >> 42) & trigAll
			for b := 0; b < 21; b++ {
				if k&(1<<b) != 0 {
					kinds[b]++
				}
			}
			nSlow++
			i := lo
			lo = sc.slow(txt, lo, a)
			_ = i
			nStep++
		}
		nMatch += len(sc.ms)
		for _, m := range sc.ms {
			byDet[m.det]++
		}
	}
	fmt.Printf("texts %d bytes/text %d triggers/text %.1f matches/text %.1f\n", nText, nBytes/nText, float64(nTrig)/float64(nText), float64(nMatch)/float64(nText))
	var ks []int
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	names := []string{"WordDigit", "WordUpper", "WordG", "WordX", "WordK", "WordE", "MidLower", "MidUpper", "MidDigit", "MidSlash", "ColonHex", "ColonNext", "Equals", "At", "Plus", "Paren", "Less", "Bracket", "Dash"}
	for _, k := range ks {
		fmt.Printf("  %-10s %.2f/text\n", names[k], float64(kinds[k])/float64(nText))
	}
	for d, n := range byDet {
		fmt.Printf("  det %v %.2f/text\n", d, float64(n)/float64(nText))
	}
}
