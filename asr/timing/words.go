package timing

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Punctuation OpenAI's transcribe() merges into the neighbouring word by default
// (ref: transcribe.py#L51-L52).
const (
	DefaultPrependPunctuations = "\"'“¿([{-"
	DefaultAppendPunctuations  = "\"'.。,，!！?？:：”)]}、"
)

// asciiPunctuation is Python's string.punctuation.
const asciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// noSpaceLanguages are split into words at every complete character (tokenizer.py#L278-L282).
var noSpaceLanguages = []string{"zh", "ja", "th", "lo", "my", "yue"}

// in is Python's `s in set` for strings: a substring test, so "" is in every set and so are
// runs such as "?!" of the set's characters in its order. OpenAI's checks rely on exactly
// this, and the empty words merging leaves behind depend on it.
func in(s, set string) bool { return strings.Contains(set, s) }

// SplitWords groups tokens into words as tokenizer.py's split_to_word_tokens does
// (ref: tokenizer.py#L277-L327): first into the shortest runs that decode to whole
// characters, then, except for languages written without spaces, each run joins the word
// before it unless it starts with a space, is punctuation, or is a special token (EOT).
func SplitWords(tokens []int, tok Tokenizer) (words []string, wordTokens [][]int) {
	subwords, subTokens := splitOnUnicode(tokens, tok.Decode)
	if slices.Contains(noSpaceLanguages, tok.Language) {
		return subwords, subTokens
	}
	for i, sub := range subwords {
		special := subTokens[i][0] >= tok.EOT
		if special || strings.HasPrefix(sub, " ") || in(strings.TrimSpace(sub), asciiPunctuation) || len(words) == 0 {
			words = append(words, sub)
			wordTokens = append(wordTokens, slices.Clone(subTokens[i]))
		} else {
			words[len(words)-1] += sub
			wordTokens[len(wordTokens)-1] = append(wordTokens[len(wordTokens)-1], subTokens[i]...)
		}
	}
	return words, wordTokens
}

// splitOnUnicode is tokenizer.py's split_tokens_on_unicode (ref: tokenizer.py#L286-L309): a
// run ends at the first token after which the decoded run holds no U+FFFD, or only one that
// the whole sequence's text has at that place too (a real U+FFFD in the text).
func splitOnUnicode(tokens []int, decode func([]int) string) (words []string, wordTokens [][]int) {
	full := []rune(decode(tokens))
	var cur []int
	offset := 0
	for _, t := range tokens {
		cur = append(cur, t)
		dec := decode(cur)
		idx := -1
		if i := strings.IndexRune(dec, utf8.RuneError); i >= 0 {
			idx = utf8.RuneCountInString(dec[:i])
		}
		if idx < 0 || (offset+idx < len(full) && full[offset+idx] == utf8.RuneError) {
			words = append(words, dec)
			wordTokens = append(wordTokens, cur)
			cur = nil
			offset += utf8.RuneCountInString(dec)
		}
	}
	return words, wordTokens
}

// MergePunctuations moves prepended punctuation (a word like " (" or " “") onto the word
// after it and appended punctuation ("." or ",") onto the word before it, leaving empty
// words behind, as timing.py's merge_punctuations does (ref: timing.py#L245-L276).
func MergePunctuations(a []WordTiming, prepended, appended string) {
	i, j := len(a)-2, len(a)-1
	for i >= 0 {
		prev, next := &a[i], &a[j]
		if strings.HasPrefix(prev.Word, " ") && in(strings.TrimSpace(prev.Word), prepended) {
			next.Word = prev.Word + next.Word
			next.Tokens = slices.Concat(prev.Tokens, next.Tokens)
			prev.Word, prev.Tokens = "", nil
		} else {
			j = i
		}
		i--
	}
	i, j = 0, 1
	for j < len(a) {
		prev, next := &a[i], &a[j]
		if !strings.HasSuffix(prev.Word, " ") && in(next.Word, appended) {
			prev.Word += next.Word
			prev.Tokens = slices.Concat(prev.Tokens, next.Tokens)
			next.Word, next.Tokens = "", nil
		} else {
			i = j
		}
		j++
	}
}

// Word is one word of a segment, OpenAI's segment["words"] entry: its text with its leading
// space and merged punctuation, start and end in seconds from the beginning of the audio,
// and the mean probability of its tokens.
type Word struct {
	Word        string  `json:"word"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Probability float64 `json:"probability"`
}

// Segment is what AddWordTimestamps reads and adjusts of one segment of a window.
type Segment struct {
	Start, End float64 // seconds from the beginning of the audio; adjusted to the words
	Tokens     []int   // the segment's tokens, timestamps included
	Words      []Word  // set by AddWordTimestamps
}

// sentenceEndMarks end a sentence for the duration heuristics (timing.py#L310).
const sentenceEndMarks = ".。!！?？"

// AddWordTimestamps aligns the text of one window's segments with the audio the Aligner has
// encoded (numFrames content frames, starting timeOffset seconds into the audio) and sets
// each segment's Words, as timing.py's add_word_timestamps does (ref: timing.py#L279-L388):
//
//   - one FindAlignment over all the segments' text tokens;
//   - the median word duration (nonzero ones, at most 0.7 s) and twice it as the longest
//     plausible word; a word longer than that which is, or follows, sentence-ending
//     punctuation is cut to it (before punctuation merging, as there);
//   - MergePunctuations, then the words handed out to the segments in token order, times
//     rounded to 10 ms;
//   - per segment, a first word after a pause (more than four median durations since
//     lastSpeech) that is too long is shortened, the first and last word are clamped to
//     the segment's own timestamps when they overshoot them by more than half a second,
//     and otherwise the segment's start and end move to its words'.
//
// lastSpeech is the end of the speech before the window (GetEnd of the segments so far).
func AddWordTimestamps(segs []Segment, a Aligner, tok Tokenizer, numFrames int, timeOffset, lastSpeech float64, prepended, appended string) error {
	if len(segs) == 0 {
		return nil
	}
	perSeg := make([][]int, len(segs))
	var text []int
	for i, s := range segs {
		for _, t := range s.Tokens {
			if t < tok.EOT {
				perSeg[i] = append(perSeg[i], t)
			}
		}
		text = append(text, perSeg[i]...)
	}
	align, err := FindAlignment(a, tok, text, numFrames, DefaultMedianFilter)
	if err != nil {
		return err
	}

	var durations []float64
	for _, w := range align {
		if d := w.End - w.Start; d != 0 {
			durations = append(durations, d)
		}
	}
	median := 0.0
	if len(durations) > 0 {
		median = medianOf(durations)
	}
	median = min(0.7, median)
	maxDur := median * 2

	if len(durations) > 0 {
		for i := 1; i < len(align); i++ {
			if align[i].End-align[i].Start > maxDur {
				if in(align[i].Word, sentenceEndMarks) {
					align[i].End = align[i].Start + maxDur
				} else if in(align[i-1].Word, sentenceEndMarks) {
					align[i].Start = align[i].End - maxDur
				}
			}
		}
	}

	MergePunctuations(align, prepended, appended)

	wi := 0
	for si := range segs {
		seg := &segs[si]
		saved := 0
		var words []Word
		for wi < len(align) && saved < len(perSeg[si]) {
			t := align[wi]
			if t.Word != "" {
				words = append(words, Word{Word: t.Word, Start: round2(timeOffset + t.Start), End: round2(timeOffset + t.End), Probability: t.Probability})
			}
			saved += len(t.Tokens)
			wi++
		}
		if len(words) > 0 {
			first := &words[0]
			if first.End-lastSpeech > median*4 &&
				(first.End-first.Start > maxDur || (len(words) > 1 && words[1].End-first.Start > maxDur*2)) {
				if len(words) > 1 && words[1].End-words[1].Start > maxDur {
					boundary := max(words[1].End/2, words[1].End-maxDur)
					first.End, words[1].Start = boundary, boundary
				}
				first.Start = max(0, first.End-maxDur)
			}
			if seg.Start < first.End && seg.Start-0.5 > first.Start {
				first.Start = max(0, min(first.End-median, seg.Start))
			} else {
				seg.Start = first.Start
			}
			last := &words[len(words)-1]
			if seg.End > last.Start && seg.End+0.5 < last.End {
				last.End = max(last.Start+median, seg.End)
			} else {
				seg.End = last.End
			}
			lastSpeech = seg.End
		}
		seg.Words = words
	}
	return nil
}

// GetEnd is the end of the last word of segs, or without words the last segment's end; ok is
// false without segments (ref: utils.py#L78-L82).
func GetEnd(segs []Segment) (end float64, ok bool) {
	for i := len(segs) - 1; i >= 0; i-- {
		if w := segs[i].Words; len(w) > 0 {
			return w[len(w)-1].End, true
		}
	}
	if len(segs) == 0 {
		return 0, false
	}
	return segs[len(segs)-1].End, true
}

// medianOf is numpy's median: the middle value, or the mean of the two middle ones.
func medianOf(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// round2 is Python's round(x, 2): to the nearest hundredth of the exact binary value, ties
// to even, which strconv's correctly rounded formatting gives.
func round2(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 2, 64), 64)
	if err != nil {
		return x
	}
	return v
}
