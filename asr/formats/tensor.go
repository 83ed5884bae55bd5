package formats

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/chorus-asr/chorus/tensor"
)

// DType is the element type of a stored tensor. Only the floating types Whisper checkpoints
// use are representable; integer and 8-bit types are rejected by the readers.
type DType uint8

// Element types. The zero value is invalid so that a forgotten DType is caught by Validate.
const (
	F32  DType = iota + 1 // IEEE 754 binary32, kept in Tensor.F32
	F16                   // IEEE 754 binary16, raw bits kept in Tensor.F16
	BF16                  // bfloat16 (top half of a binary32), raw bits kept in Tensor.F16
)

// String returns the safetensors spelling of the type ("F32", "F16", "BF16").
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the number of bytes of one element, or 0 for an invalid type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// Tensor is one named tensor of a checkpoint. Shape is in PyTorch order (outermost first, the
// last dimension contiguous); an empty Shape is a scalar. Exactly one of F32 (for DType F32)
// and F16 (raw 16-bit patterns, for DType F16 and BF16) holds the Numel(Shape) elements; the
// half types stay unconverted so a checkpoint can be re-saved bit for bit.
type Tensor struct {
	Name  string
	Shape []int
	DType DType
	F32   []float32
	F16   []uint16
}

// NewF32 returns a float32 tensor wrapping data (no copy).
func NewF32(name string, shape []int, data []float32) *Tensor {
	return &Tensor{Name: name, Shape: append([]int(nil), shape...), DType: F32, F32: data}
}

// Numel is the number of elements the shape describes.
func (t *Tensor) Numel() int { return tensor.Numel(t.Shape) }

// Validate reports whether the tensor's type, shape and data agree.
func (t *Tensor) Validate() error {
	n, err := numel(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	var have int
	switch t.DType {
	case F32:
		have = len(t.F32)
		if t.F16 != nil {
			return fmt.Errorf("tensor %q: F32 tensor also carries 16-bit data", t.Name)
		}
	case F16, BF16:
		have = len(t.F16)
		if t.F32 != nil {
			return fmt.Errorf("tensor %q: %v tensor also carries float32 data", t.Name, t.DType)
		}
	default:
		return fmt.Errorf("tensor %q: invalid dtype %v", t.Name, t.DType)
	}
	if have != n {
		return fmt.Errorf("tensor %q: %d elements for shape %v (want %d)", t.Name, have, t.Shape, n)
	}
	return nil
}

// ToF32 returns the elements as float32. For an F32 tensor it returns F32 itself (weights are
// never mutated, so sharing is safe); half types are widened exactly into a new slice.
func (t *Tensor) ToF32() []float32 {
	switch t.DType {
	case F16:
		out := make([]float32, len(t.F16))
		for i, h := range t.F16 {
			out[i] = F16ToF32(h)
		}
		return out
	case BF16:
		out := make([]float32, len(t.F16))
		for i, h := range t.F16 {
			out[i] = BF16ToF32(h)
		}
		return out
	}
	return t.F32
}

// Convert returns the tensor in type d, rounding to nearest-even when narrowing. Converting to
// the tensor's own type returns t itself; otherwise the result shares no data with t.
func (t *Tensor) Convert(d DType) *Tensor {
	if d == t.DType {
		return t
	}
	out := &Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), DType: d}
	src := t.ToF32()
	switch d {
	case F32:
		out.F32 = src // fresh: t is a half type here
	case F16:
		out.F16 = make([]uint16, len(src))
		for i, v := range src {
			out.F16[i] = F32ToF16(v)
		}
	case BF16:
		out.F16 = make([]uint16, len(src))
		for i, v := range src {
			out.F16[i] = F32ToBF16(v)
		}
	}
	return out
}

// ToTensor returns the tensor as a chorus float32 tensor (see ToF32 for sharing).
func (t *Tensor) ToTensor() *tensor.T {
	return &tensor.T{Shape: append([]int(nil), t.Shape...), Data: t.ToF32()}
}

// Checkpoint is a set of named tensors plus string metadata. Order lists every key of Tensors
// exactly once: the order tensors were read in, and a hint to writers whose format has no
// fixed order of its own (safetensors imposes one; ggml follows Order).
type Checkpoint struct {
	Tensors  map[string]*Tensor
	Order    []string
	Metadata map[string]string
}

// NewCheckpoint returns an empty checkpoint.
func NewCheckpoint() *Checkpoint {
	return &Checkpoint{Tensors: map[string]*Tensor{}, Metadata: map[string]string{}}
}

// Add appends a tensor; adding a name twice is an error.
func (c *Checkpoint) Add(t *Tensor) error {
	if c.Tensors == nil {
		c.Tensors = map[string]*Tensor{}
	}
	if _, dup := c.Tensors[t.Name]; dup {
		return fmt.Errorf("duplicate tensor %q", t.Name)
	}
	c.Tensors[t.Name] = t
	c.Order = append(c.Order, t.Name)
	return nil
}

// Get returns the named tensor, or nil.
func (c *Checkpoint) Get(name string) *Tensor { return c.Tensors[name] }

// Names returns the tensor names in Order, or sorted when Order is empty (a checkpoint built
// by filling the map directly).
func (c *Checkpoint) Names() []string {
	if len(c.Order) > 0 || len(c.Tensors) == 0 {
		return append([]string(nil), c.Order...)
	}
	names := make([]string, 0, len(c.Tensors))
	for n := range c.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate checks that Order and Tensors agree (when Order is set), that each map key is its
// tensor's Name, and that every tensor is well formed.
func (c *Checkpoint) Validate() error {
	if len(c.Order) > 0 {
		if len(c.Order) != len(c.Tensors) {
			return fmt.Errorf("checkpoint order lists %d names for %d tensors", len(c.Order), len(c.Tensors))
		}
		seen := make(map[string]bool, len(c.Order))
		for _, n := range c.Order {
			if seen[n] {
				return fmt.Errorf("checkpoint order lists %q twice", n)
			}
			seen[n] = true
			if c.Tensors[n] == nil {
				return fmt.Errorf("checkpoint order lists %q, which has no tensor", n)
			}
		}
	}
	for _, k := range c.Names() { // sorted or in Order: the first error is deterministic
		t := c.Tensors[k]
		if t == nil {
			return fmt.Errorf("tensor %q is nil", k)
		}
		if t.Name != k {
			return fmt.Errorf("tensor stored as %q is named %q", k, t.Name)
		}
		if err := t.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// CheckpointFromTensors wraps chorus tensors (no copy) as an F32 checkpoint. order may be nil,
// in which case names are sorted.
func CheckpointFromTensors(m map[string]*tensor.T, order []string) (*Checkpoint, error) {
	c := NewCheckpoint()
	if order == nil {
		for n := range m {
			order = append(order, n)
		}
		sort.Strings(order)
	}
	if len(order) != len(m) {
		return nil, fmt.Errorf("order lists %d names for %d tensors", len(order), len(m))
	}
	for _, n := range order {
		t, ok := m[n]
		if !ok || t == nil {
			return nil, fmt.Errorf("tensor %q: not in map", n)
		}
		if err := c.Add(NewF32(n, t.Shape, t.Data)); err != nil {
			return nil, err
		}
	}
	return c, c.Validate()
}

var errShape = errors.New("invalid shape")

// numel multiplies out a shape, rejecting negative dimensions and products that overflow int
// (a hostile header can claim [2^40, 2^40]).
func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w %v: negative dimension", errShape, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("%w %v: element count overflows", errShape, shape)
		}
		n *= d
	}
	return n, nil
}
