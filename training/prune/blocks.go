package prune

import (
	"fmt"
	"sort"
)

// RoundUnits makes every layer keep a multiple of block FFN units in masks z, zeroing the
// kept units with the lowest score first (score(side, layer, unit); the gate value itself for
// CoFi's masks, the weight magnitude for magnitude pruning), so the materialised model's FFNs
// split into equal experts: prune, then MoE-fy (the flagship variant). block ≤ 1 changes
// nothing. It fails when a stack's FFN width is not a multiple of block.
func RoundUnits(z Set, st Structure, block int, score func(side Side, layer, unit int) float64) error {
	if block <= 1 {
		return nil
	}
	for side := range numSides {
		s := st.Side[side]
		u := z[side][Units]
		if u == nil || s.Layers == 0 {
			continue
		}
		if s.FFN%block != 0 {
			return fmt.Errorf("prune: %s FFN width %d is not a multiple of the unit block %d", side, s.FFN, block)
		}
		for l := range s.Layers {
			row := u.Data[l*s.FFN : (l+1)*s.FFN]
			var kept []int
			for j, v := range row {
				if v != 0 {
					kept = append(kept, j)
				}
			}
			extra := len(kept) % block
			if extra == 0 {
				continue
			}
			sort.SliceStable(kept, func(a, b int) bool { return score(side, l, kept[a]) < score(side, l, kept[b]) })
			for _, j := range kept[:extra] {
				row[j] = 0
			}
		}
	}
	return nil
}
