package experts

// Shapes (legend in doc.go): clustered points [N, D] (one per neuron: D = C for fc1's weight
// rows, D = N for co-activation rows), centroids [E, D], distances [N, E], recorded hidden
// activations h [T, N], co-activation counts [N, N]; assignments [N] expert ids.

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/chorus-asr/chorus/tensor"
)

// Methods a layout records for how its permutation was found.
const (
	MethodKMeans       = "kmeans"       // balanced k-means on fc1's weight rows
	MethodCoActivation = "coactivation" // balanced k-means on co-activation rows
	MethodIdentity     = "identity"     // experts are the model's neurons in order
	MethodHeads        = "heads"        // an attention layer's heads, each an expert (head routers)
	MethodUpcycled     = "upcycled"     // gated experts, each a copy of the parent's whole FFN (sparse upcycling)
	// MethodEmpty marks a block pruned to no units (CoFi can remove a layer's whole FFN):
	// it has no experts and no router, and computes fc2's bias whatever the router.
	MethodEmpty = "empty"
)

// kmeansIters bounds Lloyd iterations; on chorus-micro's layers assignments stop changing
// well before it.
const kmeansIters = 40

// PartitionKMeans groups the n neurons of a block with fc1 weight w1 [N, C] into e experts of
// n/e neurons by balanced k-means on the weight rows (MoEfication's parameter clustering):
// neurons whose input weights point the same way fire on the same inputs. Rows are
// normalised to unit length first, so a neuron's scale does not decide its expert. It returns
// the permutation to pass to FFN.Permute (new neuron i is old neuron perm[i]; expert 0's
// neurons first, each expert's in ascending order). The result depends only on the inputs and
// seed.
func PartitionKMeans(w1 []float32, n, c, e int, seed uint64) ([]int, error) {
	if err := checkSplit(n, e); err != nil {
		return nil, err
	}
	if len(w1) != n*c {
		return nil, fmt.Errorf("experts: partition: %d weights for %d×%d", len(w1), n, c)
	}
	pts := append([]float32(nil), w1...)
	for i := range n {
		normalize(pts[i*c : (i+1)*c])
	}
	return permFromClusters(BalancedKMeans(pts, n, c, e, seed), e), nil
}

// PartitionCoActivation groups neurons that fire together: from recorded hidden activations
// h [T, N] (relu(fc1(x)) over a sample of real inputs) it counts, for each pair, the tokens on
// which both fire, normalises the counts to a cosine (M[i][j]/√(M[i][i]·M[j][j])), and clusters
// the neurons' rows of that matrix with balanced k-means, so each expert collects neurons that
// are active on the same tokens and a token needs few experts. Neurons that never fire have
// zero rows and fill whatever room is left. Returns a permutation as PartitionKMeans does.
func PartitionCoActivation(h []float32, t, n, e int, seed uint64) ([]int, error) {
	if err := checkSplit(n, e); err != nil {
		return nil, err
	}
	if len(h) != t*n || t == 0 {
		return nil, fmt.Errorf("experts: partition: %d activations for %d tokens × %d neurons", len(h), t, n)
	}
	fire := make([]float32, t*n)
	for i, v := range h {
		if v > 0 {
			fire[i] = 1
		}
	}
	co := make([]float32, n*n)
	tensor.Sgemm(true, false, n, n, t, 1, fire, n, fire, n, 0, co, n) // Σ_t fire[t][i]·fire[t][j]
	diag := make([]float64, n)
	for i := range n {
		diag[i] = math.Sqrt(float64(co[i*n+i]))
	}
	for i := range n {
		for j := range n {
			if d := diag[i] * diag[j]; d > 0 {
				co[i*n+j] = float32(float64(co[i*n+j]) / d)
			} else {
				co[i*n+j] = 0
			}
		}
	}
	return permFromClusters(BalancedKMeans(co, n, n, e, seed), e), nil
}

func checkSplit(n, e int) error {
	if n <= 0 || e <= 0 || n%e != 0 {
		return fmt.Errorf("experts: %d neurons do not split into %d equal experts", n, e)
	}
	return nil
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// permFromClusters lists cluster 0's members ascending, then cluster 1's, and so on.
func permFromClusters(assign []int, e int) []int {
	perm := make([]int, 0, len(assign))
	for c := range e {
		for i, a := range assign {
			if a == c {
				perm = append(perm, i)
			}
		}
	}
	return perm
}

// BalancedKMeans clusters the n points [N, D] into e clusters of exactly n/e points each
// (n must be a multiple of e) and returns each point's cluster. Centroids start from k-means++
// seeding (seeded, so the result is deterministic); each iteration assigns points greedily in
// order of increasing squared distance over all (point, cluster) pairs, skipping full clusters,
// then moves each centroid to its members' mean, until no assignment changes.
func BalancedKMeans(pts []float32, n, d, e int, seed uint64) []int {
	if n%e != 0 || len(pts) != n*d {
		panic(fmt.Sprintf("experts: balanced k-means of %d values as %d×%d into %d", len(pts), n, d, e))
	}
	size := n / e
	rng := rand.New(rand.NewPCG(seed, 0x6b6d65616e73))
	cent := kmeansPP(pts, n, d, e, rng)
	norms := make([]float64, n)
	for i := range n {
		norms[i] = sqNorm(pts[i*d : (i+1)*d])
	}
	dots := make([]float32, n*e)
	type pair struct {
		dist float64
		pt   int32
		cl   int32
	}
	pairs := make([]pair, n*e)
	assign := make([]int, n)
	for i := range assign {
		assign[i] = -1
	}
	next := make([]int, n)
	fillc := make([]int, e)
	cnorm := make([]float64, e)
	for range kmeansIters {
		tensor.Linear(dots, pts, cent, nil, n, d, e) // p·c for every pair
		for c := range e {
			cnorm[c] = sqNorm(cent[c*d : (c+1)*d])
		}
		for i := range n {
			for c := range e {
				dist := norms[i] - 2*float64(dots[i*e+c]) + cnorm[c]
				pairs[i*e+c] = pair{dist, int32(i), int32(c)}
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int {
			if c := cmp.Compare(a.dist, b.dist); c != 0 {
				return c
			}
			if c := cmp.Compare(a.pt, b.pt); c != 0 {
				return c
			}
			return cmp.Compare(a.cl, b.cl)
		})
		for i := range next {
			next[i] = -1
		}
		clear(fillc)
		for _, p := range pairs {
			if next[p.pt] < 0 && fillc[p.cl] < size {
				next[p.pt] = int(p.cl)
				fillc[p.cl]++
			}
		}
		if slices.Equal(next, assign) {
			break
		}
		copy(assign, next)
		clear(cent)
		for i, c := range assign {
			row := cent[c*d : (c+1)*d]
			for j, v := range pts[i*d : (i+1)*d] {
				row[j] += v
			}
		}
		for j := range cent {
			cent[j] /= float32(size)
		}
	}
	return assign
}

// kmeansPP picks e initial centroids [E, D]: the first uniformly, each next one with
// probability proportional to its squared distance to the nearest centroid so far.
func kmeansPP(pts []float32, n, d, e int, rng *rand.Rand) []float32 {
	cent := make([]float32, e*d)
	near := make([]float64, n)
	for i := range near {
		near[i] = math.Inf(1)
	}
	first := rng.IntN(n)
	copy(cent[:d], pts[first*d:(first+1)*d])
	for c := 1; c < e; c++ {
		prev := cent[(c-1)*d : c*d]
		var total float64
		for i := range n {
			near[i] = math.Min(near[i], sqDist(pts[i*d:(i+1)*d], prev))
			total += near[i]
		}
		pick := 0
		if total > 0 {
			r := rng.Float64() * total
			for pick = 0; pick < n-1; pick++ {
				r -= near[pick]
				if r < 0 {
					break
				}
			}
		} else {
			pick = rng.IntN(n) // all points coincide with chosen centroids
		}
		copy(cent[c*d:(c+1)*d], pts[pick*d:(pick+1)*d])
	}
	return cent
}

func sqNorm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}

func sqDist(a, b []float32) float64 {
	var s float64
	for i, x := range a {
		dd := float64(x) - float64(b[i])
		s += dd * dd
	}
	return s
}
