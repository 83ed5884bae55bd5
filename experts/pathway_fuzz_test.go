package experts

import (
	"bytes"
	"testing"
)

// FuzzReadJSONL: an exported pathway file is outside input (`chorus pathways` reads what a
// server wrote, or anything a user points it at): it must never panic, and what it accepts
// must write back and read again to the same records.
func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"request":"a","tags":{"arm":"x"},"layer":0,"name":"enc.0","experts":8,"tokens":2,"masks":"AwU="}` + "\n"))
	f.Add([]byte(`{"request":"a","layer":1,"experts":9,"tokens":1,"masks":"AQE="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ReadJSONL(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, p := range ps {
			if err := p.WriteJSONL(&buf); err != nil {
				t.Fatal(err)
			}
		}
		again, err := ReadJSONL(&buf)
		if err != nil {
			t.Fatalf("re-reading what was written: %v", err)
		}
		if len(again) > len(ps) {
			t.Fatalf("%d records became %d", len(ps), len(again))
		}
	})
}

// FuzzParseLayout: a layout comes from a variant's config.json; bad ones are errors.
func FuzzParseLayout(f *testing.F) {
	f.Add([]byte(`{"layers":[{"name":"model.encoder.layers.0","neurons":4,"experts":2,"method":"kmeans","perm":[1,0,3,2]}]}`))
	f.Add([]byte(`{"layers":[],"unpermuted":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLayout(b)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseLayout accepted a layout Validate refuses: %v", err)
		}
	})
}
