package speech

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/data"
)

// utterance is one training example held in memory: its log-mel features in half precision
// (a corpus of tens of hours fits in a few GB), its text tokens and metadata.
type utterance struct {
	mel      []uint16 // [nMels][frames], IEEE half
	frames   int      // even: the conv stem halves it
	text     string
	tokens   []int // text tokens (no specials), with Whisper's leading space
	duration float64
	voice    string
}

// loadFeatures reads every entry's audio and computes its log-mel spectrogram the way
// transcription does for one window (Whisper's normalisation per clip, no 30-s padding).
// Entries that fail are reported through bad and left out. The features come from the
// feature cache when it holds this manifest's (featcache.go), and are written to it
// otherwise.
func loadFeatures(ctx context.Context, m *data.Manifest, nMels int, tokenize func(string) []int, maxFrames int,
	progress func(done, total int), bad func(i int, err error)) ([]*utterance, error) {
	cache := featureCachePath(m, nMels, maxFrames)
	var got []cachedUtterance
	if cache != "" {
		got = make([]cachedUtterance, len(m.Entries))
		ok, err := readFeatureCache(cache, nMels, len(m.Entries), func(i int, u cachedUtterance) {
			got[i] = u
			if progress != nil {
				progress(i+1, len(m.Entries))
			}
		})
		switch {
		case ok && err == nil:
			now := time.Now()
			os.Chtimes(cache, now, now) // recently used: kept by pruneFeatureCache
		case ok:
			os.Remove(cache) // unreadable: computed and written again below
			got = nil
		default:
			got = nil
		}
	}
	if got == nil {
		var err error
		if got, err = computeFeatures(ctx, m, nMels, maxFrames, progress); err != nil {
			return nil, err
		}
		if cache != "" {
			writeFeatureCache(cache, nMels, got) // best effort: the run goes on without a cache
		}
	}
	var kept []*utterance
	for i, c := range got {
		if c.err != nil {
			bad(i, c.err)
			continue
		}
		e := m.Entries[i]
		kept = append(kept, &utterance{mel: c.mel, frames: c.frames, text: e.Text, tokens: tokenize(" " + e.Text), duration: e.Duration, voice: e.Voice})
	}
	return kept, nil
}

// computeFeatures decodes every entry's audio and computes its features on all cores, in
// entry order; an entry that fails carries its error.
func computeFeatures(ctx context.Context, m *data.Manifest, nMels, maxFrames int, progress func(done, total int)) ([]cachedUtterance, error) {
	out := make([]cachedUtterance, len(m.Entries))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	jobs := make(chan int)
	for range max(1, runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u, err := loadOne(m.Entries[i].Path(m.Dir), nMels, maxFrames)
				if err != nil {
					out[i].err = err
				} else {
					out[i] = cachedUtterance{mel: u.mel, frames: u.frames}
				}
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(m.Entries))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range m.Entries {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func loadOne(path string, nMels, maxFrames int) (*utterance, error) {
	samples, err := audio.Load16kMono(path)
	if err != nil {
		return nil, err
	}
	spec, err := mel.LogMel(samples, nMels, 0)
	if err != nil {
		return nil, err
	}
	frames := spec.NFrames &^ 1
	if frames < 2 {
		return nil, fmt.Errorf("%s: too short (%d frames)", path, spec.NFrames)
	}
	if frames > maxFrames {
		return nil, fmt.Errorf("%s: %d frames exceed the model's %d", path, frames, maxFrames)
	}
	u := &utterance{mel: make([]uint16, nMels*frames), frames: frames}
	for b := range nMels {
		tensor.F32ToF16Slice(u.mel[b*frames:(b+1)*frames], spec.Data[b*spec.NFrames:b*spec.NFrames+frames])
	}
	return u, nil
}

// makeBatches groups utterances of similar length (sorted by frames) so that each batch's
// padded size B·maxFrames stays within budget frames and B within maxItems. The grouping is
// deterministic; the trainer's Order shuffles the batches.
func makeBatches(us []*utterance, budget, maxItems int) [][]int {
	idx := make([]int, len(us))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return us[idx[a]].frames < us[idx[b]].frames })
	var out [][]int
	var cur []int
	for _, i := range idx {
		f := us[i].frames
		if len(cur) > 0 && ((len(cur)+1)*f > budget || len(cur) >= maxItems) {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, i)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// spectrogram returns the utterance's features as transcription expects them: the audio's
// frames followed by a 30-s window of padding (transcribe uses only the content frames).
func (u *utterance) spectrogram(nMels int) *mel.Spectrogram {
	n := u.frames + mel.NFrames
	s := &mel.Spectrogram{NMels: nMels, NFrames: n, Data: make([]float32, nMels*n)}
	for b := range nMels {
		tensor.F16ToF32Slice(s.Data[b*n:b*n+u.frames], u.mel[b*u.frames:(b+1)*u.frames])
	}
	return s
}
