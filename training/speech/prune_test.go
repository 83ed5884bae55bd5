package speech

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneRecipeErrors: a prune recipe naming a missing teacher, an impossible target, an
// unknown granularity or no gate learning rate is refused when the recipe is read, before
// any data or model is loaded; an embedded variant's name is a teacher; the repository's
// prune recipe reads.
func TestPruneRecipeErrors(t *testing.T) {
	base := `{"name":"p","kind":"prune","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	cases := map[string]string{
		"teacher":            base + `"teacher":"/no/such/variant","prune":{"target":0.5,"gate_lr":0.1,"lambda_lr":0.1}}`,
		"target sparsity":    base + `"prune":{"target":1,"gate_lr":0.1,"lambda_lr":0.1}}`,
		"unknown prune kind": base + `"prune":{"target":0.5,"kinds":["rows"],"gate_lr":0.1,"lambda_lr":0.1}}`,
		"gate_lr":            base + `"prune":{"target":0.5}}`,
		"prune block":        base + `"teacher":""}`,
		"kind":               strings.Replace(base, `"prune"`, `"distil"`, 1) + `"prune":{"target":0.5,"gate_lr":0.1,"lambda_lr":0.1}}`,
		// A train recipe's kd teacher is checked the same way.
		"neither an embedded variant": `{"name":"k","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},"from":"v","teacher":"chorus-nano","kd":{"logit":0.5}}`,
	}
	checkRecipeErrors(t, cases)
	// An embedded variant's name is a teacher (openTeacher opens it from the binary).
	p := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(p, []byte(base+`"teacher":"chorus-micro","prune":{"target":0.5,"gate_lr":0.1,"lambda_lr":0.1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecipe(p); err != nil {
		t.Errorf("teacher chorus-micro: %v", err)
	}
	if v, err := openTeacher("chorus-micro"); err != nil || v.Model == nil {
		t.Errorf("openTeacher(chorus-micro): %v", err)
	}
	r, err := ReadRecipe("../../recipes/chorus-micro-prune-50.json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "prune" || r.Prune.Target != 0.5 {
		t.Fatalf("prune recipe read as %+v", r)
	}
}

// TestRunPruneHidden: a prune run that removes hidden dimensions (kind "hidden" alone, 30
// steps towards 60%) writes a variant whose stacks are narrower than the teacher's 32, whose
// CTC head kept the encoder's remaining columns, and which a fine-tune with the CTC term
// continues from (its head fits) to a variant of the same widths.
func TestRunPruneHidden(t *testing.T) {
	dir := t.TempDir()
	r, man := tinyPruneRecipe(t, dir, "hidden", 0.6, 0.5)
	r.Prune.Kinds = []string{"hidden"}
	r.Optim.Steps = 30
	r.Objective.CTCWeight = 0.3
	work, v := runTiny(t, r, dir)
	d := v.Model.Dims
	if d.NAudioState >= 32 || d.NTextState >= 32 {
		t.Fatalf("widths %d / %d: no hidden dimension removed", d.NAudioState, d.NTextState)
	}
	h := v.CTC
	if h == nil || h.W.Shape[1] != d.NAudioState {
		t.Fatalf("CTC head %v, want %d columns", h, d.NAudioState)
	}
	pruned := filepath.Join(dir, "pruned")
	if err := os.Rename(filepath.Join(work, "variant"), pruned); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(work)
	ft := tinyRecipe("hidden-ft", pruned, man)
	ft.Objective.CTCWeight = 0.3
	_, v2 := runTiny(t, ft, dir)
	if d2 := v2.Model.Dims; d2.NAudioState != d.NAudioState || d2.NTextState != d.NTextState {
		t.Errorf("fine-tuned widths %d / %d, want %d / %d", d2.NAudioState, d2.NTextState, d.NAudioState, d.NTextState)
	}
}
