// Package tensor holds chorus's float32 tensors and the kernels the Whisper model and its
// trainer run on. Kernels are free functions over flat row-major slices; each optimized kernel
// has a naive reference beside it (suffix Naive) that tests compare against.
//
// Shape legend used in kernel docs: M, N, K matrix dims; R rows, C columns; T time steps;
// Cin/Cout channels; H heads; D head width.
//
// Why not gorgonia.org/tensor: see docs/tensor.md (start-up panic on Go 1.26, 0.3–0.6 µs and
// 6–21 allocations per op, a 54× slower transpose). The hot path needs preallocated buffers
// and a real BLAS, so chorus keeps its own small type.
package tensor

import (
	"fmt"
	"strings"
)

// T is a dense row-major float32 tensor. Data is owned by the tensor unless it was built with
// FromData, in which case the caller keeps ownership rules (weights are never mutated).
type T struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape.
func New(shape ...int) *T {
	return &T{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// FromData wraps data (no copy) with a shape; it panics if the sizes disagree, which is a
// programming error, not bad input.
func FromData(data []float32, shape ...int) *T {
	if n := Numel(shape); n != len(data) {
		panic(fmt.Sprintf("tensor: %d values for shape %v (want %d)", len(data), shape, n))
	}
	return &T{Shape: append([]int(nil), shape...), Data: data}
}

// Numel is the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Len is the number of elements.
func (t *T) Len() int { return len(t.Data) }

// Dim returns the size of dimension i; negative i counts from the end.
func (t *T) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Row returns row i of a tensor viewed as [R, C] with C the last dimension (no copy).
func (t *T) Row(i int) []float32 {
	c := t.Shape[len(t.Shape)-1]
	return t.Data[i*c : (i+1)*c]
}

// Clone returns a deep copy.
func (t *T) Clone() *T {
	return &T{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// Reshape returns a view with a new shape of the same number of elements.
func (t *T) Reshape(shape ...int) *T {
	return FromData(t.Data, shape...)
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (t *T) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "T%v", t.Shape)
	if len(t.Data) <= 8 {
		fmt.Fprintf(&b, "%v", t.Data)
	}
	return b.String()
}
