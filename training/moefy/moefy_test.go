package moefy

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
)

const refText = "the quick brown fox jumps over the lazy dog while the band plays a slow song about rivers, mountains and the long road home"

var (
	fixtureOnce sync.Once
	fixDense    *asr.Variant
	fixMoE      *asr.Variant
	fixRef      []float32
	fixRes      *Result
	fixErr      error
)

// fixture MoE-fies the embedded default model (E = 16, k-means split, routers trained
// briefly on crops of testdata ref.wav), saves it and opens the saved folder, once.
func fixture(t *testing.T) (dense, moeV *asr.Variant, ref []float32) {
	t.Helper()
	fixtureOnce.Do(func() {
		dir := filepath.Join(t.TempDir(), "moe")
		fixDense, fixErr = defaultmodel.Open(asr.OpenOptions{})
		if fixErr != nil {
			return
		}
		fixRef, fixErr = audio.Load16kMono(filepath.Join("..", "..", "testdata", "audio", "ref.wav"))
		if fixErr != nil {
			return
		}
		rec, err := Record(context.Background(), fixDense, refClips(fixRef, 4), 0, nil)
		if err != nil {
			fixErr = err
			return
		}
		res, err := Build(fixDense, rec, Options{Experts: 16, Method: experts.MethodKMeans, RouterHidden: 16, Epochs: 3, Seed: 1}, nil)
		if err != nil {
			fixErr = err
			return
		}
		fixRes = res
		if fixErr = Save(dir, fixDense, res, map[string]any{"parent": "chorus-micro"}, SaveOptions{}); fixErr != nil {
			return
		}
		fixMoE, fixErr = asr.Open(dir, asr.OpenOptions{})
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixDense, fixMoE, fixRef
}

// refClips are n two-second crops of ref.wav, a quarter second apart, with its text: the
// recording the tests' MoE-fying runs on.
func refClips(ref []float32, n int) []Clip {
	var clips []Clip
	for off := range n {
		clips = append(clips, Clip{Samples: ref[off*4000 : off*4000+2*16000], Text: refText})
	}
	return clips
}

// logitsOf encodes samples (content window) and teacher-forces text, returning the
// features and all logits, under routing rt.
func logitsOf(t *testing.T, v *asr.Variant, samples []float32, c asr.RoutingChoice) ([]float32, []float32, *moe.Routing) {
	t.Helper()
	rt, err := v.Routing(c)
	if err != nil {
		t.Fatal(err)
	}
	st := v.Model.NewState(1)
	st.SetRouting(rt)
	feats := st.Encode(Window(samples, v.Model.Dims.NMels, true))
	sot, _ := v.Tokenizer.SOTSequence("en", "transcribe", false)
	toks := append(sot, v.Tokenizer.Encode(" "+refText)...)
	logits := st.AllLogits(0, toks)
	mr, _ := rt.(*moe.Routing)
	return feats.Data, logits.Data, mr
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestMoEVariantDenseIdentity: the saved MoE variant loads with its experts; run with no
// routing, with the dense router, or with every expert selected by the oracle, its permuted
// blocks give the original model's features within 1e-5 and logits within 5e-5 (the permutation only
// reorders a sum), while a sparse router changes them (the test could fail).
func TestMoEVariantDenseIdentity(t *testing.T) {
	dense, mv, ref := fixture(t)
	if mv.Experts == nil {
		t.Fatal("MoE variant loaded without experts")
	}
	samples := ref[:3*16000]
	wantF, wantL, _ := logitsOf(t, dense, samples, asr.RoutingChoice{})
	for _, c := range []asr.RoutingChoice{{}, {Router: "dense"}, {Router: "oracle", K: 16}, {Router: "mlp", Fraction: 1}} {
		gotF, gotL, _ := logitsOf(t, mv, samples, c)
		if d := maxDiff(gotF, wantF); d > 1e-5 {
			t.Errorf("%+v: features differ by %.3g", c, d)
		}
		// Logits are ~10 in size and sum the 256 features through the tied projection: the
		// permuted sum's rounding (which differs between BLAS kernels) reaches 1e-5.
		if d := maxDiff(gotL, wantL); d > 5e-5 {
			t.Errorf("%+v: logits differ by %.3g", c, d)
		}
	}
	_, sparse, _ := logitsOf(t, mv, samples, asr.RoutingChoice{Router: "mlp", K: 4})
	if d := maxDiff(sparse, wantL); d < 1e-3 {
		t.Errorf("mlp:4 logits equal the dense ones (diff %.3g): the sparse path did not run", d)
	}
}

// TestPathwayShape: a recorded pathway has every layer, the encoder layers one token per
// frame and the decoder layers one per fed token, each using exactly k experts; the
// routing's work counters agree.
func TestPathwayShape(t *testing.T) {
	_, mv, ref := fixture(t)
	for _, c := range []asr.RoutingChoice{{Router: "random", K: 4, Seed: 3}, {Router: "mlp", Fraction: 0.25, PerRequest: true}, {Router: "oracle", K: 2}, {Router: "dense"}} {
		c.Pathway = true
		feats, _, rt := logitsOf(t, mv, ref[:2*16000], c)
		p := rt.Pathway()
		frames := len(feats) / mv.Model.Dims.NAudioState
		enc, layers := len(mv.Model.Encoder.Layers), len(moe.MLPs(mv.Model))
		k := moe.K(c, 16)
		if c.Router == "dense" {
			k = 16
		}
		if len(p.Layers) != layers {
			t.Fatalf("%s: %d layers recorded, want %d", rt.Name(), len(p.Layers), layers)
		}
		var sum int64
		for i, lp := range p.Layers {
			if i < enc && lp.Tokens != frames {
				t.Errorf("%s %s: %d tokens, want %d frames", rt.Name(), lp.Name, lp.Tokens, frames)
			}
			if i >= enc && lp.Tokens != p.Layers[enc].Tokens {
				t.Errorf("%s %s: %d tokens, decoder layer 0 %d", rt.Name(), lp.Name, lp.Tokens, p.Layers[enc].Tokens)
			}
			for tok := range lp.Tokens {
				if n := len(lp.Experts(tok)); n != k {
					t.Fatalf("%s %s token %d used %d experts, want %d", rt.Name(), lp.Name, tok, n, k)
				}
			}
			sum += int64(lp.Tokens * k)
		}
		if used, all := rt.Work(); used != sum || all != sum*16/int64(k) {
			t.Errorf("%s: work %d of %d, pathway says %d of %d", rt.Name(), used, all, sum, sum*16/int64(k))
		}
	}
}

// TestRoutingRejects: choices the variant cannot honour are errors wrapping asr.ErrRouting,
// on the MoE variant and on the dense model alike.
func TestRoutingRejects(t *testing.T) {
	dense, mv, _ := fixture(t)
	for _, tc := range []struct {
		v *asr.Variant
		c asr.RoutingChoice
	}{
		{mv, asr.RoutingChoice{Router: "lstm", K: 4}},
		{mv, asr.RoutingChoice{Router: "mlp", K: 17}},
		{mv, asr.RoutingChoice{Router: "mlp", K: -1}},
		{mv, asr.RoutingChoice{Router: "random"}},
		{mv, asr.RoutingChoice{Router: "oracle", Fraction: 1.5}},
		{dense, asr.RoutingChoice{Router: "mlp", K: 4}},
	} {
		if _, err := tc.v.Routing(tc.c); !errors.Is(err, asr.ErrRouting) {
			t.Errorf("%s %+v: %v, want ErrRouting", tc.v.Name, tc.c, err)
		}
	}
	if rt, err := dense.Routing(asr.RoutingChoice{Router: "dense", Pathway: true}); rt != nil || err != nil {
		t.Errorf("dense model, dense router: %v, %v", rt, err)
	}
}

// TestOverlayEqualsVariant: the same MoE-fication written as an overlay over the base folder
// (layout marked unpermuted + routers only) and read through defaultmodel's overlay view
// gives exactly the full variant's features and logits under the MLP router; and the
// embedded chorus-micro-moe opens, is dense-identical to chorus-micro, and routes sparsely.
func TestOverlayEqualsVariant(t *testing.T) {
	dense, mv, ref := fixture(t)
	dir := filepath.Join(t.TempDir(), "overlay")
	if err := SaveOverlay(dir, defaultmodel.FS(), fixRes, map[string]any{"parent": "chorus-micro"}); err != nil {
		t.Fatal(err)
	}
	ovFS, err := defaultmodel.Overlay(os.DirFS(dir), defaultmodel.FS())
	if err != nil {
		t.Fatal(err)
	}
	ov, err := asr.OpenFS(ovFS, ".", "overlay", asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	samples := ref[:3*16000]
	c := asr.RoutingChoice{Router: "mlp", K: 4}
	wantF, wantL, _ := logitsOf(t, mv, samples, c)
	gotF, gotL, _ := logitsOf(t, ov, samples, c)
	if d := maxDiff(gotF, wantF); d > 1e-6 {
		t.Errorf("overlay features differ from the full variant's by %.3g", d)
	}
	if d := maxDiff(gotL, wantL); d > 1e-6 {
		t.Errorf("overlay logits differ from the full variant's by %.3g", d)
	}

	em, err := defaultmodel.OpenMoE(asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if em.Experts == nil {
		t.Fatal("embedded chorus-micro-moe has no experts")
	}
	// The embedded MoE is fine-tuned under its routers (its weights its own): its dense router
	// is close to chorus-micro, not equal, and routing changes its output.
	_, baseL, _ := logitsOf(t, dense, samples, asr.RoutingChoice{})
	_, denseL, _ := logitsOf(t, em, samples, asr.RoutingChoice{Router: "dense"})
	if d := maxDiff(denseL, baseL); d > 5 {
		t.Errorf("embedded MoE, dense router: logits differ from chorus-micro by %.3g", d)
	}
	_, sparseL, r := logitsOf(t, em, samples, asr.RoutingChoice{Router: "mlp", Fraction: 0.25})
	if d := maxDiff(sparseL, denseL); d < 1e-3 || r == nil {
		t.Errorf("embedded MoE, mlp at 1/4: logits diff %.3g from its dense router (routing %v)", d, r != nil)
	}
}

// TestSparsity: on the default (ReLU) model every layer has exact zeros and NonPositive
// equals Zero (ReLU never outputs a negative); the same weights with GELU have no exact
// zeros (fewer: only where GELU underflows, which grows as training makes pre-activations
// very negative) but the same share of non-positive
// activations, since the pre-activations are the same; Mass90 is a share in (0, 1].
func TestSparsity(t *testing.T) {
	dense, _, ref := fixture(t)
	rec, err := Record(context.Background(), dense, []Clip{{Samples: ref[:2*16000], Text: refText}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	relu, err := Sparsity(dense, rec)
	if err != nil {
		t.Fatal(err)
	}
	g, err := defaultmodel.Open(asr.OpenOptions{}) // the same weights, measured as if GELU
	if err != nil {
		t.Fatal(err)
	}
	g.Model.Dims.Activation = "gelu"
	gelu, err := Sparsity(g, rec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range relu {
		r, q := relu[i], gelu[i]
		t.Logf("%s: relu zero %.3f mass90 %.3f | gelu zero %.3f non-positive %.3f mass90 %.3f", r.Name, r.Zero, r.Mass90, q.Zero, q.NonPositive, q.Mass90)
		if r.Zero <= 0 || r.Zero != r.NonPositive || r.Mass90 <= 0 || r.Mass90 > 1 {
			t.Errorf("%s relu: %+v", r.Name, r)
		}
		if q.Zero >= r.Zero || math.Abs(q.NonPositive-r.Zero) > 1e-9 {
			t.Errorf("%s gelu: %+v (relu zero %.3f)", q.Name, q, r.Zero)
		}
	}
}

// TestHeadRouters: head routers trained on ref.wav's encoder passes rank the oracle's top
// heads better than chance on held-out tokens, save and reload with the variant, and route a
// stream's encoder (2 of the heads per request) where a variant without them refuses "mlp".
func TestHeadRouters(t *testing.T) {
	dense, mv, ref := fixture(t)
	res := *fixRes
	layout := *fixRes.Layout
	res.Layout = &layout
	var clips []Clip
	for off := range 6 {
		clips = append(clips, Clip{Samples: ref[off*3000 : off*3000+2*16000]})
	}
	reps, err := BuildHeads(context.Background(), dense, clips, &res, 16, 30, 0, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	var recall, random float64
	for _, r := range reps {
		recall += r.Recall / float64(len(reps))
		random += r.RandomRecall / float64(len(reps))
	}
	t.Logf("head routers: top-2 recall %.3f, random %.3f", recall, random)
	if recall < random+0.1 {
		t.Errorf("head routers' recall %.3f is not clearly above random %.3f", recall, random)
	}
	if _, err := mv.Routing(asr.RoutingChoice{Heads: 2, HeadRouter: "mlp"}); err == nil {
		t.Error("a variant without head routers accepted head router mlp")
	}
	dir := filepath.Join(t.TempDir(), "heads")
	if err := Save(dir, dense, &res, map[string]any{"parent": "chorus-micro"}, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	hv, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, denseL, _ := logitsOf(t, hv, ref[:3*16000], asr.RoutingChoice{})
	_, headL, rt := logitsOf(t, hv, ref[:3*16000], asr.RoutingChoice{Router: "dense", Heads: 2, HeadRouter: "mlp", PerRequest: true})
	if rt == nil || maxDiff(headL, denseL) < 1e-4 {
		t.Errorf("mlp head routing: routing %v, logits diff %.3g from dense", rt != nil, maxDiff(headL, denseL))
	}
	if used, all := rt.HeadWork(); used*2 != all {
		t.Errorf("head work %d of %d, want half", used, all)
	}
}

// TestDefaultRouting: a variant saved with a default routing runs it for requests that name
// no router (and for Transcribe, which names none), "dense" still runs every expert, and a
// default the variant cannot honour is refused when it is opened.
func TestDefaultRouting(t *testing.T) {
	dense, _, ref := fixture(t)
	dir := filepath.Join(t.TempDir(), "flag")
	if err := Save(dir, dense, fixRes, map[string]any{}, SaveOptions{Routing: &asr.RoutingDefault{Router: "mlp", Fraction: 0.25}}); err != nil {
		t.Fatal(err)
	}
	v, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[asr.RoutingChoice]string{{}: "mlp:4", {Router: "dense"}: "dense", {Router: "random", K: 2}: "random:2"} {
		rt, err := v.Routing(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.(*moe.Routing).Name(); got != want {
			t.Errorf("choice %+v runs %q, want %q", c, got, want)
		}
	}
	samples := ref[:3*16000]
	_, def, _ := logitsOf(t, v, samples, asr.RoutingChoice{})
	_, mlp, _ := logitsOf(t, v, samples, asr.RoutingChoice{Router: "mlp", K: 4})
	if d := maxDiff(def, mlp); d != 0 {
		t.Errorf("default routing differs from mlp:4 by %.3g", d)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := Save(bad, dense, fixRes, map[string]any{}, SaveOptions{Routing: &asr.RoutingDefault{Router: "mlp", K: 99}}); err != nil {
		t.Fatal(err)
	}
	if _, err := asr.Open(bad, asr.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "default routing") {
		t.Errorf("a default routing of 99 experts opened: %v", err)
	}
}

// TestKeepSplit: rebuilding the saved MoE variant with its own layout kept (routers only)
// leaves every stored block and permutation as they were — the rebuilt variant's dense
// outputs equal the original model's and its experts' weights equal the variant's — while
// the routers are trained afresh (a different seed gives different router weights) and find
// the oracle's experts better than chance. A gated layout is refused.
func TestKeepSplit(t *testing.T) {
	dense, mv, ref := fixture(t)
	l, err := experts.ParseLayout(mv.Chorus.Experts)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Record(t.Context(), mv, refClips(ref, 4), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(mv, rec, Options{Keep: l, RouterHidden: 16, Epochs: 3, Seed: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, ly := range res.Layout.Layers {
		if ly.Experts != l.Layers[i].Experts || !slices.Equal(ly.Perm, l.Layers[i].Perm) {
			t.Fatalf("%s: %d experts, perm changed: the split was not kept", ly.Name, ly.Experts)
		}
		if r := res.Reports[i]; r.Recall <= r.RandomRecall {
			t.Errorf("%s: router recall %.3f not above random %.3f", ly.Name, r.Recall, r.RandomRecall)
		}
		if slices.Equal(res.Routers.Layers[i].W1, fixRes.Routers.Layers[i].W1) {
			t.Errorf("%s: router weights unchanged", ly.Name)
		}
	}
	dir := filepath.Join(t.TempDir(), "kept")
	if err := Save(dir, mv, res, map[string]any{"parent": "moe"}, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	kept, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	samples := ref[:3*16000]
	wantF, wantL, _ := logitsOf(t, dense, samples, asr.RoutingChoice{})
	gotF, gotL, _ := logitsOf(t, kept, samples, asr.RoutingChoice{})
	if d, e := maxDiff(gotF, wantF), maxDiff(gotL, wantL); d > 1e-5 || e > 5e-5 {
		t.Errorf("rebuilt variant's dense outputs differ from the model's: features %.3g, logits %.3g", d, e)
	}
	a, b := kept.Model.Encoder.Layers[0].MLP.FC1.W.Data, mv.Model.Encoder.Layers[0].MLP.FC1.W.Data
	if !slices.Equal(a, b) {
		t.Error("the rebuilt variant's stored fc1 differs from the variant it kept")
	}
	gated := *l
	gated.Layers = slices.Clone(l.Layers)
	gated.Layers[0].Method = experts.MethodUpcycled
	if _, err := Build(mv, rec, Options{Keep: &gated, RouterHidden: 16}, nil); err == nil {
		t.Error("a gated layout was kept")
	}
}

// TestCarriesHeadAndLM: the MoE-fied variant keeps its parent's CTC head and language model
// (permuting FFN neurons leaves the encoder's output as it was).
func TestCarriesHeadAndLM(t *testing.T) {
	dense, moeV, _ := fixture(t)
	if dense.CTC == nil || dense.LM == nil {
		t.Fatal("the embedded default has no CTC head or language model: the test proves nothing")
	}
	if moeV.CTC == nil || maxDiff(moeV.CTC.W.Data, dense.CTC.W.Data) > 1e-3 || maxDiff(moeV.CTC.B.Data, dense.CTC.B.Data) > 0 {
		t.Error("the MoE variant's CTC head is not its parent's")
	}
	if moeV.LM == nil || !slices.Equal(moeV.LM.Grams(), dense.LM.Grams()) {
		t.Error("the MoE variant's language model is not its parent's")
	}
}
