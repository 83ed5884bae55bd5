package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/experts"
	"github.com/klauspost/compress/zstd"
)

// TestPathwaysCommand writes an export like the server's (two tagged pathways, zstd) and
// checks the command reads it, filters by tag, and draws both heatmaps; and that bad input
// (no match, a malformed filter, an unknown layer) is an error.
func TestPathwaysCommand(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	for i, arm := range []string{"a", "b"} {
		p := &experts.Pathway{Request: arm, Tags: map[string]string{"arm": arm}, Layers: make([]experts.LayerPath, 2)}
		for l := range 2 {
			p.Layers[l].Name = []string{"enc.0", "dec.0"}[l]
			p.Record(l, experts.Selection{E: 8, K: 2, IDs: []int32{int32(i), int32(i + 1), 3, 5}})
		}
		if err := p.WriteJSONL(&buf); err != nil {
			t.Fatal(err)
		}
	}
	zf := filepath.Join(dir, "pathways-x.jsonl.zst")
	enc, _ := zstd.NewWriter(nil)
	if err := os.WriteFile(zf, enc.EncodeAll(buf.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "heat.png")
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{zf, "--out", out, "--coactivation", "enc.0"}, true},
		{[]string{zf, "--filter", "arm=b"}, true},
		{[]string{zf, "--filter", "arm=c"}, false},
		{[]string{zf, "--filter", "arm"}, false},
		{[]string{zf, "--coactivation", "nope"}, false},
		{[]string{filepath.Join(dir, "missing.jsonl")}, false},
	} {
		cmd := pathwaysCmd()
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); (err == nil) != tc.ok {
			t.Errorf("%v: error %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
	for _, f := range []string{out, filepath.Join(dir, "heat-coactivation-enc.0.png")} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}
