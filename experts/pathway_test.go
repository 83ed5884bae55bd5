package experts

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sel builds a per-token selection from explicit expert lists of equal length.
func sel(e int, tokens ...[]int32) Selection {
	s := Selection{E: e, K: len(tokens[0])}
	for _, t := range tokens {
		s.IDs = append(s.IDs, t...)
	}
	return s
}

// TestLayerStatsHandComputed: three tokens using {0,1}, {0,2}, {0,1} of 3 experts.
func TestLayerStatsHandComputed(t *testing.T) {
	var p Pathway
	p.Record(0, sel(3, []int32{0, 1}, []int32{0, 2}, []int32{0, 1}))
	st := p.Stats()[0]
	if st.Tokens != 3 || !slices.Equal(st.Counts, []int64{3, 2, 1}) {
		t.Fatalf("tokens %d counts %v", st.Tokens, st.Counts)
	}
	if u := st.Utilisation(); !slices.Equal(u, []float64{1, 2.0 / 3, 1.0 / 3}) {
		t.Errorf("utilisation %v", u)
	}
	wantCo := []int64{
		3, 2, 1,
		2, 2, 0,
		1, 0, 1,
	}
	if !slices.Equal(st.Co, wantCo) {
		t.Errorf("co-activation %v, want %v", st.Co, wantCo)
	}
	if co := st.CoActivation(); co[1] != 2.0/3 || co[5] != 0 {
		t.Errorf("co-activation fractions %v", co)
	}
	// load shares 3/6, 2/6, 1/6
	want := -(0.5*math.Log2(0.5) + math.Log2(1.0/3)/3 + math.Log2(1.0/6)/6)
	if h := st.Entropy(); math.Abs(h-want) > 1e-12 {
		t.Errorf("entropy %.6f, want %.6f", h, want)
	}
}

func TestEntropyBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Selection
		want float64
	}{
		{"uniform over 8", sel(8, []int32{0, 1, 2, 3}, []int32{4, 5, 6, 7}), 3},
		{"one expert", sel(8, []int32{5}, []int32{5}, []int32{5}), 0},
		{"dense", All(10, 4), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Pathway
			p.Record(0, tc.s)
			if h := p.Stats()[0].Entropy(); math.Abs(h-tc.want) > 1e-12 {
				t.Errorf("entropy %g, want %g", h, tc.want)
			}
		})
	}
}

// TestAggregate: aggregating two requests equals the stats of one request holding both, and a
// pathway of a different layout is refused without changing the aggregate.
func TestAggregate(t *testing.T) {
	r := newRNG(8)
	a, b, both := Pathway{Request: "a"}, Pathway{Request: "b"}, Pathway{}
	for l, e := range []int{16, 70} {
		s1, s2 := randSelection(r, 40, e, 5, false), randSelection(r, 9, e, 5, true)
		a.Record(l, s1)
		b.Record(l, s2)
		both.Record(l, s1)
		both.Record(l, s2)
	}
	var agg Aggregate
	if err := agg.Add(&a); err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(&b); err != nil {
		t.Fatal(err)
	}
	if want := both.Stats(); !reflect.DeepEqual(agg.Layers, want) || agg.Requests != 2 {
		t.Fatalf("aggregate differs from the joint pathway's stats")
	}
	var bad Pathway
	bad.Record(1, randSelection(r, 3, 32, 2, false))
	before := agg.Layers[1].Tokens
	if err := agg.Add(&bad); err == nil || agg.Layers[1].Tokens != before || agg.Requests != 2 {
		t.Fatalf("mismatched layout: err %v, tokens %d → %d", err, before, agg.Layers[1].Tokens)
	}
}

// TestPathwayJSONL: the export reads back to the same pathways (interleaved requests, expert
// counts that are not multiples of 8 or span two words), and a pinned line documents the
// format.
func TestPathwayJSONL(t *testing.T) {
	var small Pathway
	small.Request = "req-1"
	small.Record(0, sel(10, []int32{0, 9}, []int32{1, 8}))
	small.Layers[0].Name = "encoder.0"
	var buf bytes.Buffer
	if err := small.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	// token 0: bits 0 and 9 → bytes 0x01 0x02; token 1: bits 1 and 8 → 0x02 0x01
	const golden = `{"request":"req-1","layer":0,"name":"encoder.0","experts":10,"tokens":2,"masks":"AQICAQ=="}` + "\n"
	if buf.String() != golden {
		t.Fatalf("got  %s\nwant %s", buf.String(), golden)
	}

	r := newRNG(10)
	var in []*Pathway
	for i, req := range []string{"a", "b"} {
		p := &Pathway{Request: req}
		p.Record(0, randSelection(r, 17+i, 3, 2, false))
		p.Record(2, randSelection(r, 5, 70, 9, false))
		p.Record(2, All(2, 70))
		in = append(in, p)
	}
	buf.Reset()
	for _, p := range in {
		if err := p.WriteJSONL(&buf); err != nil {
			t.Fatal(err)
		}
	}
	out, err := ReadJSONL(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip differs:\n%+v\n%+v", out[0], in[0])
	}
}

func TestReadJSONLRejects(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"not json", `{"request":`},
		{"bad base64", `{"request":"a","layer":0,"experts":8,"tokens":1,"masks":"!!"}`},
		{"short masks", `{"request":"a","layer":0,"experts":16,"tokens":2,"masks":"AQI="}`},
		{"expert beyond E", `{"request":"a","layer":0,"experts":3,"tokens":1,"masks":"CA=="}`},
		{"no experts", `{"request":"a","layer":0,"experts":0,"tokens":0,"masks":""}`},
		{"negative layer", `{"request":"a","layer":-1,"experts":8,"tokens":0,"masks":""}`},
		{"repeated layer", `{"request":"a","layer":0,"experts":8,"tokens":0,"masks":""}` + "\n" + `{"request":"a","layer":0,"experts":8,"tokens":0,"masks":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadJSONL(strings.NewReader(tc.line)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
