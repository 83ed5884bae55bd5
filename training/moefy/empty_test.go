package moefy

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/prune"
)

// TestEmptyBlock: a model whose encoder layer 1 lost its whole FFN to pruning (CoFi removes
// FFN sublayers) MoE-fies: that block gets an empty layout entry (no experts, no router) and
// every other block is split and routed as usual. The saved variant opens; dense, all-expert
// and sparse routings run; the all-expert ones give the pruned model's outputs; the pathway
// records nothing for the empty block and k experts per token elsewhere, and survives the
// JSONL export; the training route and a rebuilt set skip the empty block.
func TestEmptyBlock(t *testing.T) {
	dense, _, ref := fixture(t)
	st, err := prune.NewStructure(dense.Model.Dims)
	if err != nil {
		t.Fatal(err)
	}
	const empty = 1 // encoder layer 1
	z := prune.NewSet(st, 1)
	z[prune.Encoder][prune.FFN].Data[empty] = 0
	mat, err := prune.MaterialiseModel(dense.Model, z)
	if err != nil {
		t.Fatal(err)
	}
	pdir := filepath.Join(t.TempDir(), "pruned")
	if err := asr.Save(pdir, mat.Model, nil, dense.Tokenizer, asr.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	pv, err := asr.Open(pdir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := pv.Model.Encoder.Layers[empty].MLP.FC1.Out; n != 0 {
		t.Fatalf("pruned encoder layer %d kept %d units", empty, n)
	}
	rec, err := Record(t.Context(), pv, refClips(ref, 3), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(pv, rec, Options{Experts: 16, Method: experts.MethodKMeans, RouterHidden: 16, Epochs: 2, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers := len(moe.MLPs(pv.Model))
	if ly := res.Layout.Layers[empty]; ly.Method != experts.MethodEmpty || ly.Experts != 0 || ly.Router != nil || res.FFNs[empty] != nil {
		t.Fatalf("empty block's entry %+v (FFN %v)", ly, res.FFNs[empty])
	}
	if len(res.Reports) != layers-1 {
		t.Errorf("%d router reports, want %d (none for the empty block)", len(res.Reports), layers-1)
	}
	dir := filepath.Join(t.TempDir(), "moe")
	if err := Save(dir, pv, res, map[string]any{"parent": "pruned"}, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	mv, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set, ok := mv.Experts.(*moe.Set)
	if !ok {
		t.Fatalf("the saved variant opened without experts (%T)", mv.Experts)
	}
	if set.E[empty] != 0 || set.FFNs[empty] != nil {
		t.Fatalf("the opened set has %d experts in the empty block", set.E[empty])
	}

	samples := ref[:3*16000]
	wantF, wantL, _ := logitsOf(t, pv, samples, asr.RoutingChoice{})
	for _, c := range []asr.RoutingChoice{{}, {Router: "dense"}, {Router: "oracle", K: 16}, {Router: "mlp", Fraction: 1}, {Router: "random", K: 16}} {
		gotF, gotL, _ := logitsOf(t, mv, samples, c)
		if d, e := maxDiff(gotF, wantF), maxDiff(gotL, wantL); d > 1e-5 || e > 5e-5 {
			t.Errorf("%+v: features differ by %.3g, logits by %.3g", c, d, e)
		}
	}

	const k = 4
	_, sparse, rt := logitsOf(t, mv, samples, asr.RoutingChoice{Router: "mlp", K: k, Pathway: true})
	if d := maxDiff(sparse, wantL); d < 1e-3 {
		t.Errorf("mlp:%d logits equal the dense ones (diff %.3g): the sparse path did not run", k, d)
	}
	p := rt.Pathway()
	var sum int64
	for i, lp := range p.Layers {
		if i == empty {
			if lp.E != 0 || lp.Tokens != 0 {
				t.Errorf("empty block recorded %d tokens over %d experts", lp.Tokens, lp.E)
			}
			continue
		}
		if lp.E != 16 || lp.Tokens == 0 {
			t.Fatalf("%s: %d tokens over %d experts", lp.Name, lp.Tokens, lp.E)
		}
		for tok := range lp.Tokens {
			if n := len(lp.Experts(tok)); n != k {
				t.Fatalf("%s token %d used %d experts, want %d", lp.Name, tok, n, k)
			}
		}
		sum += int64(lp.Tokens * k)
	}
	if used, all := rt.Work(); used != sum || all != sum*16/k {
		t.Errorf("work %d of %d, the pathway says %d of %d", used, all, sum, sum*16/k)
	}
	var buf bytes.Buffer
	if err := p.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := experts.ReadJSONL(&buf)
	if err != nil || len(back) != 1 {
		t.Fatalf("pathway export read back: %d pathways, %v", len(back), err)
	}

	route, err := set.TrainingRoute(asr.RoutingChoice{Router: "mlp", K: k})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tensor.NewCtx()
	x := tensor.New(5, pv.Model.Dims.NAudioState)
	tensor.SeededUniform(x.Data, 3, "x", -1, 1)
	if g := route(ctx, empty, x); g != nil {
		t.Error("the training route masks the empty block")
	}
	if g := route(ctx, 0, x); g == nil || len(g.Data) != 5*16 {
		t.Error("the training route does not mask encoder block 0")
	}
	over, err := set.Over(mv.Model)
	if err != nil {
		t.Fatal(err)
	}
	if over.FFNs[empty] != nil || over.FFNs[0] == nil {
		t.Error("the rebuilt set does not keep the empty block empty")
	}
}
