package speech

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/training/data"
)

// Score is WER and CER over a set of utterances (corpus-level: errors over reference words).
type Score struct {
	Utterances int     `json:"utterances"`
	Words      int     `json:"words"`
	WER        float64 `json:"wer"`
	CER        float64 `json:"cer"`
}

// EvalReport is what `chorus eval` prints and writes into the variant's card.
type EvalReport struct {
	Manifest string           `json:"manifest"`
	Overall  Score            `json:"overall"`
	ByVoice  map[string]Score `json:"by_voice"`
	BySource map[string]Score `json:"by_source"`
	// Beam, CTCWeight and Timestamps are how it decoded (beam 1: greedy).
	Beam       int     `json:"beam"`
	CTCWeight  float64 `json:"ctc_weight"`
	LMWeight   float64 `json:"lm_weight"`
	Timestamps bool    `json:"timestamps"`
	// RTF is compute time over audio time (workers in parallel count their own compute
	// time).
	RTF      float64 `json:"rtf"`
	AudioSec float64 `json:"audio_s"`
	Workers  int     `json:"workers"`
	Errors   int     `json:"errors"`
	// Utterances are the transcribed utterances in manifest order (those that failed are
	// left out), for error analysis (`chorus eval --hyps`); not part of the card.
	Utterances []Utterance `json:"-"`
}

// Utterance is one evaluated utterance: its manifest entry as read, what was decoded and the
// word-level alignment counts against the normalised reference.
type Utterance struct {
	data.Entry
	Hyp   string `json:"hyp"`
	Words int    `json:"words"`
	Sub   int    `json:"sub"`
	Del   int    `json:"del"`
	Ins   int    `json:"ins"`
}

// EvalOptions tune Evaluate.
type EvalOptions struct {
	Workers int // utterances decoded in parallel (default 1: RTF per stream)
	Limit   int // first Limit utterances only (0: all), after Skip
	Skip    int // utterances skipped at the start (a tuning slice beside a report slice)
	// Timestamps decodes in timestamp mode, as `chorus transcribe` and the server do (Whisper's
	// default); without it the decoder is asked for text only (<|notimestamps|>).
	Timestamps bool
	// CTCWeight is decode.Options.CTCWeight (nil: decode.DefaultCTCWeight); Beam > 1 runs beam
	// search of that width (transcribe.Options.SetBeam), 0 or 1 greedy decoding.
	CTCWeight *float64
	Beam      int
	// LMWeight and LMBonus are decode.Options' shallow-fusion settings (nil: the defaults);
	// Patience is beam search's (0: 1).
	LMWeight, LMBonus *float64
	Patience          float64
	Progress          func(done, total int)
	Bad               func(path string, err error)
}

type scored struct {
	entry          data.Entry
	hyp            string
	audio, compute float64
}

// Evaluate transcribes every utterance of a manifest (greedily unless Beam says otherwise; no
// timestamps unless asked) and scores it with the project's normaliser, overall and per voice
// and source.
func Evaluate(ctx context.Context, v *asr.Variant, m *data.Manifest, o EvalOptions) (*EvalReport, error) {
	entries := m.Entries[min(max(o.Skip, 0), len(m.Entries)):]
	if o.Limit > 0 && o.Limit < len(entries) {
		entries = entries[:o.Limit]
	}
	workers := max(1, o.Workers)
	opts := transcribe.DefaultOptions()
	opts.Decode.WithoutTimestamps = !o.Timestamps
	if o.CTCWeight != nil {
		opts.Decode.CTCWeight = *o.CTCWeight
	}
	opts.SetBeam(o.Beam)
	if o.LMWeight != nil {
		opts.Decode.LMWeight = *o.LMWeight
	}
	if o.LMBonus != nil {
		opts.Decode.LMBonus = *o.LMBonus
	}
	if opts.Decode.BeamSize > 0 {
		opts.Decode.Patience = o.Patience
	}
	results := make([]*scored, len(entries))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
		errs int
	)
	jobs := make(chan int)
	// One Transcriber per worker: its decode state (the encoder's and decoder's scratch, the
	// caches) is made once and reused by every utterance the worker takes; a fresh state per
	// utterance spent 15–25% of a short utterance's time having the runtime allocate and zero
	// those buffers again.
	trs := make([]*asr.Transcriber, workers)
	for w := range trs {
		tr, err := v.NewTranscriber()
		if err != nil {
			return nil, err
		}
		trs[w] = tr
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := trs[w]
			for i := range jobs {
				e := entries[i]
				path := e.AudioFilepath
				if !filepath.IsAbs(path) {
					path = filepath.Join(m.Dir, path)
				}
				samples, err := audio.Load16kMono(path)
				var res *transcribe.Result
				start := time.Now()
				if err == nil {
					res, err = tr.Transcribe(ctx, samples, opts)
				}
				compute := time.Since(start).Seconds()
				mu.Lock()
				done++
				if err != nil {
					errs++
					if o.Bad != nil {
						o.Bad(path, err)
					}
				} else {
					results[i] = &scored{entry: e, hyp: strings.TrimSpace(res.Text), audio: float64(len(samples)) / audio.WhisperRate,
						compute: compute}
				}
				if o.Progress != nil {
					o.Progress(done, len(entries))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range entries {
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
	rep := &EvalReport{Manifest: m.Dir, ByVoice: map[string]Score{}, BySource: map[string]Score{}, Workers: workers, Errors: errs,
		Beam: max(1, opts.Decode.BeamSize), CTCWeight: opts.Decode.CTCWeight, Timestamps: o.Timestamps}
	if v.LM != nil && opts.Decode.BeamSize > 0 { // greedy decoding leaves the LM out
		rep.LMWeight = opts.Decode.LMWeight
	}
	groups := map[string][]*scored{}
	var all []*scored
	var compute float64
	for _, r := range results {
		if r == nil {
			continue
		}
		all = append(all, r)
		c := metrics.WordCounts(r.entry.Text, r.hyp)
		rep.Utterances = append(rep.Utterances, Utterance{Entry: r.entry, Hyp: r.hyp, Words: c.Ref, Sub: c.Sub, Del: c.Del, Ins: c.Ins})
		groups["v:"+r.entry.Voice] = append(groups["v:"+r.entry.Voice], r)
		groups["s:"+r.entry.Source] = append(groups["s:"+r.entry.Source], r)
		rep.AudioSec += r.audio
		compute += r.compute
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("eval: no utterance could be transcribed (%d errors)", errs)
	}
	rep.RTF = compute / rep.AudioSec
	rep.Overall = score(all)
	for k, g := range groups {
		if strings.HasPrefix(k, "v:") {
			rep.ByVoice[k[2:]] = score(g)
		} else {
			rep.BySource[k[2:]] = score(g)
		}
	}
	return rep, nil
}

func score(rs []*scored) Score {
	refs := make([]string, len(rs))
	hyps := make([]string, len(rs))
	for i, r := range rs {
		refs[i], hyps[i] = r.entry.Text, r.hyp
	}
	we, ww := metrics.WER(refs, hyps)
	ce, cc := metrics.CER(refs, hyps)
	return Score{Utterances: len(rs), Words: ww, WER: float64(we) / float64(max(1, ww)), CER: float64(ce) / float64(max(1, cc))}
}

// Print writes a report as a table.
func (r *EvalReport) Print(w *os.File) {
	fmt.Fprintf(w, "%-40s %6s %7s %7s %7s\n", "set", "utts", "words", "WER%", "CER%")
	row := func(name string, s Score) {
		fmt.Fprintf(w, "%-40s %6d %7d %7.2f %7.2f\n", name, s.Utterances, s.Words, 100*s.WER, 100*s.CER)
	}
	row("overall", r.Overall)
	for _, part := range []struct {
		label string
		m     map[string]Score
	}{{"source", r.BySource}, {"voice", r.ByVoice}} {
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row(part.label+" "+k, part.m[k])
		}
	}
	mode := "text only"
	if r.Timestamps {
		mode = "timestamps"
	}
	fmt.Fprintf(w, "real-time factor %.4f over %.1f s of audio (%d workers), %d errors; beam %d, CTC weight %g, LM weight %g, %s\n",
		r.RTF, r.AudioSec, r.Workers, r.Errors, r.Beam, r.CTCWeight, r.LMWeight, mode)
}

// AddToCard records a report under metrics.<key> in dir/card.json (rewriting its checksums).
func AddToCard(dir, key string, r *EvalReport) error {
	b, err := os.ReadFile(filepath.Join(dir, "card.json"))
	if err != nil {
		return fmt.Errorf("card: %w", err)
	}
	var card map[string]any
	if err := json.Unmarshal(b, &card); err != nil {
		return fmt.Errorf("card: %w", err)
	}
	m, _ := card["metrics"].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	m[key] = r
	card["metrics"] = m
	return asr.WriteCard(dir, card)
}
