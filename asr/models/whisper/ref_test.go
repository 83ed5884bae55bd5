package whisper

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/tensor"
)

// The fixtures under testdata/whisper-ref are written by tools/ref/whisper_ref.py, which runs
// OpenAI's whisper/model.py on the same seeded weights (see tools/ref/README.md).
const refDir = "../../../testdata/whisper-ref"

type refMeta struct {
	Dims        Dims  `json:"dims"`
	Seed        int   `json:"seed"`
	Tokens      []int `json:"tokens"`
	EncoderRows []int `json:"encoder_rows"`
	LogitsRows  []int `json:"logits_rows"`
	Greedy      []int `json:"greedy"`
}

func readMeta(t *testing.T, cfg string) refMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(refDir, cfg, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m refMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func readNPY(t *testing.T, path string) ([]float32, []int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, shape, err := formats.ReadNPY(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data, shape
}

// checkTensor reports the max abs difference and the first mismatches (STYLE.md item 8).
func checkTensor(t *testing.T, got, want []float32, tol float64, label string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	var maxd float64
	bad := 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) || d > tol {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v (diff %.3g)", label, i, got[i], want[i], d)
			}
			bad++
		}
		if d > maxd {
			maxd = d
		}
	}
	t.Logf("%s: max abs diff %.3g over %d values (tol %g)", label, maxd, len(got), tol)
	if bad > 0 {
		t.Errorf("%s: %d of %d values beyond %g", label, bad, len(got), tol)
	}
}

func TestWeightsMatchReferenceGenerator(t *testing.T) {
	for _, cfg := range []string{"small", "tiny"} {
		t.Run(cfg, func(t *testing.T) {
			meta := readMeta(t, cfg)
			b, err := os.ReadFile(filepath.Join(refDir, cfg, "weights.sha256.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]string
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			ck := RandomCheckpoint(meta.Dims, uint64(meta.Seed))
			if len(ck) != len(want) {
				t.Errorf("%d tensors, reference has %d", len(ck), len(want))
			}
			for name, tt := range ck {
				raw := make([]byte, 4*len(tt.Data))
				for i, v := range tt.Data {
					binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
				}
				sum := sha256.Sum256(raw)
				if got := hex.EncodeToString(sum[:]); got != want[name] {
					t.Errorf("%s: sha256 %s, reference %s", name, got, want[name])
				}
			}
		})
	}
}

func refModel(t *testing.T, cfg string, opts LoadOptions) (*Model, refMeta) {
	t.Helper()
	meta := readMeta(t, cfg)
	m, err := NewRandom(meta.Dims, uint64(meta.Seed), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, meta
}

// TestReference checks the encoder output, the logits and the greedy ids against OpenAI's code.
func TestReference(t *testing.T) {
	melData, melShape := readNPY(t, filepath.Join(refDir, "mel80.npy"))
	mel := tensor.FromData(melData, melShape...)
	for _, cfg := range []string{"small", "tiny"} {
		t.Run(cfg, func(t *testing.T) {
			if cfg == "tiny" && testing.Short() {
				t.Skip("tiny dims in -short mode")
			}
			m, meta := refModel(t, cfg, LoadOptions{})
			st := m.NewState(1)
			xa := st.Encode(mel)

			wantEnc, encShape := readNPY(t, filepath.Join(refDir, cfg, "encoder.npy"))
			rows := meta.EncoderRows
			if rows == nil {
				for i := range encShape[0] {
					rows = append(rows, i)
				}
			}
			got := make([]float32, 0, len(wantEnc))
			for _, r := range rows {
				got = append(got, xa.Row(r)...)
			}
			checkTensor(t, got, wantEnc, 2e-4, "encoder")

			logits := st.AllLogits(0, meta.Tokens)
			wantLog, _ := readNPY(t, filepath.Join(refDir, cfg, "logits.npy"))
			got = got[:0]
			for _, r := range meta.LogitsRows {
				got = append(got, logits.Row(r)...)
			}
			checkTensor(t, got, wantLog, 2e-4, "logits")

			// Greedy: the prompt is already in the cache; extend one token at a time.
			var ids []int
			next := tensor.ArgMax(logits.Row(len(meta.Tokens) - 1))
			for range meta.Greedy {
				ids = append(ids, next)
				next = tensor.ArgMax(st.Logits(0, []int{next}))
			}
			if fmt.Sprint(ids) != fmt.Sprint(meta.Greedy) {
				t.Errorf("greedy ids %v, reference %v", ids, meta.Greedy)
			}
		})
	}
}

// TestKVCacheEqualsRecompute checks incremental decoding against full recomputation.
func TestKVCacheEqualsRecompute(t *testing.T) {
	m, meta := refModel(t, "small", LoadOptions{})
	melData, melShape := readNPY(t, filepath.Join(refDir, "mel80.npy"))
	st := m.NewState(2)
	st.Encode(tensor.FromData(melData, melShape...))
	tokens := []int{1, 5, 17, 42, 99, 3, 250, 7, 8, 399}
	full := st.AllLogits(0, tokens)
	st.Logits(1, tokens[:3])
	for i := 3; i < len(tokens); i++ {
		step := st.Logits(1, tokens[i:i+1])
		checkTensor(t, step, full.Row(i), 1e-5, fmt.Sprintf("step %d", i))
	}
	_ = meta
}
