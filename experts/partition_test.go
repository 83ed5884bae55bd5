package experts

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// checkBalancedPerm fails unless perm is a permutation of 0…n−1 whose e blocks each list
// their neurons ascending (the documented form).
func checkBalancedPerm(t *testing.T, perm []int, n, e int) {
	t.Helper()
	if err := checkPerm(perm, n); err != nil {
		t.Fatal(err)
	}
	s := n / e
	for x := range e {
		if blk := perm[x*s : (x+1)*s]; !slices.IsSorted(blk) {
			t.Fatalf("expert %d block not ascending: %v", x, blk)
		}
	}
}

// groupOf maps each original neuron to its expert under perm.
func groupOf(perm []int, e int) []int {
	g := make([]int, len(perm))
	s := len(perm) / e
	for i, p := range perm {
		g[p] = i / s
	}
	return g
}

// samePartition reports whether two neuron→group maps describe the same partition up to
// renaming the groups.
func samePartition(a, b []int) bool {
	ab := map[int]int{}
	for i := range a {
		if v, ok := ab[a[i]]; ok && v != b[i] {
			return false
		}
		ab[a[i]] = b[i]
	}
	return true
}

// TestPartitionRecoversPlantedClusters: neurons built as e tight groups (shuffled) must come
// back as exactly those groups, from both methods: fc1 rows around e random directions for
// k-means, and activations where each group fires on its own tokens for co-activation.
func TestPartitionRecoversPlantedClusters(t *testing.T) {
	for _, tc := range []struct{ n, c, e int }{{64, 16, 4}, {256, 32, 16}, {1024, 64, 32}} {
		t.Run(fmt.Sprintf("N%d_E%d", tc.n, tc.e), func(t *testing.T) {
			r := newRNG(uint64(tc.n))
			planted := make([]int, tc.n)
			for i := range planted {
				planted[i] = i % tc.e
			}
			r.Shuffle(tc.n, func(i, j int) { planted[i], planted[j] = planted[j], planted[i] })

			centers := randSlice(r, tc.e*tc.c, 1)
			w1 := make([]float32, tc.n*tc.c)
			for i, g := range planted {
				scale := 0.5 + r.Float32() // scale must not matter: rows are normalised
				for j := range tc.c {
					w1[i*tc.c+j] = scale * (centers[g*tc.c+j] + 0.05*(2*r.Float32()-1))
				}
			}
			perm, err := PartitionKMeans(w1, tc.n, tc.c, tc.e, 7)
			if err != nil {
				t.Fatal(err)
			}
			checkBalancedPerm(t, perm, tc.n, tc.e)
			if !samePartition(groupOf(perm, tc.e), planted) {
				t.Error("k-means did not recover the planted groups")
			}

			const tokens = 400
			h := make([]float32, tokens*tc.n)
			for tok := range tokens {
				on := map[int]bool{r.IntN(tc.e): true, r.IntN(tc.e): true} // each token uses ≤2 groups
				for i, g := range planted {
					if on[g] && r.Float32() < 0.7 {
						h[tok*tc.n+i] = r.Float32() + 0.01
					}
				}
			}
			perm, err = PartitionCoActivation(h, tokens, tc.n, tc.e, 7)
			if err != nil {
				t.Fatal(err)
			}
			checkBalancedPerm(t, perm, tc.n, tc.e)
			if !samePartition(groupOf(perm, tc.e), planted) {
				t.Error("co-activation clustering did not recover the planted groups")
			}
		})
	}
}

// TestPartitionDeterministic: the same inputs and seed give the same permutation (a variant
// must be rebuildable), and a different seed is allowed to differ but stays balanced.
func TestPartitionDeterministic(t *testing.T) {
	r := newRNG(3)
	w1 := randSlice(r, 256*24, 1)
	a, _ := PartitionKMeans(w1, 256, 24, 8, 1)
	b, _ := PartitionKMeans(w1, 256, 24, 8, 1)
	c, _ := PartitionKMeans(w1, 256, 24, 8, 2)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different permutations")
	}
	checkBalancedPerm(t, c, 256, 8)
}

// TestPartitionRejects: splits that cannot be equal, and mis-sized inputs, are errors.
func TestPartitionRejects(t *testing.T) {
	if _, err := PartitionKMeans(make([]float32, 10*4), 10, 4, 3, 0); err == nil {
		t.Error("10 neurons into 3 experts accepted")
	}
	if _, err := PartitionKMeans(make([]float32, 5), 8, 4, 2, 0); err == nil {
		t.Error("short weight accepted")
	}
	if _, err := PartitionCoActivation(make([]float32, 7), 1, 8, 2, 0); err == nil {
		t.Error("short activations accepted")
	}
	if _, err := randFFN(t, newRNG(1), 4, 8, 2, true).Permute([]int{0, 1, 2, 3, 4, 5, 6, 6}, 2); err == nil {
		t.Error("non-permutation accepted")
	}
}

// TestPermutedFFNMatches: permuting neurons does not change the function. Random blocks with
// random permutations, and each layer of the real default model permuted by both methods,
// give the original block's outputs (the dense path, and the sparse kernel selecting every
// expert through its grouped path) up to float32 summation order.
func TestPermutedFFNMatches(t *testing.T) {
	check := func(t *testing.T, f *FFN, perm []int, e int, x *tensor.T) {
		t.Helper()
		g, err := f.Permute(perm, e)
		if err != nil {
			t.Fatal(err)
		}
		ctx := tensor.NewCtx()
		want := f.Dense(ctx, x)
		checkClose(t, "permuted dense", g.Dense(ctx, x).Data, want.Data, 1e-5, 1e-5)
		// K = E−1 plus the last expert's contribution exercises the sparse path on the
		// permuted weights: Σ over two complementary selections equals the dense block.
		tt := x.Shape[0]
		if e > 1 {
			a, b := Selection{E: e, K: e - 1}, Selection{E: e, K: 1}
			for range tt {
				for id := range e - 1 {
					a.IDs = append(a.IDs, int32(id))
				}
				b.IDs = append(b.IDs, int32(e-1))
			}
			ya, yb := g.Forward(ctx, x, a, nil).Data, g.Forward(ctx, x, b, nil).Data
			sum := make([]float32, len(ya))
			for i := range sum {
				sum[i] = ya[i] + yb[i]
				if g.B2 != nil {
					sum[i] -= g.B2[i%g.C] // both halves carry the bias
				}
			}
			// Two GEMM chains summed against one: float32 summation order over N neurons
			// (the BLAS kernel differs between CPUs), so the bound scales with N.
			checkClose(t, "permuted sparse halves", sum, want.Data, sparseTol(f.N)/10, 1e-5)
		}
	}
	t.Run("random", func(t *testing.T) {
		r := newRNG(5)
		f := randFFN(t, r, 48, 192, 1, true)
		x := tensor.FromData(randSlice(r, 33*48, 2), 33, 48)
		check(t, f, r.Perm(192), 12, x)
	})
	rm := loadReal(t)
	ins, frames, _, err := rm.encoderInputs(rm.ref)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range rm.ffns {
		t.Run(fmt.Sprintf("chorus-micro_ffn%d", i), func(t *testing.T) {
			var x *tensor.T
			if i < rm.enc {
				x = tensor.FromData(ins[i], frames, f.C)
			} else { // decoder blocks: layer-norm-like inputs
				x = tensor.FromData(randSlice(newRNG(uint64(i)), 20*f.C, 1.7), 20, f.C)
			}
			perm, err := PartitionKMeans(f.W1, f.N, f.C, 16, 1)
			if err != nil {
				t.Fatal(err)
			}
			checkBalancedPerm(t, perm, f.N, 16)
			check(t, f, perm, 16, x)
			h := f.Hidden(tensor.NewCtx(), x)
			perm, err = PartitionCoActivation(h.Data, x.Shape[0], f.N, 32, 1)
			if err != nil {
				t.Fatal(err)
			}
			checkBalancedPerm(t, perm, f.N, 32)
			check(t, f, perm, 32, x)
		})
	}
}
