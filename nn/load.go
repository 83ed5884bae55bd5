package nn

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/chorus-asr/chorus/tensor"
)

// Source gives checkpoint tensors by name. F16 data may be returned instead of F32 when the
// checkpoint stores half precision; the loader converts unless the field can keep it.
type Source interface {
	Lookup(name string) (shape []int, f32 []float32, f16 []uint16, ok bool)
}

// ErrMissing is wrapped by Load for a tensor the checkpoint lacks.
var ErrMissing = errors.New("missing tensor")

// LoadOptions tune Load.
type LoadOptions struct {
	// KeepF16 keeps half-precision Linear weights as they are stored (W16) instead of
	// converting them to float32.
	KeepF16 bool
}

// Load fills every *tensor.T reachable from v (a pointer to a struct) through fields tagged
// `ckpt:"name"`; names join with "." along the path, slice elements add their index. The
// tensor's declared Shape must match the checkpoint's. It returns an error naming any missing
// or mis-shaped tensor, and the names it used, so callers can report unused ones.
func Load(v any, src Source, opts LoadOptions) (used []string, err error) {
	l := loader{src: src, opts: opts}
	if err := l.walk(reflect.ValueOf(v), ""); err != nil {
		return nil, err
	}
	return l.used, nil
}

type loader struct {
	src  Source
	opts LoadOptions
	used []string
}

func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

var tensorType = reflect.TypeOf((*tensor.T)(nil))

func (l *loader) walk(v reflect.Value, prefix string) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return l.walk(v.Elem(), prefix)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := l.walk(v.Index(i), join(prefix, fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("ckpt")
		if !ok || !f.IsExported() {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		optional := strings.Contains(flags, "optional")
		fv := v.Field(i)
		full := join(prefix, name)
		if f.Type == tensorType {
			if fv.IsNil() {
				continue // not declared for this configuration (e.g. a bias the layer lacks)
			}
			var w16 *[]uint16
			if lin, ok := v.Addr().Interface().(*Linear); ok && f.Name == "W" && l.opts.KeepF16 {
				w16 = &lin.W16
			}
			keep, err := l.fill(fv.Interface().(*tensor.T), full, optional, w16)
			if err != nil {
				return err
			}
			if keep == false && optional {
				fv.Set(reflect.Zero(f.Type))
			}
			if w16 != nil && *w16 != nil {
				fv.Set(reflect.Zero(f.Type))
			}
			continue
		}
		if err := l.walk(fv, full); err != nil {
			return err
		}
	}
	return nil
}

// fill loads one tensor; it reports false when an optional tensor is absent.
func (l *loader) fill(t *tensor.T, name string, optional bool, w16 *[]uint16) (bool, error) {
	shape, f32, f16, ok := l.src.Lookup(name)
	if !ok {
		if optional {
			return false, nil
		}
		return false, fmt.Errorf("%w %s (want shape %v)", ErrMissing, name, t.Shape)
	}
	if !tensor.SameShape(shape, t.Shape) {
		return false, fmt.Errorf("tensor %s has shape %v, want %v", name, shape, t.Shape)
	}
	n := tensor.Numel(shape)
	l.used = append(l.used, name)
	switch {
	case f32 != nil:
		if len(f32) != n {
			return false, fmt.Errorf("tensor %s: %d values for shape %v", name, len(f32), shape)
		}
		t.Data = f32
	case f16 != nil:
		if len(f16) != n {
			return false, fmt.Errorf("tensor %s: %d values for shape %v", name, len(f16), shape)
		}
		if w16 != nil {
			*w16 = f16
			return true, nil
		}
		t.Data = make([]float32, n)
		tensor.F16ToF32Slice(t.Data, f16)
	default:
		return false, fmt.Errorf("tensor %s has no data", name)
	}
	return true, nil
}

// Collect is the inverse of Load: it returns every tensor reachable from v through `ckpt`
// tags, keyed by full name, in declaration order. Half-precision Linear weights are widened
// to float32.
func Collect(v any) (map[string]*tensor.T, []string) {
	out := map[string]*tensor.T{}
	var order []string
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem(), prefix)
			}
			return
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), join(prefix, fmt.Sprint(i)))
			}
			return
		case reflect.Struct:
		default:
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("ckpt")
			if !ok || !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			full := join(prefix, name)
			fv := v.Field(i)
			if f.Type != tensorType {
				walk(fv, full)
				continue
			}
			tt, _ := fv.Interface().(*tensor.T)
			if tt == nil {
				if lin, ok := v.Addr().Interface().(*Linear); ok && f.Name == "W" && lin.W16 != nil {
					tt = tensor.FromData(lin.Weight(), lin.Out, lin.In)
				} else {
					continue
				}
			}
			out[full] = tt
			order = append(order, full)
		}
	}
	walk(reflect.ValueOf(v), "")
	return out, order
}
