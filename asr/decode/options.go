package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Tasks.
const (
	TaskTranscribe = "transcribe"
	TaskTranslate  = "translate"
)

// Options control one window's decoding; they mirror OpenAI's DecodingOptions
// (ref: openai/whisper decoding.py#L80-L114). The zero value is greedy decoding at temperature
// 0 with no token suppression and no initial-timestamp limit; DefaultOptions gives OpenAI's
// defaults.
type Options struct {
	// Task is TaskTranscribe ("" means the same) or TaskTranslate.
	Task string
	// Language is the spoken language's code. "" detects it with DetectLanguage on
	// multilingual models and means English on English-only ones.
	Language string

	// Temperature 0 picks the most likely token (or runs beam search when BeamSize > 0);
	// above 0 tokens are sampled from softmax(logits/Temperature) with Rand.
	Temperature float64
	// SampleLen is the maximum number of tokens to sample; 0 means TextCtx/2 (224).
	SampleLen int
	// BestOf is the number of independent samples at Temperature > 0 (0 means 1); the one
	// the ranker prefers comes first.
	BestOf int
	// BeamSize > 0 runs beam search (Temperature must be 0).
	BeamSize int
	// Patience scales how many finished candidates beam search collects before it stops
	// (arXiv:2204.05424): round(BeamSize·Patience). 0 means 1; requires BeamSize.
	Patience float64
	// LengthPenalty nil ranks candidates by sum log-prob / length; otherwise it is the alpha
	// in [0, 1] of Google NMT's ((5+length)/6)^alpha (ref: decoding.py#L190-L213).
	LengthPenalty *float64

	// Prompt is previous-context text tokens, fed after <|startofprev|> (only the last
	// TextCtx/2-1 are kept). Prefix is forced after the SOT sequence as the start of this
	// window's text. Build them from text with ContextTokens.
	Prompt, Prefix []int

	// SuppressTokens are token ids never sampled. A -1 entry stands for the non-speech symbols
	// (NonSpeechTokens). When the list is non-empty the special tokens transcribe, translate,
	// SOT, startofprev, startoflm and nospeech are suppressed too; when it is empty no token
	// is (ref: decoding.py#L557-L558, #L615-L642).
	SuppressTokens []int
	// SuppressBlank forbids a blank (Encode(" ")) or EOT as the first sampled token.
	SuppressBlank bool

	// WithoutTimestamps appends <|notimestamps|> and samples text tokens only.
	WithoutTimestamps bool
	// MaxInitialTimestamp bounds the first timestamp, in seconds; 0 means no bound.
	MaxInitialTimestamp float64

	// CTCWeight is λ of joint CTC/attention decoding (see CTCRunner): with a runner whose
	// model has a CTC head, greedy and beam search rank tokens by (1−λ)·log p_att + λ·the CTC
	// prefix score, and sampling at a temperature draws from those joint scores. 0 turns it
	// off; models without a CTC head (Whisper's own checkpoints) ignore it. Between 0 and 1.
	CTCWeight float64
	// LMWeight is β of shallow fusion with the model's language model (Model.LM): beam search
	// adds β·ln p_lm to each text token's and EOT's score, and LMBonus to each text token's
	// (offsetting the LM's preference for short texts). Greedy decoding and sampling leave
	// the LM out: with one hypothesis, an early step the LM favours cannot be taken back (on
	// chorus-micro greedy WER rose from 26.0 to 27.6% with it). 0 turns it off; a model
	// without a language model ignores both. β at least 0.
	LMWeight, LMBonus float64

	// Rand is the sampling source at Temperature > 0. Nil uses a fixed seed, so decoding is
	// reproducible but every call draws the same sequence of numbers.
	Rand *rand.Rand
}

// DefaultOptions returns OpenAI's DecodingOptions defaults: suppress "-1", suppress blank,
// timestamps on with the first one at most 1 s, greedy at temperature 0. Chorus adds joint
// CTC/attention decoding at DefaultCTCWeight, which only models with a CTC head use, so
// Whisper's checkpoints decode exactly as OpenAI's code decodes them.
func DefaultOptions() Options {
	return Options{
		SuppressTokens:      []int{-1},
		SuppressBlank:       true,
		MaxInitialTimestamp: 1.0,
		CTCWeight:           DefaultCTCWeight,
		LMWeight:            DefaultLMWeight,
		LMBonus:             DefaultLMBonus,
	}
}

// DefaultLMWeight and DefaultLMBonus are the shallow-fusion settings of DefaultOptions, used by
// models that carry a language model; chosen on chorus-micro's development utterances 150–299
// with beam 5 and CTC 0.3 (docs/BENCHMARKS.md, "Joint CTC/attention decoding"; beams of 8–12
// moved the best weights little).
const (
	DefaultLMWeight = 0.3
	DefaultLMBonus  = 0.5
)

// DefaultCTCWeight is the CTC weight of DefaultOptions, chosen on chorus-micro's development
// utterances 150–299 (docs/BENCHMARKS.md, "Joint CTC/attention decoding").
const DefaultCTCWeight = 0.3

// ContextTokens encodes text the way DecodingTask encodes a string prompt or prefix: a leading
// space and the text with surrounding white space trimmed (ref: decoding.py#L591-L593).
func ContextTokens(v Vocab, text string) []int {
	return v.Encode(" " + strings.TrimSpace(text))
}

// verify rejects option combinations DecodingTask rejects (ref: decoding.py#L572-L585) and
// values that cannot mean anything.
func (o Options) verify() error {
	switch {
	case o.Task != "" && o.Task != TaskTranscribe && o.Task != TaskTranslate:
		return fmt.Errorf("decode: unknown task %q", o.Task)
	case !(o.Temperature >= 0) || math.IsInf(o.Temperature, 1):
		return fmt.Errorf("decode: temperature %g is not a non-negative number", o.Temperature)
	case o.SampleLen < 0:
		return fmt.Errorf("decode: negative sample length %d", o.SampleLen)
	case o.BestOf < 0, o.BeamSize < 0:
		return fmt.Errorf("decode: negative best-of %d or beam size %d", o.BestOf, o.BeamSize)
	case o.BeamSize > 0 && o.BestOf > 0:
		return fmt.Errorf("decode: beam size and best-of can't be given together")
	case o.Temperature == 0 && o.BestOf > 0:
		return fmt.Errorf("decode: best-of with greedy sampling (temperature 0) is not compatible")
	case o.BeamSize > 0 && o.Temperature != 0:
		// OpenAI silently runs beam search whatever the temperature; say so instead.
		return fmt.Errorf("decode: beam search requires temperature 0, got %g", o.Temperature)
	case o.Patience != 0 && o.BeamSize == 0:
		return fmt.Errorf("decode: patience requires a beam size")
	case !(o.Patience >= 0) || math.IsInf(o.Patience, 1):
		return fmt.Errorf("decode: patience %g is not a non-negative number", o.Patience)
	case o.LengthPenalty != nil && !(*o.LengthPenalty >= 0 && *o.LengthPenalty <= 1):
		return fmt.Errorf("decode: length penalty (alpha) %g should be between 0 and 1", *o.LengthPenalty)
	case !(o.CTCWeight >= 0 && o.CTCWeight <= 1):
		return fmt.Errorf("decode: CTC weight %g should be between 0 and 1", o.CTCWeight)
	case !(o.LMWeight >= 0) || math.IsInf(o.LMWeight, 1) || math.IsNaN(o.LMBonus) || math.IsInf(o.LMBonus, 0):
		return fmt.Errorf("decode: LM weight %g and bonus %g must be finite, the weight not negative", o.LMWeight, o.LMBonus)
	case !(o.MaxInitialTimestamp >= 0) || math.IsInf(o.MaxInitialTimestamp, 1):
		return fmt.Errorf("decode: max initial timestamp %g is not a non-negative number", o.MaxInitialTimestamp)
	}
	for _, t := range o.SuppressTokens {
		if t < -1 {
			return fmt.Errorf("decode: suppress token %d is negative (only -1, the non-speech set, is)", t)
		}
	}
	if o.BeamSize > 0 {
		if n := o.maxCandidates(); n <= 0 {
			return fmt.Errorf("decode: beam size %d with patience %g keeps no candidates", o.BeamSize, o.Patience)
		}
	}
	return nil
}

// groupSize is the number of hypotheses decoded together (ref: decoding.py#L527).
func (o Options) groupSize() int {
	switch {
	case o.BeamSize > 0:
		return o.BeamSize
	case o.BestOf > 0:
		return o.BestOf
	}
	return 1
}

// maxCandidates is how many finished sequences beam search collects before it stops
// (ref: decoding.py#L312-L313). Python's round is round-half-to-even.
func (o Options) maxCandidates() int {
	p := o.Patience
	if p == 0 {
		p = 1
	}
	return int(math.RoundToEven(float64(o.BeamSize) * p))
}

// sotSequence is the SOT sequence of OpenAI's tokenizer for the given language token (-1 for
// none): SOT, then language and task on multilingual models, then <|notimestamps|> when
// timestamps are off (ref: tokenizer.py#L151-L159, decoding.py#L531-L533).
func (m Model) sotSequence(langToken int, o Options) []int {
	seq := []int{m.Specials.SOT}
	if m.Specials.Multilingual {
		seq = append(seq, langToken)
		if o.Task == TaskTranslate {
			seq = append(seq, m.Specials.Translate)
		} else {
			seq = append(seq, m.Specials.Transcribe)
		}
	}
	if o.WithoutTimestamps {
		seq = append(seq, m.Specials.NoTimestamps)
	}
	return seq
}

// initialTokens builds [<|startofprev|> prompt…] SOT-sequence [prefix…] and returns it with the
// index of SOT in it (ref: decoding.py#L587-L613).
//
// One deliberate difference: OpenAI keeps prefix[-max_prefix_len:] with max_prefix_len =
// TextCtx/2 - sampleLen, which for the default sample length is prefix[-0:], the whole
// prefix, and for longer sample lengths cuts from the wrong end. Here the prefix is kept whole
// unless max_prefix_len is positive, in which case its last max_prefix_len tokens are kept;
// for the default options both give the same tokens.
func (m Model) initialTokens(sot []int, o Options, sampleLen int) (tokens []int, sotIndex int) {
	if len(o.Prompt) > 0 {
		prompt := o.Prompt
		if keep := m.TextCtx/2 - 1; len(prompt) > keep {
			prompt = prompt[len(prompt)-keep:]
		}
		tokens = append(tokens, m.Specials.SOTPrev)
		tokens = append(tokens, prompt...)
	}
	sotIndex = len(tokens)
	tokens = append(tokens, sot...)
	if len(o.Prefix) > 0 {
		prefix := o.Prefix
		if keep := m.TextCtx/2 - sampleLen; keep > 0 && len(prefix) > keep {
			prefix = prefix[len(prefix)-keep:]
		}
		tokens = append(tokens, prefix...)
	}
	return tokens, sotIndex
}

// suppressTokens resolves Options.SuppressTokens into the sorted ids to mask, or nil when the
// filter is off (ref: decoding.py#L615-L642).
func (m Model) suppressTokens(o Options) []int {
	if len(o.SuppressTokens) == 0 {
		return nil
	}
	var ids []int
	nonSpeech := false
	for _, t := range o.SuppressTokens {
		if t == -1 {
			nonSpeech = true
		} else if t >= 0 {
			ids = append(ids, t)
		}
	}
	if nonSpeech {
		ids = append(ids, NonSpeechTokens(m.Vocab)...)
	}
	s := m.Specials
	ids = append(ids, s.Transcribe, s.Translate, s.SOT, s.SOTPrev, s.SOTLM)
	if s.NoSpeech >= 0 {
		ids = append(ids, s.NoSpeech)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// maxInitialTimestampIndex converts MaxInitialTimestamp into a number of timestamp steps, or
// -1 for no bound (ref: decoding.py#L560-L565).
func (m Model) maxInitialTimestampIndex(o Options) int {
	if o.MaxInitialTimestamp == 0 {
		return -1
	}
	return int(math.RoundToEven(o.MaxInitialTimestamp / m.TimePrecision()))
}
