package data

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportLibriSpeech(t *testing.T) {
	src := t.TempDir()
	chap := filepath.Join(src, "19", "198")
	mustWrite(t, filepath.Join(chap, "19-198.trans.txt"), []byte(
		"19-198-0000 NORTHANGER ABBEY\n"+
			"19-198-0001 THIS LITTLE WORK WAS FINISHED\n"+
			"19-198-0002 MISSING AUDIO HERE\n"+
			"19-198-0003\n"+
			"\n"+
			"19-198-0004 A WAV INSTEAD OF FLAC\n"))
	mustWrite(t, filepath.Join(chap, "19-198-0000.flac"), flacHeader(16000, 1, 16, 32000))
	mustWrite(t, filepath.Join(chap, "19-198-0001.flac"), flacHeader(16000, 1, 16, 8000))
	mustWrite(t, filepath.Join(chap, "19-198-0004.wav"), encodeWAV16(make([]float32, 4000), 16000))
	// A second speaker in another folder.
	mustWrite(t, filepath.Join(src, "26", "495", "26-495.trans.txt"), []byte("26-495-0000 SECOND SPEAKER\n"))
	mustWrite(t, filepath.Join(src, "26", "495", "26-495-0000.flac"), flacHeader(16000, 1, 16, 16000))

	man := filepath.Join(t.TempDir(), "libri.jsonl")
	var progress int
	rep, err := Import(t.Context(), ImportOptions{Src: src, Manifest: man, Split: "train", Progress: func(done, total int, _ float64) {
		progress = done
		if total != 4 {
			t.Errorf("progress total %d, want 4", total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != FormatLibriSpeech || rep.Entries != 4 || rep.Skipped != 2 || progress != 4 {
		t.Fatalf("report %+v, progress %d", rep, progress)
	}
	if rep.AudioSeconds != 2+0.5+0.25+1 {
		t.Errorf("audio seconds %v", rep.AudioSeconds)
	}
	problems := strings.Join(rep.Problems, "\n")
	for _, want := range []string{"19-198.trans.txt:3: no 19-198-0002.flac", "19-198.trans.txt:4: no transcript"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	m, err := ReadManifest(man, ReadOptions{OnError: Stop})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range m.Entries {
		texts = append(texts, e.Text)
		if e.Source != FormatLibriSpeech || e.Split != "train" || filepath.IsAbs(e.AudioFilepath) {
			t.Errorf("entry %+v", e)
		}
	}
	want := []string{"NORTHANGER ABBEY", "THIS LITTLE WORK WAS FINISHED", "A WAV INSTEAD OF FLAC", "SECOND SPEAKER"}
	if !slices.Equal(texts, want) {
		t.Errorf("texts %q, want %q", texts, want)
	}
}

func TestImportLibriSpeechEmpty(t *testing.T) {
	_, err := Import(t.Context(), ImportOptions{Src: t.TempDir(), Manifest: filepath.Join(t.TempDir(), "m.jsonl"), Format: FormatLibriSpeech})
	if err == nil || !strings.Contains(err.Error(), "trans.txt") {
		t.Fatalf("err = %v", err)
	}
}

// commonVoiceFixture writes train.tsv and clips; the mp3 clip is a real
// mp3 when sox can write one, else a placeholder.
func commonVoiceFixture(t *testing.T, withMP3 bool) (src string, realMP3 bool) {
	src = t.TempDir()
	clips := filepath.Join(src, "clips")
	mustWrite(t, filepath.Join(clips, "a.wav"), encodeWAV16(make([]float32, 8000), 16000))
	mustWrite(t, filepath.Join(clips, "b.flac"), flacHeader(48000, 1, 16, 48000))
	rows := []string{
		"client_id\tpath\tsentence\tup_votes\tdown_votes",
		"c1\ta.wav\t\"Hello,\" he said.\t2\t0",
		"c2\tb.flac\tA flac clip.\t1\t0",
		"c3\tmissing.wav\tNo such clip.\t1\t0",
		"c4\ta.wav\t   \t1\t0",
		"c5\ta.wav",
		"c6\t../escape.wav\tOut of clips.\t1\t0",
	}
	if withMP3 {
		mp3 := filepath.Join(clips, "c.mp3")
		if out, err := exec.Command("sox", "-n", "-r", "16000", "-c", "1", mp3, "synth", "0.5", "sine", "300").CombinedOutput(); err == nil {
			realMP3 = true
		} else {
			t.Logf("sox cannot write mp3 (%v: %s); using a placeholder", err, out)
			mustWrite(t, mp3, []byte("ID3 not really audio"))
		}
		rows = append(rows, "c7\tc.mp3\tAn mp3 clip.\t1\t0")
	}
	mustWrite(t, filepath.Join(src, "train.tsv"), []byte("\xef\xbb\xbf"+strings.Join(rows, "\r\n")+"\r\n"))
	return src, realMP3
}

func TestImportCommonVoice(t *testing.T) {
	src, _ := commonVoiceFixture(t, false)
	man := filepath.Join(t.TempDir(), "cv.jsonl")
	rep, err := Import(t.Context(), ImportOptions{Src: src, Manifest: man, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != FormatCommonVoice || rep.Entries != 2 || rep.Skipped != 4 || rep.Converted != 0 {
		t.Fatalf("report %+v", rep)
	}
	m, err := ReadManifest(man, ReadOptions{OnError: Stop})
	if err != nil {
		t.Fatal(err)
	}
	if m.Entries[0].Text != `"Hello," he said.` || m.Entries[0].Duration != 0.5 || m.Entries[1].Duration != 1 {
		t.Errorf("entries %+v", m.Entries)
	}
	for _, want := range []string{"train.tsv:4: missing.wav missing", "train.tsv:5: empty sentence", "train.tsv:6: 2 fields", "train.tsv:7: path"} {
		if !strings.Contains(strings.Join(rep.Problems, "\n"), want) {
			t.Errorf("problems lack %q: %q", want, rep.Problems)
		}
	}
	// The TSV may also be named directly.
	rep2, err := Import(t.Context(), ImportOptions{Src: filepath.Join(src, "train.tsv"), Manifest: man})
	if err != nil || rep2.Entries != 2 {
		t.Fatalf("direct tsv: %+v, %v", rep2, err)
	}
}

func TestImportCommonVoiceMP3(t *testing.T) {
	t.Run("no decoder", func(t *testing.T) {
		src, _ := commonVoiceFixture(t, true)
		saved := lookupConverter
		lookupConverter = func() (*converter, error) { return nil, fmt.Errorf("%w: test", ErrNoDecoder) }
		defer func() { lookupConverter = saved }()
		_, err := Import(t.Context(), ImportOptions{Src: src, Manifest: filepath.Join(t.TempDir(), "cv.jsonl")})
		if !errors.Is(err, ErrNoDecoder) {
			t.Fatalf("err = %v, want ErrNoDecoder", err)
		}
	})
	t.Run("converted", func(t *testing.T) {
		if _, err := findConverter(); err != nil {
			t.Skipf("no mp3 decoder here: %v", err)
		}
		src, real := commonVoiceFixture(t, true)
		if !real {
			t.Skip("no mp3 encoder to make the fixture")
		}
		dir := t.TempDir()
		man := filepath.Join(dir, "cv.jsonl")
		rep, err := Import(t.Context(), ImportOptions{Src: src, Manifest: man})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries != 3 || rep.Converted != 1 {
			t.Fatalf("report %+v", rep)
		}
		m, err := ReadManifest(man, ReadOptions{OnError: Stop})
		if err != nil {
			t.Fatal(err)
		}
		last := m.Entries[2]
		if last.AudioFilepath != "cv-audio/c.wav" || last.Duration < 0.45 || last.Duration > 0.6 {
			t.Errorf("converted entry %+v", last)
		}
		h, err := readWAVHeaderFile(last.Path(m.Dir))
		if err != nil || h.Rate != SampleRate || h.Channels != 1 || h.Bits != 16 {
			t.Errorf("converted header %+v, %v", h, err)
		}
		// A rerun reuses the conversion.
		st1, _ := os.Stat(last.Path(m.Dir))
		if _, err := Import(t.Context(), ImportOptions{Src: src, Manifest: man}); err != nil {
			t.Fatal(err)
		}
		st2, _ := os.Stat(last.Path(m.Dir))
		if !st1.ModTime().Equal(st2.ModTime()) {
			t.Error("conversion redone on rerun")
		}
	})
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		o    ImportOptions
		want string
	}{
		{"no src", ImportOptions{Manifest: filepath.Join(dir, "m.jsonl")}, "required"},
		{"bad format", ImportOptions{Src: dir, Manifest: filepath.Join(dir, "m.jsonl"), Format: "kaldi"}, "unknown format"},
		{"missing tsv", ImportOptions{Src: dir, Manifest: filepath.Join(dir, "m.jsonl"), Format: FormatCommonVoice}, "train.tsv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Import(t.Context(), tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	tsv := filepath.Join(dir, "bad.tsv")
	mustWrite(t, tsv, []byte("client_id\tfile\ttext\n"))
	if _, err := Import(t.Context(), ImportOptions{Src: tsv, Manifest: filepath.Join(dir, "m.jsonl")}); err == nil || !strings.Contains(err.Error(), "path and sentence") {
		t.Fatalf("wrong header: err = %v", err)
	}
}

func TestParseTSV(t *testing.T) {
	header, rows, err := parseTSV([]byte("\xef\xbb\xbfpath\tsentence\r\na.mp3\t\"Quoted\" text\r\n\r\nb.mp3\tx\ty\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(header, []string{"path", "sentence"}) {
		t.Errorf("header %q", header)
	}
	if len(rows) != 2 || rows[0].Line != 2 || rows[0].Fields[1] != `"Quoted" text` || rows[1].Line != 4 || len(rows[1].Fields) != 3 {
		t.Errorf("rows %+v", rows)
	}
	if _, _, err := parseTSV([]byte("\n\n")); err == nil {
		t.Error("empty tsv accepted")
	}
}

func FuzzParseTSV(f *testing.F) {
	f.Add([]byte("path\tsentence\na.mp3\thello\n"))
	f.Add([]byte("\xef\xbb\xbf\r\n\t\t\n\"\t\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		header, rows, err := parseTSV(b)
		if err != nil {
			return
		}
		if len(header) == 0 {
			t.Fatal("nil error with no header")
		}
		last := 0
		for _, r := range rows {
			if r.Line <= last || len(r.Fields) == 0 {
				t.Fatalf("row %+v after line %d", r, last)
			}
			last = r.Line
			for _, f := range r.Fields {
				if strings.ContainsAny(f, "\t\n") {
					t.Fatalf("field %q holds a separator", f)
				}
			}
		}
	})
}

func TestParseTransLine(t *testing.T) {
	tests := []struct {
		in, id, text string
		ok           bool
	}{
		{"19-198-0000 NORTHANGER ABBEY", "19-198-0000", "NORTHANGER ABBEY", true},
		{"  19-198-0001   SPACED  OUT  ", "19-198-0001", "SPACED  OUT", true},
		{"19-198-0002", "", "", false},
		{"19-198-0002 ", "", "", false},
		{"../x TEXT", "", "", false},
		{"a/b TEXT", "", "", false},
	}
	for _, tt := range tests {
		id, text, err := parseTransLine(tt.in)
		if (err == nil) != tt.ok || id != tt.id || text != tt.text {
			t.Errorf("parseTransLine(%q) = %q, %q, %v", tt.in, id, text, err)
		}
	}
}

func FuzzParseTransLine(f *testing.F) {
	f.Add("19-198-0000 NORTHANGER ABBEY")
	f.Add(".. x")
	f.Fuzz(func(t *testing.T, line string) {
		id, text, err := parseTransLine(line)
		if err != nil {
			return
		}
		if id == "" || text == "" || strings.ContainsAny(id, "/\\ ") || id == ".." || id == "." {
			t.Fatalf("accepted id %q text %q", id, text)
		}
	})
}

func TestSoxHasFormat(t *testing.T) {
	help := "SoX v14\nAUDIO FILE FORMATS: 8svx aif flac mp3 wav\nPLAYLIST FORMATS: m3u\n"
	if !soxHasFormat(help, "mp3") || soxHasFormat(help, "m3u") || soxHasFormat(help, "ogg") {
		t.Error("soxHasFormat misreads the format list")
	}
}
