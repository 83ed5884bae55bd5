package main

import "testing"

// TestExperimentSpec: the experiment command's flags become arms with routing and weights;
// bad input is refused before anything is sent.
func TestExperimentSpec(t *testing.T) {
	spec, err := experimentSpec("x", "dense,mlp:0.25/request,random:4", "2,1,0.5", "chorus-micro-moe", "", 0.1, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Arms) != 3 || spec.GetShadowFraction() != 0.1 || spec.GetSeed() != 7 {
		t.Fatalf("spec %v", spec)
	}
	a := spec.Arms[1]
	if a.GetName() != "mlp:0.25/request" || a.GetRouting().GetFraction() != 0.25 || a.GetRouting().GetMode().String() != "PER_REQUEST" || a.GetWeight() != 1 || a.GetModel() != "chorus-micro-moe" {
		t.Errorf("arm 1: %v", a)
	}
	if r := spec.Arms[2].GetRouting(); r.GetExperts() != 4 || spec.Arms[2].GetWeight() != 0.5 {
		t.Errorf("arm 2: %v", spec.Arms[2])
	}
	for _, tc := range []struct{ name, arms, weights string }{
		{"", "dense", ""},
		{"x", "", ""},
		{"x", "dense,mlp:0.25", "1"},
		{"x", "dense", "heavy"},
		{"x", "magic:1", ""},
	} {
		if _, err := experimentSpec(tc.name, tc.arms, tc.weights, "", "", 0, 0); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
}
