package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Entry is one line of a manifest: the NeMo/LibriSpeech-tools JSON-lines
// shape (audio_filepath, duration, text) plus chorus's provenance fields.
// Unknown fields in a line (offset, lang, …) are ignored when reading.
type Entry struct {
	// AudioFilepath is relative to the manifest's folder (chorus writes it
	// so; absolute paths from other tools are accepted when reading).
	AudioFilepath string  `json:"audio_filepath"`
	Duration      float64 `json:"duration"`
	Text          string  `json:"text"`
	Voice         string  `json:"voice,omitempty"`  // Voice.String(), or a speaker id for real speech
	Source        string  `json:"source,omitempty"` // text or corpus source: sotu, brown, asterisk, librispeech, …
	Split         string  `json:"split,omitempty"`  // train, dev, dev-voices, eval, …
	// Prosody is the voice's rate and pitch settings (VoiceParams.String).
	Prosody string `json:"prosody,omitempty"`
	// Augment is the augmentation chain (Augment.String); "clean" when none.
	Augment string `json:"augment,omitempty"`
}

// Path resolves the entry's audio file against the manifest's folder.
func (e Entry) Path(manifestDir string) string {
	if filepath.IsAbs(e.AudioFilepath) {
		return e.AudioFilepath
	}
	return filepath.Join(manifestDir, filepath.FromSlash(e.AudioFilepath))
}

// ErrorPolicy says what ReadManifest does with a bad line.
type ErrorPolicy int

const (
	// Skip reports the bad line and goes on (the default).
	Skip ErrorPolicy = iota
	// Stop returns the first bad line as the error.
	Stop
)

// LineError is a bad manifest line.
type LineError struct {
	Path string // the manifest
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Reasons a manifest line is bad, for errors.Is.
var (
	ErrBadJSON      = errors.New("unparseable json")
	ErrNoAudio      = errors.New("missing audio_filepath")
	ErrEmptyText    = errors.New("empty text")
	ErrBadDuration  = errors.New("duration not positive")
	ErrMissingAudio = errors.New("audio file missing")
)

// ReadOptions controls ReadManifest.
type ReadOptions struct {
	// OnError is Skip (default) or Stop.
	OnError ErrorPolicy
	// NoFileCheck skips the stat of every audio file, for manifests whose
	// audio is not mounted where they are read.
	NoFileCheck bool
	// Report, if set, is called for each bad line as it is found.
	Report func(*LineError)
}

// Manifest is a read manifest.
type Manifest struct {
	Dir     string // folder that relative audio paths resolve against
	Entries []Entry
	Bad     []*LineError // lines skipped under the Skip policy
}

// maxLine bounds one manifest line; a longer one is reported as bad rather
// than read into memory whole.
const maxLine = 1 << 20

// ReadManifest reads a JSON-lines manifest. Blank lines are ignored. A line
// is bad when it is not a JSON object, lacks audio_filepath, has empty text
// (after trimming), a duration that is missing, zero or negative, or (unless
// NoFileCheck) names an audio file that does not exist. Bad lines are
// reported with their line number through Report and Manifest.Bad, and
// skipped, or under Stop returned as a *LineError.
func ReadManifest(path string, opts ReadOptions) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	m := &Manifest{Dir: filepath.Dir(path)}
	r := bufio.NewReaderSize(f, 64*1024)
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readLine(r)
		if err != nil && err != io.EOF {
			return m, fmt.Errorf("read manifest: %w", err)
		}
		eof := err == io.EOF
		if eof && len(line) == 0 && !tooLong {
			break
		}
		if !tooLong && len(bytes.TrimSpace(line)) == 0 {
			if eof {
				break
			}
			continue
		}
		var e Entry
		var bad error
		if tooLong {
			bad = fmt.Errorf("%w: line longer than %d bytes", ErrBadJSON, maxLine)
		} else if e, bad = ParseLine(line); bad == nil && !opts.NoFileCheck {
			if _, serr := os.Stat(e.Path(m.Dir)); serr != nil {
				bad = fmt.Errorf("%w: %s", ErrMissingAudio, e.AudioFilepath)
			}
		}
		if bad != nil {
			le := &LineError{Path: path, Line: lineNo, Err: bad}
			if opts.Report != nil {
				opts.Report(le)
			}
			if opts.OnError == Stop {
				return m, le
			}
			m.Bad = append(m.Bad, le)
		} else {
			m.Entries = append(m.Entries, e)
		}
		if eof {
			break
		}
	}
	return m, nil
}

// readLine returns the next line without its ending. A line over maxLine
// is consumed and reported with tooLong. err is non-nil at EOF (possibly
// with a final unterminated line) or on a read error.
func readLine(r *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if len(buf)+len(chunk) > maxLine {
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		if err != nil {
			return buf, tooLong, err
		}
		if !isPrefix {
			return buf, tooLong, nil
		}
	}
}

// ParseLine parses and checks one manifest line (see ReadManifest for the
// rules, minus the file check).
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return e, fmt.Errorf("%w: not a json object", ErrBadJSON)
	}
	// Decode through a map of raw values first so that a field of the
	// wrong type is reported by name.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return e, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if _, ok := raw["duration"]; !ok {
		return e, fmt.Errorf("%w: no duration", ErrBadDuration)
	}
	if strings.TrimSpace(e.AudioFilepath) == "" {
		return e, ErrNoAudio
	}
	if strings.ContainsRune(e.AudioFilepath, 0) {
		return e, fmt.Errorf("%w: NUL in audio_filepath", ErrNoAudio)
	}
	if strings.TrimSpace(e.Text) == "" {
		return e, ErrEmptyText
	}
	if !utf8.ValidString(e.Text) {
		return e, fmt.Errorf("%w: text is not valid utf-8", ErrBadJSON)
	}
	if !(e.Duration > 0) || math.IsInf(e.Duration, 0) {
		return e, fmt.Errorf("%w: %v", ErrBadDuration, e.Duration)
	}
	return e, nil
}

// WriteManifest writes entries as JSON lines, atomically: readers see the
// old manifest or the whole new one, never a torn file.
func WriteManifest(path string, entries []Entry) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// relPath returns target relative to dir with forward slashes, the form
// manifests store; it falls back to the absolute path when no relative
// one exists.
func relPath(dir, target string) string {
	absDir, err1 := filepath.Abs(dir)
	absT, err2 := filepath.Abs(target)
	if err1 != nil || err2 != nil {
		return filepath.ToSlash(target)
	}
	rel, err := filepath.Rel(absDir, absT)
	if err != nil {
		return filepath.ToSlash(absT)
	}
	return filepath.ToSlash(rel)
}
