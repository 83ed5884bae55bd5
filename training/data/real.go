package data

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Real speech: asterisk-core-sounds-en-wav (DATA.md, "Real speech").
const (
	SourceAsterisk = "asterisk"
	// RealAllowedPrompts is how many transcript entries, in transcript
	// order, may be trained and tuned on; the rest are evaluation only.
	RealAllowedPrompts = 284
	// DefaultAsteriskTranscript is the transcript shipped by
	// asterisk-core-sounds-en (one "name: text" line per prompt).
	DefaultAsteriskTranscript = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
	// DefaultAsteriskSounds is where asterisk-core-sounds-en-wav puts the
	// recordings, as <name>.wav (names may hold a folder: digits/1).
	DefaultAsteriskSounds = "/usr/share/asterisk/sounds/en_US_f_Allison"
	// asteriskSpeaker is the voice recorded in the manifests.
	asteriskSpeaker = "asterisk:allison"
)

// Manifest names for real speech.
const (
	ManifestRealTrain = "real-train"
	ManifestRealDev   = "real-dev"
	ManifestEvalReal  = "eval-real"
)

// realPrompt is one transcript entry.
type realPrompt struct {
	Index int    // 0-based position among the transcript's entries
	Line  int    // 1-based line in the transcript
	Name  string // file name without .wav, relative to the sounds folder
	Text  string
}

// parseAsteriskTranscript reads "name: text" lines. Blank lines and lines
// starting with ';' are comments; any other line without ": " is an error
// (the cut at RealAllowedPrompts counts entries, so a line silently
// skipped would move the cut).
func parseAsteriskTranscript(r io.Reader) ([]realPrompt, error) {
	var out []realPrompt
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, ";") {
			continue
		}
		name, text, ok := strings.Cut(t, ": ")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("transcript line %d: want \"name: text\", got %q", line, t)
		}
		if strings.Contains(name, "..") || filepath.IsAbs(name) {
			return nil, fmt.Errorf("transcript line %d: prompt name %q leaves the sounds folder", line, name)
		}
		out = append(out, realPrompt{Index: len(out), Line: line, Name: name, Text: strings.TrimSpace(text)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	return out, nil
}

// RealStats counts what happened to the real-speech prompts.
type RealStats struct {
	Prompts      int            `json:"prompts"`       // transcript entries
	Allowed      int            `json:"allowed"`       // entries inside the first RealAllowedPrompts
	Train        int            `json:"train"`         // allowed, kept, in real-train
	Dev          int            `json:"dev"`           // allowed, kept, in real-dev
	Eval         int            `json:"eval"`          // evaluation-only, kept, in eval-real
	MissingAudio []string       `json:"missing_audio"` // entries with no wav file
	Dropped      map[string]int `json:"dropped"`       // filterText reasons
}

// realItem is a prompt to convert.
type realItem struct {
	prompt   realPrompt
	src      string // source wav
	rel      string // output path relative to Out
	manifest string // ManifestRealTrain, ManifestRealDev or ManifestEvalReal
	split    string
}

// planReal applies the cut, the text rules and the dev split. Prompt text
// passes the same character rules as synthesis text (no digits, symbols,
// acronyms or bracketed descriptions such as "[ascending tones]", whose
// audio is not the words), but may be one word long. Evaluation prompts
// get the same rules so their references are scoreable. Which side of the
// dev split a prompt lands on depends on its normalised text, so a phrase
// recorded twice cannot straddle train and dev.
func planReal(prompts []realPrompt, soundsDir string, devFraction float64) ([]realItem, *RealStats) {
	st := &RealStats{Prompts: len(prompts), Dropped: map[string]int{}, MissingAudio: []string{}}
	var items []realItem
	for _, p := range prompts {
		allowed := p.Index < RealAllowedPrompts
		if allowed {
			st.Allowed++
		}
		text, reason := filterText(p.Text, 1, MaxWords)
		if reason != "" {
			st.Dropped[reason]++
			continue
		}
		src := filepath.Join(soundsDir, filepath.FromSlash(p.Name)+".wav")
		if _, err := os.Stat(src); err != nil {
			st.MissingAudio = append(st.MissingAudio, p.Name)
			continue
		}
		it := realItem{prompt: p, src: src, rel: "real/" + p.Name + ".wav"}
		it.prompt.Text = text
		switch {
		case !allowed:
			// A folder of its own, so that a glob over real/ can never
			// pick up evaluation audio.
			it.rel = "eval-real/" + p.Name + ".wav"
			it.manifest, it.split = ManifestEvalReal, SplitEval
			st.Eval++
		case SentenceSplit(text, devFraction) == SplitDev:
			it.manifest, it.split = ManifestRealDev, SplitDev
			st.Dev++
		default:
			it.manifest, it.split = ManifestRealTrain, SplitTrain
			st.Train++
		}
		items = append(items, it)
	}
	return items, st
}

// loadAsterisk reads the transcript (gzip'd or plain) and plans the items.
func loadAsterisk(transcript, sounds string, devFraction float64) ([]realItem, *RealStats, error) {
	f, err := os.Open(transcript)
	if err != nil {
		return nil, nil, fmt.Errorf("asterisk transcript: %w (is /usr/share/doc excluded by a dpkg path-exclude rule?)", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(transcript, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, fmt.Errorf("asterisk transcript: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	prompts, err := parseAsteriskTranscript(r)
	if err != nil {
		return nil, nil, fmt.Errorf("asterisk transcript: %w", err)
	}
	if len(prompts) < RealAllowedPrompts {
		return nil, nil, fmt.Errorf("asterisk transcript has %d prompts, fewer than the %d allowed ones", len(prompts), RealAllowedPrompts)
	}
	items, st := planReal(prompts, sounds, devFraction)
	return items, st, nil
}
