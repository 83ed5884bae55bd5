package asr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// Info describes a loaded variant for `chorus models inspect`.
type Info struct {
	Name       string            `json:"name"`
	Path       string            `json:"path"`
	Format     string            `json:"format"`
	Dims       whisper.Dims      `json:"dims"`
	Params     map[string]int    `json:"params"` // by part: encoder, decoder, total
	Tokenizer  bool              `json:"tokenizer"`
	Files      map[string]string `json:"files_sha256"`
	TensorHash string            `json:"tensors_sha256"` // over names, shapes and f32 data in order
}

// Inspect summarises a variant: dimensions, parameter counts, checksums of its files and of
// its weights.
func Inspect(v *Variant) (*Info, error) {
	info := &Info{Name: v.Name, Path: v.Path, Format: v.Format, Dims: v.Model.Dims,
		Params: map[string]int{}, Tokenizer: v.Tokenizer != nil, Files: map[string]string{}}
	ts, order := v.Model.Tensors()
	h := sha256.New()
	for _, n := range order {
		t := ts[n]
		part := "other"
		switch {
		case strings.HasPrefix(n, "model.encoder."):
			part = "encoder"
		case strings.HasPrefix(n, "model.decoder."):
			part = "decoder"
		}
		info.Params[part] += t.Len()
		info.Params["total"] += t.Len()
		fmt.Fprintf(h, "%s %v\n", n, t.Shape)
		buf := make([]byte, 0, 4*len(t.Data))
		for _, x := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		h.Write(buf)
	}
	info.TensorHash = hex.EncodeToString(h.Sum(nil))
	paths := []string{v.Path}
	if st, err := os.Stat(v.Path); err == nil && st.IsDir() {
		entries, _ := os.ReadDir(v.Path)
		paths = paths[:0]
		for _, e := range entries {
			if !e.IsDir() {
				paths = append(paths, filepath.Join(v.Path, e.Name()))
			}
		}
	}
	for _, p := range paths {
		sum, err := FileSHA256(p)
		if err != nil {
			continue // embedded or vanished: reported without a file checksum
		}
		info.Files[filepath.Base(p)] = sum
	}
	return info, nil
}

// FileSHA256 is the hex SHA-256 of a file on disk.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Dump writes the numbers anyone can compare against another implementation, as NumPy
// float32 files: mel.npy [n_mels, 3000] for the first 30-s window of the audio, encoder.npy
// [n_audio_ctx, d_model], and logits.npy [len(tokens), n_vocab] from running the decoder on the
// tokens (full recomputation, no cache). Token ids are checked against the vocabulary.
func Dump(m *whisper.Model, samples []float32, tokens []int, outDir string) error {
	for _, id := range tokens {
		if id < 0 || id >= m.Dims.NVocab {
			return fmt.Errorf("dump: token id %d out of range [0, %d)", id, m.Dims.NVocab)
		}
	}
	if len(tokens) > m.Dims.NTextCtx {
		return fmt.Errorf("dump: %d tokens exceed the %d text positions", len(tokens), m.Dims.NTextCtx)
	}
	spec, err := mel.Whisper30s(samples, m.Dims.NMels)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	melT := tensor.FromData(spec.Data, spec.NMels, spec.NFrames)
	st := m.NewState(1)
	xa := st.Encode(melT)
	files := []struct {
		name  string
		data  []float32
		shape []int
	}{
		{"mel.npy", melT.Data, melT.Shape},
		{"encoder.npy", xa.Data, xa.Shape},
	}
	if len(tokens) > 0 {
		lg := st.AllLogits(0, tokens)
		files = append(files, struct {
			name  string
			data  []float32
			shape []int
		}{"logits.npy", lg.Data, lg.Shape})
	}
	for _, f := range files {
		if err := formats.WriteNPYFile(filepath.Join(outDir, f.name), f.data, f.shape); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	return nil
}

// SortedParts returns the parameter-count keys in display order.
func (i *Info) SortedParts() []string {
	var k []string
	for p := range i.Params {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}
