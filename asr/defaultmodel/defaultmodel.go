// Package defaultmodel embeds chorus's default variant, chorus-micro, so that a fresh machine
// transcribes and serves with no download. The folder is the variant that `make train`
// writes (runs/chorus-micro/variant), copied here with its card.json; see its card for the
// recipe, data, steps, training time and measured WER/CER.
package defaultmodel

import (
	"embed"
	"io/fs"

	"github.com/chorus-asr/chorus/asr"
)

// Name is the default variant's name.
const Name = "chorus-micro"

//go:embed chorus-micro
var files embed.FS

// Open loads the embedded default model.
func Open(opts asr.OpenOptions) (*asr.Variant, error) {
	v, err := asr.OpenFS(files, Name, Name, opts)
	if err != nil {
		return nil, err
	}
	v.Path = "embedded:" + Name
	return v, nil
}

// FS is the embedded variant folder (config.json, model.safetensors.zst, tokenizer, card.json).
func FS() fs.FS {
	sub, _ := fs.Sub(files, Name)
	return sub
}
