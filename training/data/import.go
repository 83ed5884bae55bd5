package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Import formats.
const (
	FormatLibriSpeech = "librispeech"
	FormatCommonVoice = "commonvoice"
)

// ErrNoDecoder reports audio that needs converting when no converter is
// installed.
var ErrNoDecoder = errors.New("no decoder")

// ImportOptions configures Import.
type ImportOptions struct {
	// Src is the corpus: a LibriSpeech-style folder (speaker/chapter/
	// *.trans.txt beside the .flac files, at any depth) or a Common
	// Voice-style folder (TSV files with path and sentence columns, and a
	// clips/ folder), or a Common Voice TSV file itself.
	Src string
	// Manifest is the manifest file to write. Required.
	Manifest string
	// Format is FormatLibriSpeech, FormatCommonVoice or "" to detect: a
	// .tsv Src, a TSV option or a Src holding *.tsv files means Common
	// Voice; otherwise LibriSpeech.
	Format string
	// TSV is the Common Voice table under Src (default train.tsv).
	TSV string
	// ConvertDir receives 16 kHz mono WAV conversions of audio chorus
	// cannot read directly (Common Voice's mp3). Default: a folder named
	// after the manifest (train.jsonl → train-audio/) beside it.
	ConvertDir string
	// Source and Split label every entry (Source defaults to Format).
	Source, Split string
	// Workers read headers and convert in parallel (default 2).
	Workers int
	// Progress is called after each utterance, from one goroutine.
	Progress func(done, total int, audioSec float64)
}

// ImportReport summarises an import.
type ImportReport struct {
	Manifest     string  `json:"manifest"`
	Format       string  `json:"format"`
	Entries      int     `json:"entries"`
	AudioSeconds float64 `json:"audio_seconds"`
	Converted    int     `json:"converted"`
	// Skipped is how many utterances were left out; Problems holds the
	// first few reasons, each naming its file and line.
	Skipped  int      `json:"skipped"`
	Problems []string `json:"problems,omitempty"`
}

// maxProblems bounds ImportReport.Problems.
const maxProblems = 50

// importItem is one utterance found in the source corpus.
type importItem struct {
	where string // file:line, for reports
	audio string // absolute path of the source audio
	text  string
}

// Import converts a LibriSpeech- or Common Voice-style corpus into a
// chorus manifest (same shape as Synth's). Durations come from WAV and FLAC
// headers; mp3 (or any other format) is converted to 16 kHz mono WAV with
// ffmpeg, or sox when it has mp3 support, and ErrNoDecoder names the
// package to install when neither can. Bad utterances (missing audio,
// empty text, short TSV rows, failed conversions) are skipped and
// reported; the manifest is written atomically. Conversions already
// complete from an earlier run are reused.
func Import(ctx context.Context, opts ImportOptions) (*ImportReport, error) {
	if opts.Src == "" || opts.Manifest == "" {
		return nil, errors.New("import: Src and Manifest are required")
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Format == "" {
		opts.Format = detectFormat(opts)
	}
	rep := &ImportReport{Manifest: opts.Manifest, Format: opts.Format}
	problem := func(msg string) {
		rep.Skipped++
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, msg)
		}
	}
	var items []importItem
	var err error
	switch opts.Format {
	case FormatLibriSpeech:
		items, err = scanLibriSpeech(opts.Src, problem)
	case FormatCommonVoice:
		items, err = scanCommonVoice(opts.Src, opts.TSV, problem)
	default:
		return nil, fmt.Errorf("import: unknown format %q (want %s or %s)", opts.Format, FormatLibriSpeech, FormatCommonVoice)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", opts.Format, err)
	}
	if opts.Source == "" {
		opts.Source = opts.Format
	}
	if opts.ConvertDir == "" {
		base := strings.TrimSuffix(filepath.Base(opts.Manifest), filepath.Ext(opts.Manifest))
		opts.ConvertDir = filepath.Join(filepath.Dir(opts.Manifest), base+"-audio")
	}
	var conv *converter
	for _, it := range items {
		if needsConversion(it.audio) {
			if conv, err = lookupConverter(); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			break
		}
	}
	manDir := filepath.Dir(opts.Manifest)
	entries := make([]*Entry, len(items))
	var mu sync.Mutex // guards rep, entries and the progress count
	done, audio := 0, 0.0
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				it := items[i]
				path, converted, err := importAudio(ctx, conv, it.audio, opts.ConvertDir)
				var d float64
				if err == nil {
					d, err = AudioDuration(ctx, path)
				}
				if err == nil && d <= 0 {
					err = errors.New("empty audio")
				}
				mu.Lock()
				done++
				if err != nil {
					problem(fmt.Sprintf("%s: %v", it.where, err))
				} else {
					entries[i] = &Entry{AudioFilepath: relPath(manDir, path), Duration: d, Text: it.text,
						Source: opts.Source, Split: opts.Split}
					audio += d
					if converted {
						rep.Converted++
					}
				}
				if opts.Progress != nil {
					opts.Progress(done, len(items), audio)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range items {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("import: %w", err)
	}
	var out []Entry
	for _, e := range entries {
		if e != nil {
			out = append(out, *e)
			rep.AudioSeconds += e.Duration
		}
	}
	rep.Entries = len(out)
	if err := WriteManifest(opts.Manifest, out); err != nil {
		return rep, fmt.Errorf("import: %w", err)
	}
	return rep, nil
}

func detectFormat(o ImportOptions) string {
	if o.TSV != "" || strings.EqualFold(filepath.Ext(o.Src), ".tsv") {
		return FormatCommonVoice
	}
	if m, _ := filepath.Glob(filepath.Join(o.Src, "*.tsv")); len(m) > 0 {
		return FormatCommonVoice
	}
	return FormatLibriSpeech
}

// scanLibriSpeech walks src for *.trans.txt files. Each line is
// "<utterance-id> <TEXT>", and the audio is <utterance-id>.flac (or .wav)
// in the same folder. Transcripts are kept as written (LibriSpeech's are
// upper case without punctuation; Normalize makes them comparable).
func scanLibriSpeech(src string, problem func(string)) ([]importItem, error) {
	var items []importItem
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".trans.txt") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.trans.txt under %s", src)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dir := filepath.Dir(f)
		n := 0
		scanLines(data, func(line string) bool {
			n++
			where := fmt.Sprintf("%s:%d", f, n)
			if strings.TrimSpace(line) == "" {
				return true
			}
			id, text, err := parseTransLine(line)
			if err != nil {
				problem(fmt.Sprintf("%s: %v", where, err))
				return true
			}
			audio := ""
			for _, ext := range []string{".flac", ".wav"} {
				if _, err := os.Stat(filepath.Join(dir, id+ext)); err == nil {
					audio = filepath.Join(dir, id+ext)
					break
				}
			}
			if audio == "" {
				problem(fmt.Sprintf("%s: no %s.flac or %s.wav", where, id, id))
				return true
			}
			items = append(items, importItem{where: where, audio: audio, text: text})
			return true
		})
	}
	return items, nil
}

// parseTransLine splits a LibriSpeech transcript line into its utterance id
// and text. The id must be a plain file name.
func parseTransLine(line string) (id, text string, err error) {
	line = strings.TrimSpace(line)
	id, text, ok := strings.Cut(line, " ")
	text = strings.TrimSpace(text)
	switch {
	case !ok || text == "":
		return "", "", errors.New("no transcript after the utterance id")
	case id == "." || id == ".." || strings.ContainsAny(id, `/\`) || strings.ContainsRune(id, 0):
		return "", "", fmt.Errorf("bad utterance id %q", id)
	}
	return id, text, nil
}

// tsvRow is one data row of a TSV file.
type tsvRow struct {
	Line   int // 1-based line in the file
	Fields []string
}

// parseTSV splits a tab-separated file with a header line. Common Voice's
// TSVs do not quote fields (a sentence may contain a bare '"'), so quotes
// are data here, unlike encoding/csv's rules. A byte-order mark, CRLF
// endings and blank lines are tolerated.
func parseTSV(data []byte) (header []string, rows []tsvRow, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	n := 0
	scanLines(data, func(line string) bool {
		n++
		if strings.TrimSpace(line) == "" {
			return true
		}
		fields := strings.Split(line, "\t")
		if header == nil {
			for i := range fields {
				fields[i] = strings.TrimSpace(fields[i])
			}
			header = fields
			return true
		}
		rows = append(rows, tsvRow{Line: n, Fields: fields})
		return true
	})
	if header == nil {
		return nil, nil, errors.New("empty tsv: no header")
	}
	return header, rows, nil
}

// scanCommonVoice reads the TSV's path and sentence columns; audio is
// clips/<path> beside the TSV.
func scanCommonVoice(src, tsv string, problem func(string)) ([]importItem, error) {
	tsvPath := src
	if !strings.EqualFold(filepath.Ext(src), ".tsv") {
		if tsv == "" {
			tsv = "train.tsv"
		}
		tsvPath = filepath.Join(src, tsv)
	}
	data, err := os.ReadFile(tsvPath)
	if err != nil {
		return nil, err
	}
	header, rows, err := parseTSV(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tsvPath, err)
	}
	pathCol, textCol := -1, -1
	for i, h := range header {
		switch h {
		case "path":
			pathCol = i
		case "sentence":
			textCol = i
		}
	}
	if pathCol < 0 || textCol < 0 {
		return nil, fmt.Errorf("%s: header lacks path and sentence columns: %q", tsvPath, header)
	}
	clips := filepath.Join(filepath.Dir(tsvPath), "clips")
	var items []importItem
	for _, r := range rows {
		where := fmt.Sprintf("%s:%d", tsvPath, r.Line)
		if len(r.Fields) <= max(pathCol, textCol) {
			problem(fmt.Sprintf("%s: %d fields, header has %d", where, len(r.Fields), len(header)))
			continue
		}
		name := strings.TrimSpace(r.Fields[pathCol])
		text := strings.TrimSpace(r.Fields[textCol])
		switch {
		case name == "":
			problem(where + ": empty path")
			continue
		case text == "":
			problem(where + ": empty sentence")
			continue
		case filepath.IsAbs(name) || strings.Contains(name, ".."):
			problem(fmt.Sprintf("%s: path %q leaves the clips folder", where, name))
			continue
		}
		audio := filepath.Join(clips, filepath.FromSlash(name))
		if _, err := os.Stat(audio); err != nil {
			problem(fmt.Sprintf("%s: %s missing", where, name))
			continue
		}
		items = append(items, importItem{where: where, audio: audio, text: text})
	}
	return items, nil
}

// needsConversion reports audio that chorus's readers cannot take as is.
func needsConversion(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".wav", ".flac":
		return false
	}
	return true
}

// converter turns compressed audio into 16 kHz mono 16-bit WAV.
type converter struct {
	name string
	args func(in, out string) []string
}

// lookupConverter is findConverter, replaceable by tests that need the
// no-decoder path on a machine that has one.
var lookupConverter = findConverter

// findConverter prefers ffmpeg, then sox if it was built with mp3 support
// (Debian's libsox-fmt-mp3).
func findConverter() (*converter, error) {
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		return &converter{name: "ffmpeg", args: func(in, out string) []string {
			return []string{"-nostdin", "-loglevel", "error", "-y", "-i", in, "-ac", "1", "-ar", fmt.Sprint(SampleRate),
				"-sample_fmt", "s16", "-f", "wav", out}
		}}, nil
	}
	if _, err := exec.LookPath("sox"); err == nil {
		if out, err := exec.Command("sox", "-h").Output(); err == nil && soxHasFormat(string(out), "mp3") {
			return &converter{name: "sox", args: func(in, out string) []string {
				return []string{"-D", in, "-r", fmt.Sprint(SampleRate), "-c", "1", "-e", "signed-integer", "-b", "16", "-t", "wav", out}
			}}, nil
		}
	}
	return nil, fmt.Errorf("%w: mp3 audio needs ffmpeg or sox with mp3 support (run: apt-get install -y libsox-fmt-mp3, or apt-get install -y ffmpeg)", ErrNoDecoder)
}

// soxHasFormat reads the "AUDIO FILE FORMATS:" line of `sox -h`.
func soxHasFormat(help, format string) bool {
	for _, line := range strings.Split(help, "\n") {
		if rest, ok := strings.CutPrefix(line, "AUDIO FILE FORMATS:"); ok {
			for _, f := range strings.Fields(rest) {
				if f == format {
					return true
				}
			}
		}
	}
	return false
}

// importAudio returns the path the manifest should reference: the source
// itself when it is WAV or FLAC, else a conversion in convertDir (reused
// when a complete one exists).
func importAudio(ctx context.Context, conv *converter, src, convertDir string) (path string, converted bool, err error) {
	if !needsConversion(src) {
		return src, false, nil
	}
	if conv == nil {
		return "", false, fmt.Errorf("%w for %s", ErrNoDecoder, filepath.Base(src))
	}
	base := strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	out := filepath.Join(convertDir, base+".wav")
	if d, err := wavDuration(out); err == nil && d > 0 {
		return out, true, nil
	}
	if err := os.MkdirAll(convertDir, 0o755); err != nil {
		return "", false, err
	}
	part := out + ".part"
	if err := run(exec.CommandContext(ctx, conv.name, conv.args(src, part)...)); err != nil {
		os.Remove(part)
		return "", false, fmt.Errorf("convert %s: %w", filepath.Base(src), err)
	}
	if err := os.Rename(part, out); err != nil {
		os.Remove(part)
		return "", false, err
	}
	return out, true, nil
}
