package whisper

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// State is one stream's compute state for a Model: scratch memory, the encoded audio window and
// the decoder caches of up to Seqs hypotheses (beam search). The Model stays read-only.
//
// Encoding and decoding have a scratch arena each: every pass of one of them repeats the same
// shapes, so each arena settles on its own buffers, and an arena that drops the sizes its last
// pass did not use (tensor.Ctx) does not hand the encoder's hundreds of megabytes back to the
// garbage collector after every decoded token, to fault them in again for the next window.
type State struct {
	m      *Model
	enc    *tensor.Ctx // scratch of Encode and SetAudio
	dec    *tensor.Ctx // scratch of Logits and AllLogits
	cross  *Caches     // cross-attention caches of the current window (shared by all hypotheses)
	seqs   []*Caches   // self-attention caches per hypothesis
	align  *Caches     // Align's own self-attention caches, made on first use
	logits []float32

	// routing runs the feed-forward blocks as experts (nil: dense); see SetRouting.
	routing Routing
}

// SetRouting makes the state run its feed-forward blocks through r (nil: the dense model)
// from the next Encode or Logits on. The word-alignment pass (Align) stays dense.
func (s *State) SetRouting(r Routing) { s.routing = r }

// Routing is the routing set by SetRouting.
func (s *State) Routing() Routing { return s.routing }

// NewState returns a state able to decode up to seqs hypotheses at once.
func (m *Model) NewState(seqs int) *State {
	m.huge.Do(m.hugePages)
	s := &State{m: m, enc: tensor.NewCtx(), dec: tensor.NewCtx(), cross: m.NewCaches()}
	for range max(seqs, 1) {
		s.seqs = append(s.seqs, m.ShareCross(s.cross))
	}
	return s
}

// Model returns the model the state runs.
func (s *State) Model() *Model { return s.m }

// Encode runs the encoder on a mel window [M, 3000] and prepares the cross-attention caches;
// it returns a copy of the audio features [1500, C] owned by the caller. All hypotheses are
// reset.
func (s *State) Encode(mel *tensor.T) *tensor.T {
	defer s.enc.Reset()
	xa := s.encode(mel).Clone()
	s.setAudio(xa)
	return xa
}

// EncodeInPlace is Encode without returning a copy of the features.
func (s *State) EncodeInPlace(mel *tensor.T) {
	defer s.enc.Reset()
	s.setAudio(s.encode(mel))
}

func (s *State) encode(mel *tensor.T) *tensor.T {
	if mel.Shape[0] != s.m.Dims.NMels {
		panic(fmt.Sprintf("whisper: mel has %d bins, model wants %d", mel.Shape[0], s.m.Dims.NMels))
	}
	return s.m.Encoder.ForwardRouted(s.enc, mel, s.routing)
}

// SetAudio installs audio features xa [T, C] (from Encode or elsewhere) for decoding.
func (s *State) SetAudio(xa *tensor.T) {
	defer s.enc.Reset()
	s.setAudio(xa)
}

// setAudio is SetAudio within a pass that resets the encoding arena itself (one Reset per
// pass: a second one, with nothing handed out since the first, would let the arena drop
// everything).
func (s *State) setAudio(xa *tensor.T) {
	s.m.Decoder.CrossCaches(s.enc, xa, s.cross)
	for _, c := range s.seqs {
		c.Truncate(0)
	}
}

// Logits feeds tokens to hypothesis seq and returns the logits [V] of its last position. The
// returned slice is reused by the next call.
func (s *State) Logits(seq int, tokens []int) []float32 {
	defer s.dec.Reset()
	out := s.m.Decoder.ForwardRouted(s.dec, tokens, s.seqs[seq], 1, s.routing)
	s.logits = append(s.logits[:0], out.Data...)
	return s.logits
}

// LogitsBatch feeds tokens[i] to hypothesis seqs[i], for every i at once (Decoder.StepBatch),
// and returns the logits [len(seqs)·V], row i what Logits(seqs[i], tokens[i:i+1]) returns.
// The returned slice is reused by the next call. The hypotheses must be distinct.
func (s *State) LogitsBatch(seqs, tokens []int) []float32 {
	defer s.dec.Reset()
	cs := make([]*Caches, len(seqs))
	for i, q := range seqs {
		cs[i] = s.seqs[q]
	}
	out := s.m.Decoder.StepBatch(s.dec, tokens, cs, s.routing)
	s.logits = append(s.logits[:0], out.Data...)
	return s.logits
}

// AllLogits feeds tokens to hypothesis seq and returns logits [len(tokens), V] for every
// position (a copy).
func (s *State) AllLogits(seq int, tokens []int) *tensor.T {
	defer s.dec.Reset()
	return s.m.Decoder.ForwardRouted(s.dec, tokens, s.seqs[seq], 0, s.routing).Clone()
}

// Len is the number of tokens hypothesis seq has consumed.
func (s *State) Len(seq int) int { return s.seqs[seq].Len() }

// Rewind drops hypothesis seq's tokens beyond n.
func (s *State) Rewind(seq, n int) { s.seqs[seq].Truncate(n) }

// Fork makes hypothesis dst a copy of src.
func (s *State) Fork(dst, src int) {
	if dst != src {
		s.seqs[dst].CopySelf(s.seqs[src])
	}
}

// Seqs is the number of hypotheses the state holds.
func (s *State) Seqs() int { return len(s.seqs) }
