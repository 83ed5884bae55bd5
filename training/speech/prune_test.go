package speech

import (
	"strings"
	"testing"
)

// TestPruneRecipeErrors: a prune recipe naming a missing teacher, an impossible target, an
// unknown granularity or no gate learning rate is refused when the recipe is read, before
// any data or model is loaded; the repository's prune recipe reads.
func TestPruneRecipeErrors(t *testing.T) {
	base := `{"name":"p","kind":"prune","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	cases := map[string]string{
		"teacher":            base + `"teacher":"/no/such/variant","prune":{"target":0.5,"gate_lr":0.1,"lambda_lr":0.1}}`,
		"target sparsity":    base + `"prune":{"target":1,"gate_lr":0.1,"lambda_lr":0.1}}`,
		"unknown prune kind": base + `"prune":{"target":0.5,"kinds":["rows"],"gate_lr":0.1,"lambda_lr":0.1}}`,
		"gate_lr":            base + `"prune":{"target":0.5}}`,
		"prune block":        base + `"teacher":""}`,
		"kind":               strings.Replace(base, `"prune"`, `"distil"`, 1) + `"prune":{"target":0.5,"gate_lr":0.1,"lambda_lr":0.1}}`,
	}
	checkRecipeErrors(t, cases)
	r, err := ReadRecipe("../../recipes/chorus-micro-prune-50.json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "prune" || r.Prune.Target != 0.5 {
		t.Fatalf("prune recipe read as %+v", r)
	}
}
