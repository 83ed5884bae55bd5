package formats

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Every parser of outside input has a fuzz target. Each checks that the parser never panics,
// that memory stays proportional to the input (a lying header must not allocate gigabytes),
// and that whatever parses survives a write/read round trip unchanged.
//
//	go test -run '^$' -fuzz FuzzSafetensors -fuzztime 1m ./asr/formats

// allocBound is what parsing n input bytes may allocate: a fixed slack (one read chunk plus
// bookkeeping) and a small multiple for decoding (f16 → float32 doubles, i8 → int64 → float32).
func allocBound(n int) uint64 { return 64<<20 + 16*uint64(n) }

func addFiles(f *testing.F, glob string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", glob))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func FuzzSafetensors(f *testing.F) {
	addFiles(f, "*.safetensors")
	f.Add(stFile(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, []byte{0, 60, 0, 188}))
	f.Add(stFile(`{"__metadata__":{"a":"b"},"w":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`, []byte{128, 63}))
	f.Add(stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I8","shape":[1],"data_offsets":[4,5]}}`, make([]byte, 5)))
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(stFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, []byte{0, 0, 128, 63}))
	zw.Close()
	f.Add(z.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var ck *Checkpoint
		var err error
		n := allocatedDuring(func() { ck, err = ReadSafetensors(data) })
		if !isZstd(data) && n > allocBound(len(data)) {
			t.Fatalf("allocated %d bytes for %d input bytes", n, len(data))
		}
		streamed, serr := ReadSafetensorsFrom(bytes.NewReader(data))
		if (err == nil) != (serr == nil) {
			t.Fatalf("bytes reader says %v, stream reader says %v", err, serr)
		}
		if err != nil {
			return
		}
		sameCheckpoint(t, streamed, ck)
		var out bytes.Buffer
		if err := WriteSafetensors(&out, ck); err != nil {
			if ck.Tensors["__metadata__"] == nil {
				t.Fatalf("cannot write what was read: %v", err)
			}
			return
		}
		back, err := ReadSafetensors(out.Bytes())
		if err != nil {
			t.Fatalf("cannot read what was written: %v", err)
		}
		sameCheckpoint(t, back, ck)
	})
}

func FuzzGGML(f *testing.F) {
	addFiles(f, "*.ggml")
	f.Add(header(nil).b)
	f.Add(header(map[int]int{10: 2001}).i32(1, 17, 1, 64).str("decoder.ln.weight").zeros(128).b)
	f.Add(header(nil).i32(1, 17, 30, 64).str("decoder.ln.weight").zeros(128).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var g *GGMLFile
		var err error
		n := allocatedDuring(func() { g, err = ReadGGML(bytes.NewReader(data)) })
		if n > allocBound(len(data)) {
			t.Fatalf("allocated %d bytes for %d input bytes", n, len(data))
		}
		if err != nil {
			return
		}
		m := g.MelFilters
		if m.NMel != g.HParams.NMels || m.NFFT == 0 || len(g.Tokens) > g.HParams.NVocab {
			return // readable, but not something whisper.cpp's converters would write
		}
		var out bytes.Buffer
		if err := WriteGGML(&out, g, false); err != nil {
			t.Fatalf("cannot write what was read: %v", err)
		}
		back, err := ReadGGML(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("cannot read what was written: %v", err)
		}
		if back.HParams.NVocab != g.HParams.NVocab || len(back.Tokens) != len(g.Tokens) || !equalF32(back.MelFilters.Data, m.Data) {
			t.Fatal("header changed")
		}
		for name, want := range g.Checkpoint.Tensors {
			got := back.Checkpoint.Tensors[name]
			if got == nil || !equalInts(got.Shape, want.Shape) || !equalF32(got.ToF32(), want.ToF32()) {
				t.Fatalf("tensor %q changed", name)
			}
		}
	})
}

func FuzzNPY(f *testing.F) {
	addFiles(f, "npy/*.npy")
	f.Fuzz(func(t *testing.T, data []byte) {
		var arr []float32
		var shape []int
		var err error
		n := allocatedDuring(func() { arr, shape, err = ReadNPY(bytes.NewReader(data)) })
		if n > allocBound(len(data)) {
			t.Fatalf("allocated %d bytes for %d input bytes", n, len(data))
		}
		ints, ishape, ierr := ReadNPYInt(bytes.NewReader(data))
		if ierr == nil {
			var out bytes.Buffer
			if err := WriteNPYInt64(&out, ints, ishape); err != nil {
				t.Fatal(err)
			}
			back, bshape, err := ReadNPYInt(&out)
			if err != nil || !equalInts(bshape, ishape) || len(back) != len(ints) {
				t.Fatalf("int round trip: %v", err)
			}
			for i := range ints {
				if back[i] != ints[i] {
					t.Fatalf("int %d changed", i)
				}
			}
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteNPY(&out, arr, shape); err != nil {
			t.Fatalf("cannot write what was read: %v", err)
		}
		back, bshape, err := ReadNPY(&out)
		if err != nil || !equalInts(bshape, shape) || !equalF32(back, arr) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzHFConfig(f *testing.F) {
	addFiles(f, "*.json")
	f.Add([]byte(`{"vocab_size": 10, "num_mel_bins": 1, "d_model": 2, "encoder_layers": 1, "encoder_attention_heads": 1, "encoder_ffn_dim": 1, "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 1, "max_source_positions": 1, "max_target_positions": 1, "chorus": {"x": [1]}, "other": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseHFConfig(data)
		if err != nil {
			return
		}
		var a, b bytes.Buffer
		if err := WriteHFConfig(&a, c); err != nil {
			t.Fatalf("cannot write what was read: %v", err)
		}
		c2, err := ParseHFConfig(a.Bytes())
		if err != nil {
			t.Fatalf("cannot read what was written: %v\n%s", err, a.Bytes())
		}
		if err := WriteHFConfig(&b, c2); err != nil || a.String() != b.String() {
			t.Fatalf("write is not idempotent: %v\n%s\n%s", err, a.Bytes(), b.Bytes())
		}
	})
}
