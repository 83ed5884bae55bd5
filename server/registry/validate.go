package registry

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// goldenWAV is the clip every variant must transcribe before it serves: 2.9 s of
// "the quick brown fox jumps over the dog", 16 kHz mono PCM16 (92 KB). Generated once with
// eSpeak NG 1.51 and SoX 14.4.2:
//
//	espeak-ng -v en-us -s 160 -w /tmp/golden_raw.wav "the quick brown fox jumps over the dog"
//	sox /tmp/golden_raw.wav -r 16000 -c 1 -b 16 -e signed-integer golden/golden.wav
//
//go:embed golden/golden.wav
var goldenWAV []byte

// goldenSamples decodes the golden clip; it is embedded, so a failure is a build bug and
// reported as a load failure rather than a panic.
func goldenSamples() ([]float32, error) {
	s, err := audio.Decode16kMono(bytes.NewReader(goldenWAV), 0)
	if err != nil {
		return nil, fmt.Errorf("golden clip: %w", err)
	}
	return s, nil
}

// goldenOptions decode greedily at temperature 0 with no fallback and no silence skipping,
// so that the golden transcript is deterministic (a card may pin it) and every window runs.
func goldenOptions() transcribe.Options {
	o := transcribe.DefaultOptions()
	o.Temperatures = []float64{0}
	o.NoSpeechThreshold = nil
	o.ConditionOnPreviousText = false
	return o
}

// weightFiles are the names a variant folder's weights may have, in the order asr.OpenFS
// looks for them.
var weightFiles = []string{"model.safetensors", "model.safetensors.zst"}

// versionLen is how many hex digits of the weights' SHA-256 make a version.
const versionLen = 12

// verify checks every file the card lists against its SHA-256 and returns the variant's
// version: the first versionLen hex digits of its weights file's SHA-256. Without a card (or
// with a card listing no sums) nothing can be checked, but the version is still computed.
func verify(ctx context.Context, src Source, c card, hasCard bool) (version string, err error) {
	if src.FS == nil { // a ggml file: one file, no card
		sum, err := asr.FileSHA256(src.Path)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidVariant, err)
		}
		return sum[:versionLen], nil
	}
	weights := ""
	for _, w := range weightFiles {
		if _, err := fs.Stat(src.FS, w); err == nil {
			weights = w
			break
		}
	}
	if weights == "" {
		return "", fmt.Errorf("%w: no %s", ErrInvalidVariant, strings.Join(weightFiles, " or "))
	}
	if !hasCard || len(c.Files) == 0 {
		sum, err := asr.FSFileSHA256(src.FS, weights)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrInvalidVariant, weights, err)
		}
		return sum[:versionLen], nil
	}
	// A card that lists sums but leaves out the weights or the config would let exactly the
	// files that matter through unchecked.
	for _, must := range []string{weights, "config.json"} {
		if _, ok := c.Files[must]; !ok {
			return "", fmt.Errorf("%w: card.json lists no checksum for %s", ErrInvalidVariant, must)
		}
	}
	for name, want := range c.Files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if !fs.ValidPath(name) || strings.Contains(name, "/") {
			return "", fmt.Errorf("%w: card.json lists %q, not a file of the folder", ErrInvalidVariant, name)
		}
		got, err := asr.FSFileSHA256(src.FS, name)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrInvalidVariant, name, err)
		}
		if !strings.EqualFold(got, want) {
			return "", fmt.Errorf("%w: %s: sha256 %s, card.json says %s", ErrInvalidVariant, name, got, want)
		}
	}
	return strings.ToLower(c.Files[weights])[:min(versionLen, len(c.Files[weights]))], nil
}

// sanity checks what a loaded variant needs to serve and that loading cannot catch: a
// tokenizer, a vocabulary that fits the model, a mel front end chorus computes.
func sanity(v *asr.Variant) error {
	if v == nil || v.Model == nil {
		return fmt.Errorf("%w: no model", ErrInvalidVariant)
	}
	if v.Config != nil {
		if err := v.Config.Validate(); err != nil {
			return fmt.Errorf("%w: config.json: %v", ErrInvalidVariant, err)
		}
	}
	if _, err := v.DecodeModel(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidVariant, err)
	}
	d := v.Model.Dims
	if d.NMels != 80 && d.NMels != 128 {
		return fmt.Errorf("%w: %d mel bins (chorus computes 80 or 128)", ErrInvalidVariant, d.NMels)
	}
	if n := v.Tokenizer.Size(); n > d.NVocab {
		return fmt.Errorf("%w: tokenizer has %d tokens, model's vocabulary %d", ErrInvalidVariant, n, d.NVocab)
	}
	// Capabilities are optional interfaces (STYLE 11): a model that can check itself does.
	if val, ok := any(v.Model).(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidVariant, err)
		}
	}
	return nil
}

// golden transcribes the golden clip and checks that the output is well formed (finite
// scores and times, valid UTF-8, tokens in the vocabulary) and, when want is set, that the
// text is want. It proves the weights compute, not that they are good: quality is the
// trainer's card's business.
func golden(ctx context.Context, v *asr.Variant, samples []float32, want *string) (string, error) {
	res, err := v.Transcribe(ctx, samples, goldenOptions())
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: golden clip: %v", ErrInvalidVariant, err)
	}
	if !utf8.ValidString(res.Text) {
		return "", fmt.Errorf("%w: golden clip: transcript is not UTF-8", ErrInvalidVariant)
	}
	for _, s := range res.Segments {
		for _, f := range []float64{s.Start, s.End, s.AvgLogprob, s.NoSpeechProb, s.CompressionRatio} {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return "", fmt.Errorf("%w: golden clip: segment %d has a non-finite score %v", ErrInvalidVariant, s.ID, f)
			}
		}
		for _, t := range s.Tokens {
			if t < 0 || t >= v.Model.Dims.NVocab {
				return "", fmt.Errorf("%w: golden clip: token %d outside the vocabulary", ErrInvalidVariant, t)
			}
		}
	}
	text := strings.TrimSpace(res.Text)
	if want != nil && text != strings.TrimSpace(*want) {
		return text, fmt.Errorf("%w: golden clip: transcript %q, card.json expects %q", ErrInvalidVariant, text, strings.TrimSpace(*want))
	}
	return text, nil
}

// warm runs one second of silence through the options requests use (temperature fallback,
// no-speech gate), the code path golden does not take, so the first request after a
// promotion does not pay for first-touch costs.
func warm(ctx context.Context, v *asr.Variant) error {
	if _, err := v.Transcribe(ctx, make([]float32, audio.WhisperRate), transcribe.DefaultOptions()); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: warm up: %v", ErrInvalidVariant, err)
	}
	return nil
}
