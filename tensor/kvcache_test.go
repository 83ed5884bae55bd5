package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// fillCache appends k, v [tk, H·D] to c in chunks of 1 to 40 positions, so chunks start and
// end inside key panels.
func fillCache(r *rand.Rand, c *KVCache, k, v []float32, tk int) {
	w := c.Width()
	for j := 0; j < tk; {
		s := min(tk-j, 1+r.IntN(40))
		c.Append(k[j*w:(j+s)*w], v[j*w:(j+s)*w], s)
		j += s
	}
}

// rounded returns x rounded to half precision and back.
func rounded(x []float32) []float32 {
	h := make([]uint16, len(x))
	F32ToF16Slice(h, x)
	out := make([]float32, len(x))
	F16ToF32Slice(out, h)
	return out
}

// TestKVCacheLayout checks the cache layout exactly: what goes in comes out of Unpack (rounded
// to half in a half cache), the C store matches its Go twin bit for bit, and Truncate,
// CopyFrom and the capacity behave.
func TestKVCacheLayout(t *testing.T) {
	r := newRNG(30)
	for _, s := range []struct{ limit, tk, heads, d int }{
		{1, 1, 1, 1}, {33, 33, 2, 3}, {100, 77, 3, 17}, {448, 300, 6, 64}, {1500, 1500, 2, 64},
	} {
		for _, half := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/half=%v", s, half), func(t *testing.T) {
				w := s.heads * s.d
				k, v := randSlice(r, s.tk*w, 2), randSlice(r, s.tk*w, 2)
				c := NewKVCache(s.limit, s.heads, s.d, half)
				fillCache(r, c, k, v, s.tk)
				if c.Len() != s.tk || c.Half() != half || c.Cap() != s.limit {
					t.Fatalf("len %d half %v cap %d", c.Len(), c.Half(), c.Cap())
				}
				wantK, wantV := k, v
				if half {
					wantK, wantV = rounded(k), rounded(v)
				}
				gk, gv := make([]float32, s.tk*w), make([]float32, s.tk*w)
				c.Unpack(gk, gv)
				checkClose(t, "k", gk, wantK, []float32{0}, 0)
				checkClose(t, "v", gv, wantV, []float32{0}, 0)

				// The Go twin writes the same bits.
				g := NewKVCache(s.limit, s.heads, s.d, half)
				if half {
					kvStoreGo(g.k16, g.v16, k, v, 0, s.tk, g.lp, s.heads, s.d, F32ToF16)
					for i := range g.k16 {
						if g.k16[i] != c.k16[i] || g.v16[i] != c.v16[i] {
							t.Fatalf("Go store differs at %d", i)
						}
					}
				} else {
					kvStoreGo(g.k, g.v, k, v, 0, s.tk, g.lp, s.heads, s.d, id32)
					checkClose(t, "go store k", g.k, c.k, []float32{0}, 0)
					checkClose(t, "go store v", g.v, c.v, []float32{0}, 0)
				}

				// CopyFrom, then Truncate and re-append a different tail.
				cp := NewKVCache(s.limit, s.heads, s.d, half)
				cp.CopyFrom(c)
				n := s.tk / 2
				cp.Truncate(n)
				k2, v2 := randSlice(r, (s.tk-n)*w, 2), randSlice(r, (s.tk-n)*w, 2)
				cp.Append(k2, v2, s.tk-n)
				copy(k[n*w:], k2)
				copy(v[n*w:], v2)
				wantK, wantV = k, v
				if half {
					wantK, wantV = rounded(k), rounded(v)
				}
				cp.Unpack(gk, gv)
				checkClose(t, "k after truncate", gk, wantK, []float32{0}, 0)
				checkClose(t, "v after truncate", gv, wantV, []float32{0}, 0)
			})
		}
	}
	t.Run("full", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("no panic appending past the capacity")
			}
		}()
		c := NewKVCache(3, 1, 2, false)
		c.Append(make([]float32, 8), make([]float32, 8), 4)
	})
}

// TestAttentionKV checks AttentionKV against AttentionNaive on the values the cache holds,
// in float32 and half caches, with every kernel variant and split.
func TestAttentionKV(t *testing.T) {
	r := newRNG(31)
	shapes := append([]struct {
		tq, tk, heads, d int
		causal           bool
	}{{1, 33, 2, 16, true}, {3, 31, 1, 65, true}, {4, 1500, 8, 64, false}, {1, 448, 6, 64, true}, {30, 200, 3, 64, true}}, attnShapes...)
	for _, s := range shapes {
		for _, half := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/half=%v", s, half), func(t *testing.T) {
				w := s.heads * s.d
				q, k, v := randSlice(r, s.tq*w, 1), randSlice(r, s.tk*w, 1), randSlice(r, s.tk*w, 1)
				c := NewKVCache(s.tk+r.IntN(70), s.heads, s.d, half)
				fillCache(r, c, k, v, s.tk)
				if half {
					k, v = rounded(k), rounded(v)
				}
				want := make([]float32, s.tq*w)
				AttentionNaive(want, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
				ref := make([]float32, s.tq*w)
				AttentionKVNaive(ref, q, c, s.tq, s.causal)
				checkClose(t, "naive", ref, want, []float32{0}, 0)
				for _, cfg := range []struct {
					name        string
					chorus      int
					scoreFloats int
					level       int
				}{
					{"serial", 1, 1 << 16, 0},
					{"parallel", 2, 1 << 16, 0},
					{"three", 3, 1 << 16, 0},
					{"small-blocks", 2, 3 * s.tk, 0}, // several row blocks per head on the fused path
					{"avx2", 2, 1 << 16, 1},          // the fused AVX2 tiles for decoding too
				} {
					got := randSlice(r, s.tq*w, 5)
					old := attnScoreFloats
					attnScoreFloats = cfg.scoreFloats
					if cfg.level > 0 {
						setSIMDLevel(cfg.level)
					}
					withThreads(t, cfg.chorus, 1, func() { AttentionKV(got, q, c, s.tq, s.causal) })
					setSIMDLevel(simdLevel)
					attnScoreFloats = old
					checkClose(t, cfg.name, got, want, []float32{attnAtol}, 0)
				}
			})
		}
	}
}

func TestAttentionKVPanics(t *testing.T) {
	// Each case gets its own cache: map order is random, and a case that appends keys must
	// not turn "no keys" into a cache with keys.
	for name, f := range map[string]func(c *KVCache){
		"no keys": func(c *KVCache) { AttentionKV(make([]float32, 4), make([]float32, 4), c, 1, false) },
		"causal tq > tk": func(c *KVCache) {
			c.Append(make([]float32, 4), make([]float32, 4), 1)
			AttentionKV(make([]float32, 8), make([]float32, 8), c, 2, true)
		},
		"short q": func(c *KVCache) {
			c.Append(make([]float32, 4), make([]float32, 4), 1)
			AttentionKV(make([]float32, 8), make([]float32, 7), c, 2, false)
		},
	} {
		c := NewKVCache(8, 1, 4, false)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(c)
		}()
	}
}

func FuzzAttentionKV(f *testing.F) {
	for _, s := range []uint64{0, 1, 7, 99} {
		f.Add(s, uint8(1), uint16(1), uint8(1), uint8(1), true, false)
		f.Add(s, uint8(3), uint16(100), uint8(3), uint8(17), true, true)
		f.Add(s, uint8(12), uint16(400), uint8(2), uint8(64), false, true)
	}
	f.Fuzz(func(t *testing.T, seed uint64, tq uint8, tk uint16, heads, d uint8, causal, half bool) {
		TQ, TK, H, D := 1+int(tq%12), 1+int(tk%600), 1+int(heads%6), 1+int(d%70)
		if causal && TQ > TK {
			TQ, TK = TK, TQ
		}
		defer fuzzLevel(seed)()
		r := newRNG(seed)
		w := H * D
		q, k, v := randSlice(r, TQ*w, 1), randSlice(r, TK*w, 1), randSlice(r, TK*w, 1)
		c := NewKVCache(TK+int(seed%50), H, D, half)
		fillCache(r, c, k, v, TK)
		want := make([]float32, TQ*w)
		AttentionKVNaive(want, q, c, TQ, causal)
		got := randSlice(r, TQ*w, 3)
		ch, _ := fuzzThreads(seed)
		withThreads(t, ch, 1, func() { AttentionKV(got, q, c, TQ, causal) })
		checkClose(t, "attention-kv", got, want, []float32{attnAtol}, 0)
	})
}

// BenchmarkAttentionKV is one decoding step's attention over Whisper tiny's caches (1500
// audio positions, 224 tokens), float32 and half, against Attention on row-major data.
// The caches fit in L2/L3 here, so this measures the kernels, not the memory traffic a real
// decoding step pays (see asr/bench).
func BenchmarkAttentionKV(b *testing.B) {
	r := newRNG(33)
	for _, s := range []struct {
		name   string
		tk     int
		causal bool
	}{{"cross-1500", 1500, false}, {"self-224", 224, true}} {
		const heads, d = 6, 64
		w := heads * d
		q, k, v := randSlice(r, w, 1), randSlice(r, s.tk*w, 1), randSlice(r, s.tk*w, 1)
		out := make([]float32, w)
		flops := 4 * float64(s.tk*w)
		benchThreads(b, s.name+"/rows", func(b *testing.B) {
			for b.Loop() {
				Attention(out, q, k, v, 1, s.tk, heads, d, s.causal)
			}
			report(b, flops, 0)
		})
		for _, half := range []bool{false, true} {
			c := NewKVCache(s.tk, heads, d, half)
			c.Append(k, v, s.tk)
			name := s.name + "/kv-f32"
			if half {
				name = s.name + "/kv-f16"
			}
			benchThreads(b, name, func(b *testing.B) {
				for b.Loop() {
					AttentionKV(out, q, c, 1, s.causal)
				}
				report(b, flops, 0)
			})
		}
	}
}
