package speech

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/training/moefy"
)

// tinyMoE writes a tiny ReLU variant split into 4 experts per block (identity layout) with
// seeded, untrained MLP routers, as `chorus moe --out` would, and returns its folder.
func tinyMoE(t *testing.T, dir string) string {
	t.Helper()
	from, _ := tinyVariant(t, dir, "dense", func(d *whisper.Dims) { d.EncoderFFN, d.DecoderFFN = 64, 64 })
	v, err := asr.Open(from, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := &moefy.Result{Layout: &experts.ExpertLayout{}, Routers: &experts.MLP{}}
	enc := len(v.Model.Encoder.Layers)
	for i, m := range moe.MLPs(v.Model) {
		name := moe.LayerName(i, enc)
		r := experts.NewMLPLayer(v.Model.Dims.NAudioState, 8, 4, uint64(i))
		res.Layout.Layers = append(res.Layout.Layers, experts.LayerLayout{Name: name, Neurons: m.FC1.Out, Experts: 4,
			Method: experts.MethodIdentity, Router: &experts.RouterDesc{Kind: "mlp", Hidden: 8, Scale: 1, Prefix: name + ".router"}})
		f, err := experts.FromLinear(&m.FC1, &m.FC2, 4)
		if err != nil {
			t.Fatal(err)
		}
		res.FFNs = append(res.FFNs, f)
		res.Routers.Layers = append(res.Routers.Layers, r)
	}
	out := filepath.Join(dir, "moe")
	if err := moefy.Save(out, v, res, map[string]any{"name": "tiny-moe"}, moefy.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunRoute runs a routed fine-tune end to end on a tiny MoE variant: the trained variant
// keeps the layout and the routers (unchanged, as training leaves them), serves the route as
// its default routing, and its experts' weights moved; a route over a dense variant or with
// a router a training pass cannot follow stops the run before training with a clear error.
func TestRunRoute(t *testing.T) {
	dir := t.TempDir()
	from := tinyMoE(t, dir)
	src, err := asr.Open(from, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("routed", from, man)
	r.Route = "mlp:2"
	r.Optim.PeakLR, r.Optim.Steps = 1e-2, 3
	_, v := runTiny(t, r, dir)
	got, ok := v.Experts.(*moe.Set)
	if !ok {
		t.Fatalf("trained variant has no experts (%T)", v.Experts)
	}
	if d := v.Chorus.Routing; d == nil || d.Router != "mlp" || d.K != 2 {
		t.Errorf("default routing %+v, want mlp with k 2", d)
	}
	want := src.Experts.(*moe.Set)
	for i, l := range got.MLP.Layers {
		if w := want.MLP.Layers[i]; l == nil || maxDiff(l.W1, w.W1) != 0 || maxDiff(l.B2, w.B2) != 0 {
			t.Errorf("router %d changed or lost", i)
		}
	}
	if maxDiff(v.Model.Encoder.Layers[0].MLP.FC1.Weight(), src.Model.Encoder.Layers[0].MLP.FC1.Weight()) == 0 {
		t.Error("training did not change the experts")
	}
	if res, err := v.Transcribe(t.Context(), make([]float32, 16000), transcribe.DefaultOptions()); err != nil || res == nil {
		t.Fatalf("transcribe with the routed variant: %v", err)
	}

	dense, _ := tinyVariant(t, t.TempDir(), "dense", nil)
	for _, tc := range []struct{ from, route, want string }{
		{dense, "mlp:2", "not a mixture-of-experts variant"},
		{from, "oracle:2", "want mlp or random"},
		{from, "mlp:2/request", "per token"},
		{from, "mlp:9", "routing"},
	} {
		r := tinyRecipe("bad", tc.from, man)
		r.Route = tc.route
		err := Run(t.Context(), r, RunOptions{Work: filepath.Join(t.TempDir(), "work")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("route %q from %s: err %v, want one saying %q", tc.route, filepath.Base(tc.from), err, tc.want)
		}
	}
}

func maxDiff(a, b []float32) float32 {
	if len(a) != len(b) {
		return 1
	}
	var d float32
	for i := range a {
		d = max(d, a[i]-b[i], b[i]-a[i])
	}
	return d
}

// TestRouteRecipeErrors: a route without a variant to start from, beside an upcycle block,
// or in a syntax asr.ParseRoutingChoice refuses is refused when the recipe is read.
func TestRouteRecipeErrors(t *testing.T) {
	base := `{"name":"r","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	checkRecipeErrors(t, map[string]string{
		"mixture-of-experts variant to start from": base + `"route":"mlp:0.25"}`,
		"no upcycle block":                         base + `"from":"v","route":"mlp:0.25","upcycle":{"experts":4,"top_k":1}}`,
		"unknown router":                           base + `"from":"v","route":"lstm:0.25"}`,
		"outside (0, 1]":                           base + `"from":"v","route":"mlp:1.5"}`,
	})
}

// TestRunKD: a fine-tune with logit distillation from its parent logs the distillation
// term beside the speech loss; it is zero on the first step, when the student is still the
// teacher, and grows once the student's weights move. A kd block without a parent or with a
// weight outside (0, 1) is refused when the recipe is read.
func TestRunKD(t *testing.T) {
	dir := t.TempDir()
	from, _ := tinyVariant(t, dir, "dense", nil)
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("kd", from, man)
	r.KD = &KDRecipe{Logit: 0.5}
	r.Optim.PeakLR, r.Optim.Steps = 1e-2, 3
	work, _ := runTiny(t, r, dir)
	f, err := os.Open(filepath.Join(work, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("train.csv: %d rows, %v", len(rows), err)
	}
	col := slices.Index(rows[0], "loss/kd_logit")
	if col < 0 {
		t.Fatalf("train.csv columns %v: no loss/kd_logit", rows[0])
	}
	kd := make([]float64, 3)
	for i := range kd {
		if kd[i], err = strconv.ParseFloat(rows[i+1][col], 64); err != nil {
			t.Fatal(err)
		}
	}
	if kd[0] > 1e-6 || !(kd[2] > 1e-4) {
		t.Errorf("kd terms %v: want 0 on the first step, positive once the student moved", kd)
	}

	// Another teacher (two encoder layers): its logits differ from the student's at once.
	teacher, _ := tinyVariant(t, dir, "teacher", func(d *whisper.Dims) { d.NAudioLayer = 2 })
	r = tinyRecipe("kd-teacher", from, man)
	r.KD, r.Teacher = &KDRecipe{Logit: 0.5}, teacher
	r.Optim.Steps = 1
	twork := filepath.Join(t.TempDir(), "work")
	if err := Run(t.Context(), r, RunOptions{Work: twork}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(twork, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err = csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("train.csv of the run with a teacher: %d rows, %v", len(rows), err)
	}
	if v, _ := strconv.ParseFloat(rows[1][slices.Index(rows[0], "loss/kd_logit")], 64); !(v > 1e-4) {
		t.Errorf("kd term %g on the first step from another teacher, want it positive", v)
	}
	r.Teacher = filepath.Join(dir, "missing")
	if err := Run(t.Context(), r, RunOptions{Work: filepath.Join(t.TempDir(), "work")}); err == nil || !strings.Contains(err.Error(), "kd teacher") {
		t.Errorf("missing teacher: err %v", err)
	}

	base := `{"name":"k","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	checkRecipeErrors(t, map[string]string{
		"needs a variant to start from": base + `"kd":{"logit":0.5}}`,
		"logit in (0, 1)":               base + `"from":"v","kd":{"logit":1}}`,
		"needs a kd block":              base + `"from":"v","teacher":"t"}`,
	})
}
