// Package defaultmodel embeds chorus's default variant, chorus-micro, so that a fresh machine
// transcribes and serves with no download. The folder is the variant that `make train`
// writes (runs/chorus-micro/variant), copied here with its card.json; see its card for the
// recipe, data, steps, training time and measured WER/CER.
//
// It also embeds chorus-micro-moe, the default model MoE-fied (`make moe`): split into 64
// experts per layer with MLP routers, then fine-tuned under its routers, so a full variant
// folder of its own weights. (`chorus moe --overlay` writes the other form, an overlay of a
// few hundred kilobytes — the expert layout and routers — over the unchanged default's
// weights, which MoEFS reads as one folder when the embedded folder is one.) Opening it
// needs the experts/moe package linked in (it registers the expert builder with asr).
//
// And chorus-micro-flagship (`make flagship`): the default model pruned to half its encoder
// and decoder parameters (CoFi with distillation), then MoE-fied — a full variant folder, as
// its weights are its own. Names lists what a build embeds; OpenNamed opens any of them.
package defaultmodel

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/chorus-asr/chorus/asr"
)

// Name is the default variant's name; MoEName the MoE-fied one's; FlagshipName the pruned,
// then MoE-fied one's.
const (
	Name         = "chorus-micro"
	MoEName      = "chorus-micro-moe"
	FlagshipName = "chorus-micro-flagship"
)

// Every folder named chorus-micro* is embedded: the flagship is a full variant folder of its
// own (pruned weights), written by `make flagship`.
//
//go:embed chorus-micro*
var files embed.FS

// Names lists the variants embedded in this build, default first.
func Names() []string {
	out := []string{Name, MoEName}
	if _, err := fs.Stat(files, FlagshipName+"/config.json"); err == nil {
		out = append(out, FlagshipName)
	}
	return out
}

// VariantFS is the embedded variant name as one folder (a MoE overlay read over the default's
// files), or an error naming the embedded ones.
func VariantFS(name string) (fs.FS, error) {
	switch {
	case name == MoEName:
		return MoEFS()
	case slices.Contains(Names(), name):
		sub, _ := fs.Sub(files, name)
		return sub, nil
	}
	return nil, fmt.Errorf("%q is not embedded in this build (embedded: %s)", name, strings.Join(Names(), ", "))
}

// OpenNamed loads the embedded variant name (one of Names).
func OpenNamed(name string, opts asr.OpenOptions) (*asr.Variant, error) {
	fsys, err := VariantFS(name)
	if err != nil {
		return nil, err
	}
	v, err := asr.OpenFS(fsys, ".", name, opts)
	if err != nil {
		return nil, err
	}
	v.Path = "embedded:" + name
	return v, nil
}

// Open loads the embedded default model.
func Open(opts asr.OpenOptions) (*asr.Variant, error) { return OpenNamed(Name, opts) }

// FS is the embedded variant folder (config.json, model.safetensors.zst, tokenizer, card.json).
func FS() fs.FS {
	sub, _ := fs.Sub(files, Name)
	return sub
}

// OpenMoE loads the embedded MoE variant. It fails when the overlay was made over other
// weights than the embedded default's (regenerate it with `make moe`).
func OpenMoE(opts asr.OpenOptions) (*asr.Variant, error) { return OpenNamed(MoEName, opts) }

// MoEFS is the embedded MoE variant as one folder: a full variant folder as it is, or an
// overlay's config.json, experts.safetensors and card.json over the default's weights and
// tokenizer, checking that the overlay's recorded base weights are the embedded default's.
func MoEFS() (fs.FS, error) {
	top, _ := fs.Sub(files, MoEName)
	for _, w := range []string{"model.safetensors", "model.safetensors.zst"} {
		if _, err := fs.Stat(top, w); err == nil {
			return top, nil
		}
	}
	return Overlay(top, FS())
}

// Overlay is MoEFS for any overlay folder top (written by training/moefy.SaveOverlay) over
// the base variant folder it was made from.
func Overlay(top, base fs.FS) (fs.FS, error) {
	var card struct {
		Weights string `json:"base_weights"`
		SHA     string `json:"base_weights_sha256"`
	}
	b, err := fs.ReadFile(top, "card.json")
	if err == nil {
		err = json.Unmarshal(b, &card)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: card.json: %w", MoEName, err)
	}
	got, err := asr.FSFileSHA256(base, card.Weights)
	if err != nil {
		return nil, fmt.Errorf("%s: base weights: %w", MoEName, err)
	}
	if got != card.SHA {
		return nil, fmt.Errorf("%s: the overlay was made over other weights (%s %.12s…, embedded %.12s…); regenerate it with make moe", MoEName, card.Weights, card.SHA, got)
	}
	return overlayFS{top: top, base: base}, nil
}

// overlayFS reads files from top, falling back to base: a variant folder made of an overlay
// over another variant's files.
type overlayFS struct{ top, base fs.FS }

func (o overlayFS) Open(name string) (fs.File, error) {
	if name == "." {
		return o.top.Open(name) // a directory listing goes through ReadDir
	}
	f, err := o.top.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return o.base.Open(name)
	}
	return f, err
}

// ReadDir lists the union of both folders (top's entry wins a name both hold).
func (o overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	a, err := fs.ReadDir(o.top, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b, err := fs.ReadDir(o.base, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	seen := map[string]bool{}
	var out []fs.DirEntry
	for _, e := range append(a, b...) {
		if !seen[e.Name()] {
			seen[e.Name()] = true
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(x, y fs.DirEntry) int {
		switch {
		case x.Name() < y.Name():
			return -1
		case x.Name() > y.Name():
			return 1
		}
		return 0
	})
	return out, nil
}
