package experts

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// TestTopK pins the selection rule on hand-made scores: highest first, ties to the lower id,
// NaN last, ids returned ascending; per-request mode ranks the summed scores.
func TestTopK(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		scores []float32 // [T, E]
		t, e   int
		k      int
		mode   Mode
		want   []int32
	}{
		{"one token", []float32{0.1, 0.9, 0.5, 0.7}, 1, 4, 2, PerToken, []int32{1, 3}},
		{"ties to the lower id", []float32{1, 2, 2, 2}, 1, 4, 2, PerToken, []int32{1, 2}},
		{"NaN ranks last", []float32{nan, -5, nan, -7}, 1, 4, 2, PerToken, []int32{1, 3}},
		{"k = E", []float32{3, 1, 2}, 1, 3, 3, PerToken, []int32{0, 1, 2}},
		{"per token", []float32{5, 0, 0, 0, 0, 5, 4, 0}, 2, 4, 2, PerToken, []int32{0, 1, 1, 2}},
		{"per request sums", []float32{5, 0, 0, 0, 0, 5, 4, 0}, 2, 4, 2, PerRequest, []int32{0, 1, 0, 1}},
		{"per request, one token each", []float32{0, 3, 1, 0, 2, 0}, 2, 3, 1, PerRequest, []int32{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := selectTopK(tc.scores, tc.t, tc.e, tc.k, tc.mode)
			if !slices.Equal(sel.IDs, tc.want) || sel.K != tc.k || sel.E != tc.e || sel.Shared != (tc.mode == PerRequest) {
				t.Fatalf("got %+v, want ids %v", sel, tc.want)
			}
			if err := sel.check(tc.t, tc.e); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTopKLarge: on random scores (E up to 64), a token's selection agrees with sorting the
// ids by score (stable: ties to the lower id).
func TestTopKLarge(t *testing.T) {
	r := newRNG(9)
	for range 500 {
		e := 1 + r.IntN(64)
		k := 1 + r.IntN(e)
		sc := make([]float32, e)
		for i := range sc {
			sc[i] = float32(r.IntN(8)) // many ties
		}
		got := selectTopK(sc, 1, e, k, PerToken).IDs
		ids := make([]int32, e)
		for i := range ids {
			ids[i] = int32(i)
		}
		slices.SortStableFunc(ids, func(a, b int32) int {
			switch {
			case sc[a] > sc[b]:
				return -1
			case sc[a] < sc[b]:
				return 1
			}
			return 0
		})
		want := append([]int32(nil), ids[:k]...)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("scores %v k %d: got %v want %v", sc, k, got, want)
		}
	}
}

func TestNewTopKRange(t *testing.T) {
	s := Random{E: []int{8, 16}}
	for _, tc := range []struct {
		k  int
		ok bool
	}{{0, false}, {1, true}, {8, true}, {9, false}, {-1, false}} {
		if _, err := NewTopK(s, tc.k, PerToken, []int{8, 16}); (err == nil) != tc.ok {
			t.Errorf("k %d: err %v", tc.k, err)
		}
	}
	if _, err := NewTopK(s, 4, PerToken, []int{8, 16, 4}); err == nil {
		t.Error("a layer the scorer does not know was accepted")
	}
	if _, err := NewTopK(s, 4, PerToken, []int{8, 8}); err == nil {
		t.Error("a scorer with another expert count was accepted")
	}
	// An empty block (0 experts) is skipped; k is checked against the others only.
	if _, err := NewTopK(s, 12, PerToken, []int{0, 16}); err != nil {
		t.Errorf("empty first layer: %v", err)
	}
	if _, err := NewTopK(s, 1, PerToken, []int{0, 0}); err == nil {
		t.Error("a router over no experts was accepted")
	}
}

// TestRandomRouter: reproducible for a seed and a token, independent across tokens and
// seeds, and uniform: over many tokens every expert is used about K/E of the time.
func TestRandomRouter(t *testing.T) {
	const tt, c, e, k = 4000, 16, 16, 4
	x := tensor.FromData(randSlice(newRNG(1), tt*c, 1), tt, c)
	ctx := tensor.NewCtx()
	ra, _ := NewTopK(Random{Seed: 1, E: []int{e}}, k, PerToken, []int{e})
	rb, _ := NewTopK(Random{Seed: 2, E: []int{e}}, k, PerToken, []int{e})
	a1, a2, b := ra.Select(ctx, 0, x), ra.Select(ctx, 0, x), rb.Select(ctx, 0, x)
	if !slices.Equal(a1.IDs, a2.IDs) {
		t.Fatal("same seed and tokens gave different experts")
	}
	if slices.Equal(a1.IDs, b.IDs) {
		t.Fatal("different seeds gave the same experts")
	}
	if err := a1.check(tt, e); err != nil {
		t.Fatal(err)
	}
	var p Pathway
	p.Record(0, a1)
	u := p.Stats()[0].Utilisation()
	for ex, v := range u {
		if math.Abs(v-float64(k)/e) > 0.03 { // binomial sd ≈ 0.007
			t.Errorf("expert %d used by %.3f of tokens, want %.3f", ex, v, float64(k)/e)
		}
	}
	// The same token vector later in a call (a decoder step repeating a state) gets the same
	// experts: selection depends on the token, not its position.
	one := ra.Select(ctx, 0, tensor.FromData(x.Data[5*c:6*c], 1, c))
	if !slices.Equal(one.IDs, a1.Token(5)) {
		t.Errorf("token 5 alone %v, in the batch %v", one.IDs, a1.Token(5))
	}
}

// TestOracleAndDense: the oracle picks the experts with the most activation mass, so it
// captures at least as much mass as any other choice (here: random), and Dense selects all.
func TestOracleAndDense(t *testing.T) {
	r := newRNG(4)
	f := randFFN(t, r, 32, 128, 8, true)
	x := tensor.FromData(randSlice(r, 200*32, 2), 200, 32)
	ctx := tensor.NewCtx()
	mass := f.ExpertMass(ctx, x)
	or, _ := NewTopK(Oracle{FFNs: []*FFN{f}}, 3, PerToken, []int{f.E})
	rn, _ := NewTopK(Random{Seed: 3, E: []int{8}}, 3, PerToken, []int{8})
	so, sr := or.Select(ctx, 0, x), rn.Select(ctx, 0, x)
	var mo, mr float64
	for i := range 200 {
		row := mass.Data[i*8 : (i+1)*8]
		var a, b float64
		for j := range 3 {
			a += float64(row[so.Token(i)[j]])
			b += float64(row[sr.Token(i)[j]])
		}
		if a < b {
			t.Fatalf("token %d: oracle mass %g below random %g", i, a, b)
		}
		// nothing outside the oracle's set has more mass than the least inside it
		least := math.Inf(1)
		for _, id := range so.Token(i) {
			least = math.Min(least, float64(row[id]))
		}
		for j, v := range row {
			if !slices.Contains(so.Token(i), int32(j)) && float64(v) > least {
				t.Fatalf("token %d: expert %d (mass %g) left out, %g taken", i, j, v, least)
			}
		}
		mo, mr = mo+a, mr+b
	}
	if !(mo > mr) {
		t.Fatalf("oracle total mass %g, random %g", mo, mr)
	}
	d := Dense{E: []int{8}}.Select(ctx, 0, x)
	checkClose(t, "dense router", f.Forward(ctx, x, d, nil).Data, f.Dense(ctx, x).Data, 0, 0)
}

// TestPinned: the first call chooses each layer's subset; later calls of the request reuse it
// whatever their tokens, and layers are pinned independently.
func TestPinned(t *testing.T) {
	r := newRNG(6)
	f := randFFN(t, r, 16, 64, 8, true)
	g := randFFN(t, r, 16, 64, 8, true)
	base, _ := NewTopK(Oracle{FFNs: []*FFN{f, g}}, 2, PerToken, []int{f.E, g.E})
	p := NewPinned(base)
	ctx := tensor.NewCtx()
	x1 := tensor.FromData(randSlice(r, 10*16, 2), 10, 16)
	first := p.Select(ctx, 0, x1)
	want := selectTopK(f.ExpertMass(ctx, x1).Data, 10, 8, 2, PerRequest)
	if !slices.Equal(first.IDs, want.IDs) || !first.Shared {
		t.Fatalf("first selection %v, want the per-request top-2 %v", first.IDs, want.IDs)
	}
	for range 5 {
		x := tensor.FromData(randSlice(r, 16, 2), 1, 16)
		if s := p.Select(ctx, 0, x); !slices.Equal(s.IDs, first.Token(0)) {
			t.Fatalf("later step chose %v, pinned %v", s.IDs, first.Token(0))
		}
	}
	other := p.Select(ctx, 1, x1)
	wantOther := selectTopK(g.ExpertMass(ctx, x1).Data, 10, 8, 2, PerRequest)
	if !slices.Equal(other.IDs, wantOther.IDs) {
		t.Fatalf("layer 1 %v, want its own choice %v", other.IDs, wantOther.IDs)
	}
	if p.Name() != "oracle:2/request/pinned" {
		t.Errorf("name %q", p.Name())
	}
}

func ExampleTopK() {
	f, _ := NewFFN( // C 2, N 4, E 2
		[]float32{1, 0, 0, 1, -1, 0, 0, -1}, nil,
		[]float32{1, 1, 1, 1, 0, 0, 0, 0}, nil, 2, 4, 2)
	r, _ := NewTopK(Oracle{FFNs: []*FFN{f}}, 1, PerToken, []int{f.E})
	ctx := tensor.NewCtx()
	x := tensor.FromData([]float32{1, 2, -3, -1}, 2, 2) // expert 0 fires on the first token, 1 on the second
	sel := r.Select(ctx, 0, x)
	fmt.Println(r.Name(), sel.IDs, f.Forward(ctx, x, sel, nil).Data)
	// Output: oracle:1 [0 1] [3 0 4 0]
}
