package data

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/chorus-asr/chorus/asr/metrics"
)

// Split names. Synthesis writes one manifest per split (SplitTrain →
// train.jsonl …); real speech writes real-train, real-dev and eval-real.
const (
	SplitTrain     = "train"
	SplitDev       = "dev"
	SplitDevVoices = "dev-voices"
	SplitEval      = "eval"
)

// devSalt versions the sentence split. Changing it reshuffles which
// sentences are held out, which invalidates every dev score measured
// before, so it is a constant rather than an option.
const devSalt = "chorus/dev-sentences/v1\x00"

// SentenceSplit assigns a sentence to SplitTrain or SplitDev: dev when a
// salted SHA-256 of its normalised text, read as a fraction of 2^64, falls
// below devFraction. The split depends only on the text, not on the
// synthesis seed or on what else is in the corpus, so a sentence is held
// out in every corpus chorus builds, and two spellings that normalise
// alike ("Don't!" and "don't") land on the same side.
func SentenceSplit(text string, devFraction float64) string {
	if unitHash(devSalt, metrics.Normalize(text)) < devFraction {
		return SplitDev
	}
	return SplitTrain
}

// unitHash maps salt+s to a uniform value in [0, 1).
func unitHash(salt, s string) float64 {
	h := sha256.Sum256([]byte(salt + s))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}
