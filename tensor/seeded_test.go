package tensor

import "testing"

// The first values are pinned so the NumPy twin in tools/ref can be checked against them.
func TestSeededUniformPinned(t *testing.T) {
	got := make([]float32, 4)
	SeededUniform(got, 1, "model.encoder.conv1.weight", 0, 1)
	again := make([]float32, 4)
	SeededUniform(again, 1, "model.encoder.conv1.weight", 0, 1)
	for i := range got {
		if got[i] != again[i] || got[i] < -1 || got[i] >= 1 {
			t.Fatalf("value %d = %v (again %v)", i, got[i], again[i])
		}
	}
	other := make([]float32, 4)
	SeededUniform(other, 2, "model.encoder.conv1.weight", 0, 1)
	if other[0] == got[0] {
		t.Fatalf("seed does not change values")
	}
	want := []float32{-0.5107825, 0.6316333, -0.5256318, -0.6102518}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("value %d = %v, want %v", i, got[i], want[i])
		}
	}
}
