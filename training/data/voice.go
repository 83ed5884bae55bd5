package data

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// TTS engines chorus may synthesise with (DATA.md, "Voices").
const (
	EngineEspeak   = "espeak-ng"
	EngineFlite    = "flite"
	EngineFestival = "festival"
)

// ErrReservedVoice is returned for a voice DATA.md keeps for evaluation:
// flite awb (and kal, which is not listed), SVOX Pico, every MBROLA voice,
// and any voice not on the allowed list.
var ErrReservedVoice = errors.New("voice reserved for evaluation")

// Voice is one allowed TTS voice. Its String form ("espeak-ng:en-us+m3",
// "flite:slt", "festival:kal_diphone") is what manifests record and what
// ParseVoice reads.
type Voice struct {
	Engine  string
	Name    string
	Variant string // espeak-ng only: a file under espeak-ng-data/voices/!v
}

func (v Voice) String() string {
	s := v.Engine + ":" + v.Name
	if v.Variant != "" {
		s += "+" + v.Variant
	}
	return s
}

// Allowed voice names per engine. espeak-ng's list is its English voices
// outside the mb/ (MBROLA) folder; "en-uk" is left out because espeak-ng
// resolves it to the MBROLA voice mb-en1.
var (
	espeakEnglish  = []string{"en", "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"}
	fliteAllowed   = []string{"slt", "rms", "kal16"}
	festivalVoices = map[string]debPackage{
		"kal_diphone":           {"festvox-kallpc16k", "/usr/share/festival/voices/english/kal_diphone"},
		"ked_diphone":           {"festvox-kdlpc16k", "/usr/share/festival/voices/english/ked_diphone"},
		"cmu_us_slt_arctic_hts": {"festvox-us-slt-hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"},
	}
	variantName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// DefaultEspeakVariants are the espeak-ng variants DefaultVoices uses: the
// base voice, the numbered male and female variants and the Klatt ones.
// Novelty variants (whisper, croak, robots) are allowed but left out of
// the default mix.
var DefaultEspeakVariants = []string{
	"", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
	"f1", "f2", "f3", "f4", "f5",
	"klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
}

// devEspeakVariants and devFlite are the held-out allowed voices: they
// speak only the dev-voices split. Two espeak-ng variants (one male, one
// female, with every accent) and the one flite voice that no other engine
// shares a speaker with (slt and kal have festival twins), so dev-voices
// measures a genuinely unheard speaker.
var (
	devEspeakVariants = []string{"m7", "f4"}
	devFlite          = []string{"rms"}
)

// IsDevVoice reports whether v is held out for the dev-voices split.
func IsDevVoice(v Voice) bool {
	switch v.Engine {
	case EngineEspeak:
		return slices.Contains(devEspeakVariants, v.Variant)
	case EngineFlite:
		return slices.Contains(devFlite, v.Name)
	}
	return false
}

// DefaultVoices is every allowed accent × DefaultEspeakVariants for
// espeak-ng (the plain "en" alias of en-gb is left out as a duplicate),
// the three flite voices and the three festival voices, held-out voices
// included (Synth routes them to dev-voices).
func DefaultVoices() []Voice {
	var vs []Voice
	for _, acc := range espeakEnglish[1:] {
		for _, va := range DefaultEspeakVariants {
			vs = append(vs, Voice{Engine: EngineEspeak, Name: acc, Variant: va})
		}
	}
	for _, n := range fliteAllowed {
		vs = append(vs, Voice{Engine: EngineFlite, Name: n})
	}
	for _, n := range sortedKeys(festivalVoices) {
		vs = append(vs, Voice{Engine: EngineFestival, Name: n})
	}
	return vs
}

// ParseVoice parses "engine:name[+variant]" ("espeak" is accepted for
// espeak-ng) and checks it against DATA.md: a reserved or unlisted voice
// returns ErrReservedVoice.
func ParseVoice(s string) (Voice, error) {
	eng, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || rest == "" {
		return Voice{}, fmt.Errorf("parse voice %q: want engine:name (espeak-ng:en-us+m3, flite:slt, festival:kal_diphone)", s)
	}
	v := Voice{Engine: strings.ToLower(eng)}
	if v.Engine == "espeak" {
		v.Engine = EngineEspeak
	}
	v.Name, v.Variant, _ = strings.Cut(rest, "+")
	if v.Engine == EngineEspeak {
		v.Name = strings.ToLower(v.Name)
	}
	if err := v.Validate(); err != nil {
		return Voice{}, err
	}
	return v, nil
}

// Validate checks v against DATA.md's allowed voices.
func (v Voice) Validate() error {
	switch v.Engine {
	case EngineEspeak:
		if strings.HasPrefix(v.Name, "mb-") || strings.HasPrefix(v.Name, "mb/") || v.Name == "en-uk" {
			return fmt.Errorf("%w: %s is an MBROLA voice", ErrReservedVoice, v)
		}
		if !slices.Contains(espeakEnglish, v.Name) {
			return fmt.Errorf("%w: %s is not an allowed English espeak-ng voice", ErrReservedVoice, v)
		}
		if v.Variant != "" && !variantName.MatchString(v.Variant) {
			return fmt.Errorf("voice %s: bad variant name %q", v, v.Variant)
		}
	case EngineFlite:
		if v.Variant != "" {
			return fmt.Errorf("voice %s: flite voices have no variants", v)
		}
		if !slices.Contains(fliteAllowed, v.Name) {
			return fmt.Errorf("%w: flite %s is not slt, rms or kal16", ErrReservedVoice, v.Name)
		}
	case EngineFestival:
		if v.Variant != "" {
			return fmt.Errorf("voice %s: festival voices have no variants", v)
		}
		if _, ok := festivalVoices[v.Name]; !ok {
			return fmt.Errorf("%w: festival %s is not kal_diphone, ked_diphone or cmu_us_slt_arctic_hts", ErrReservedVoice, v.Name)
		}
	case "pico", "pico2wave", "svox", "mbrola":
		return fmt.Errorf("%w: %s voices", ErrReservedVoice, v.Engine)
	default:
		return fmt.Errorf("%w: engine %q is not espeak-ng, flite or festival", ErrReservedVoice, v.Engine)
	}
	return nil
}

// VoiceParams are the per-utterance prosody settings drawn for a voice.
type VoiceParams struct {
	Rate    int     // espeak-ng -s, words per minute
	Pitch   int     // espeak-ng -p, 0–99
	Stretch float64 // flite duration_stretch / festival Duration_Stretch (>1 is slower)
	Tempo   float64 // sox tempo factor, for the HTS voice, which ignores Duration_Stretch
	Cents   int     // sox pitch shift for flite and festival voices
}

func (p VoiceParams) String() string {
	var parts []string
	if p.Rate != 0 {
		parts = append(parts, "s="+strconv.Itoa(p.Rate))
	}
	if p.Pitch != 0 {
		parts = append(parts, "p="+strconv.Itoa(p.Pitch))
	}
	if p.Stretch != 0 {
		parts = append(parts, "stretch="+strconv.FormatFloat(p.Stretch, 'f', 2, 64))
	}
	if p.Tempo != 0 {
		parts = append(parts, "tempo="+strconv.FormatFloat(p.Tempo, 'f', 2, 64))
	}
	if p.Cents != 0 {
		parts = append(parts, "cents="+strconv.Itoa(p.Cents))
	}
	return strings.Join(parts, " ")
}

// drawParams picks prosody for v: espeak-ng rate 130–200 and pitch 30–70
// (DATA.md's "varied speed and pitch"); for flite and the festival diphone
// voices a duration stretch of 0.85–1.20, and for the HTS voice an
// equivalent sox tempo; for all non-espeak voices a pitch shift of up to
// ±150 cents half the time, since they have only one speaker each.
func drawParams(v Voice, rng *rand.Rand) VoiceParams {
	var p VoiceParams
	switch v.Engine {
	case EngineEspeak:
		p.Rate = 130 + rng.IntN(71)
		p.Pitch = 30 + rng.IntN(41)
		return p
	case EngineFestival:
		if v.Name == "cmu_us_slt_arctic_hts" {
			p.Tempo = round2(0.85 + 0.30*rng.Float64())
			break
		}
		p.Stretch = round2(0.85 + 0.35*rng.Float64())
	case EngineFlite:
		p.Stretch = round2(0.85 + 0.35*rng.Float64())
	}
	if rng.IntN(2) == 0 {
		p.Cents = rng.IntN(301) - 150
	}
	return p
}

func round2(x float64) float64 { return float64(int(x*100+0.5)) / 100 }

// ttsCommand returns the command that speaks the text in textFile with v
// and p into out (a WAV at the engine's own rate). For festival voices it
// is text2wave, which synthesis does not run (a long-lived festivalProc
// writes the same bytes without a process start per utterance) but which
// festivalProc is tested against.
func ttsCommand(ctx context.Context, v Voice, p VoiceParams, textFile, out string) *exec.Cmd {
	switch v.Engine {
	case EngineEspeak:
		name := v.Name
		if v.Variant != "" {
			name += "+" + v.Variant
		}
		return exec.CommandContext(ctx, "espeak-ng", "-v", name,
			"-s", strconv.Itoa(p.Rate), "-p", strconv.Itoa(p.Pitch), "-w", out, "-f", textFile)
	case EngineFlite:
		args := []string{"-voice", v.Name}
		if p.Stretch != 0 {
			args = append(args, "--setf", "duration_stretch="+strconv.FormatFloat(p.Stretch, 'f', 2, 64))
		}
		return exec.CommandContext(ctx, "flite", append(args, "-f", textFile, "-o", out)...)
	default:
		args := []string{"-eval", "(voice_" + v.Name + ")"}
		if p.Stretch != 0 {
			args = append(args, "-eval", "(Parameter.set 'Duration_Stretch "+strconv.FormatFloat(p.Stretch, 'f', 2, 64)+")")
		}
		return exec.CommandContext(ctx, "text2wave", append(args, "-o", out, textFile)...)
	}
}

// toolPackages lists the Debian packages the voices need, with sox always.
func toolPackages(voices []Voice) []debPackage {
	pkgs := []debPackage{{"sox", "/usr/bin/sox"}}
	seen := map[string]bool{}
	for _, v := range voices {
		var p debPackage
		switch v.Engine {
		case EngineEspeak:
			p = debPackage{"espeak-ng", "/usr/bin/espeak-ng"}
		case EngineFlite:
			p = debPackage{"flite", "/usr/bin/flite"}
		case EngineFestival:
			if !seen["festival"] {
				seen["festival"] = true
				pkgs = append(pkgs, debPackage{"festival", "/usr/bin/text2wave"})
			}
			p = festivalVoices[v.Name]
		}
		if p.Name != "" && !seen[p.Name] {
			seen[p.Name] = true
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// checkEspeakVariants confirms every espeak-ng variant in voices exists in
// the installed espeak-ng data: espeak-ng silently falls back to the plain
// voice for an unknown variant, which would mislabel the audio.
func checkEspeakVariants(ctx context.Context, voices []Voice) error {
	var dir string
	for _, v := range voices {
		if v.Engine != EngineEspeak || v.Variant == "" {
			continue
		}
		if dir == "" {
			out, err := exec.CommandContext(ctx, "espeak-ng", "--version").Output()
			if err != nil {
				return fmt.Errorf("espeak-ng --version: %w", err)
			}
			_, d, ok := strings.Cut(string(out), "Data at:")
			if !ok {
				return fmt.Errorf("espeak-ng --version: no data folder in %q", strings.TrimSpace(string(out)))
			}
			dir = filepath.Join(strings.TrimSpace(d), "voices", "!v")
		}
		if _, err := os.Stat(filepath.Join(dir, v.Variant)); err != nil {
			return fmt.Errorf("voice %s: no espeak-ng variant %q in %s", v, v.Variant, dir)
		}
	}
	return nil
}
