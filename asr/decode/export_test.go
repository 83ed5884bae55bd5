package decode

// Test hooks for the external tests, which live in package decode_test so that they can use
// the decodetest fakes (decodetest imports decode).

// SuppressBlankFilter returns the blank-suppression filter over tokens.
func SuppressBlankFilter(tokens []int) func(logits []float32, sampled []int) {
	return suppressBlank{tokens: tokens}.apply
}

// TimestampFilter returns the timestamp rules; maxInitial -1 means no bound.
func TimestampFilter(begin, eot, noTimestamps, maxInitial int) func(logits []float32, sampled []int) {
	return timestampRules{begin: begin, eot: eot, noTimestamps: noTimestamps, maxInitial: maxInitial}.apply
}

// SuppressList is the resolved suppress_tokens list of o, nil when the filter is off.
func (m Model) SuppressList(o Options) []int { return m.suppressTokens(o) }

// SampleSoftmax exposes the temperature sampler.
var SampleSoftmax = sampleSoftmax

// TopK exposes the beam search's candidate selection.
var TopK = topK
