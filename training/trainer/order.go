package trainer

import (
	"fmt"
	"math/rand/v2"
)

// Order is a reproducible shuffled order over a dataset of n examples: example position p
// (counted from the start of training, across epochs) maps to epoch p/n and to a dataset index
// drawn from that epoch's permutation, which depends only on (seed, epoch). A task can
// therefore find any example from its position alone — which is what makes a resumed run see
// exactly the data the uninterrupted run would have seen — and can prefetch ahead without
// sharing state with the trainer.
//
// An Order caches the permutation of the epoch it last visited; it is not safe for concurrent
// use (give each loader goroutine its own).
type Order struct {
	seed  uint64
	n     int
	epoch int64
	perm  []int
}

// NewOrder returns an order over n > 0 examples.
func NewOrder(seed uint64, n int) (*Order, error) {
	if n <= 0 {
		return nil, fmt.Errorf("order: %d examples", n)
	}
	return &Order{seed: seed, n: n, epoch: -1}, nil
}

// Len is the number of examples per epoch.
func (o *Order) Len() int { return o.n }

// At returns the epoch of position pos ≥ 0 and the index of the example it selects.
// Negative positions are treated as 0.
func (o *Order) At(pos int64) (epoch int64, index int) {
	pos = max(pos, 0)
	epoch = pos / int64(o.n)
	if epoch != o.epoch {
		if o.perm == nil {
			o.perm = make([]int, o.n)
		}
		for i := range o.perm {
			o.perm[i] = i
		}
		// The stream constant keeps epoch permutations independent of any other PCG the
		// task seeds from the same seed (such as the trainer's own).
		r := rand.New(rand.NewPCG(o.seed, uint64(epoch)^0x6f726465725f7631))
		r.Shuffle(o.n, func(i, j int) { o.perm[i], o.perm[j] = o.perm[j], o.perm[i] })
		o.epoch = epoch
	}
	return epoch, o.perm[pos%int64(o.n)]
}
