package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chorus-asr/chorus/asr/metrics"
)

// SampleRate is the rate of every audio file chorus writes: 16 kHz mono
// 16-bit PCM, what Whisper's front end expects.
const SampleRate = 16000

// SynthOptions configures Synth. Zero values take the documented defaults.
type SynthOptions struct {
	// Out is the corpus folder: manifests at its top, audio under audio/
	// and real/. Required.
	Out string
	// N is the number of synthetic utterances over all three synthetic
	// splits. Required.
	N int
	// Seed fixes every draw (sentence order, voice, prosody, augmentation,
	// noise). The train/dev sentence split does not depend on it.
	Seed int64
	// Workers run utterances in parallel (default 2).
	Workers int
	// Voices to speak with (default DefaultVoices). Held-out voices
	// (IsDevVoice) speak only dev-voices utterances; a reserved voice is
	// refused with ErrReservedVoice.
	Voices []Voice
	// CleanFraction of utterances get no augmentation (0 means the
	// default 0.25; a negative value means none are clean).
	CleanFraction float64
	// SpeedPerturb adds sox speed perturbation to augmented utterances.
	SpeedPerturb bool
	// MinSNR and MaxSNR bound additive noise in dB (default 5 and 30).
	MinSNR, MaxSNR float64
	// DevFraction is the share of sentences held out for dev, and the
	// share of utterances drawn into each of dev and dev-voices (0 means
	// the default 0.03; a negative value means no dev splits).
	DevFraction float64
	// TextCache is the npm tarball cache for LoadTexts (default
	// DefaultTextCache()).
	TextCache string
	// Texts, if set, is used instead of calling LoadTexts.
	Texts *TextCorpus
	// NoReal leaves out the asterisk real-speech prompts.
	NoReal bool
	// RealDevFraction is the share of allowed real prompts held out for
	// real-dev (default 0.1: 3% of 284 prompts would be a handful).
	RealDevFraction float64
	// AsteriskTranscript and AsteriskSounds override the Debian locations
	// (DefaultAsteriskTranscript, DefaultAsteriskSounds).
	AsteriskTranscript, AsteriskSounds string
	// NoInstall stops Synth and LoadTexts from running apt-get.
	NoInstall bool
	// CheckpointEvery is how many finished utterances pass between
	// partial manifests (default 200).
	CheckpointEvery int
	// Progress, if set, is called after every utterance (synthesised,
	// resumed or failed) with the count done, the total and the seconds of
	// audio written so far. Calls come from one goroutine, in order.
	Progress func(done, total int, audioSec float64)
}

// ManifestReport describes one written manifest.
type ManifestReport struct {
	Path         string  `json:"path"`
	Utterances   int     `json:"utterances"`
	AudioSeconds float64 `json:"audio_seconds"`
}

// SynthReport summarises a Synth run.
type SynthReport struct {
	Out       string                    `json:"out"`
	Manifests map[string]ManifestReport `json:"manifests"`
	// Synthesised utterances were made in this run; Resumed ones were
	// complete from an earlier run and kept; Failed ones are left out of
	// the manifests (Errors holds the first few messages).
	Synthesised int      `json:"synthesised"`
	Resumed     int      `json:"resumed"`
	Failed      int      `json:"failed"`
	Errors      []string `json:"errors,omitempty"`
	// TrainSentences and DevSentences are the sizes of the sentence split.
	TrainSentences int                     `json:"train_sentences"`
	DevSentences   int                     `json:"dev_sentences"`
	Texts          map[string]*SourceStats `json:"texts"`
	Real           *RealStats              `json:"real,omitempty"`
	// Engines counts synthetic utterances per TTS engine.
	Engines      map[string]int `json:"engines"`
	AudioSeconds float64        `json:"audio_seconds"`
	WallSeconds  float64        `json:"wall_seconds"`
}

// maxErrors is how many failure messages a report keeps.
const maxErrors = 10

// planItem is one synthetic utterance, fully decided before any audio is
// made so that the plan (and so the file names) depend only on the options.
type planItem struct {
	index   int
	split   string // SplitTrain, SplitDev or SplitDevVoices (also the manifest name)
	source  string
	text    string
	voice   Voice
	params  VoiceParams
	aug     Augment
	padHead float64
	padTail float64
	rel     string // output path relative to Out
}

// job is one unit of work: a synthetic utterance or a real prompt.
type job struct {
	order int // position in the combined job list, for manifest order
	synth *planItem
	real  *realItem
}

type result struct {
	order   int
	entry   Entry
	resumed bool
	err     error
}

// manifestOf names the manifest a job's entry belongs to.
func (j job) manifest() string {
	if j.synth != nil {
		return j.synth.split
	}
	return j.real.manifest
}

// Synth builds the synthetic corpus (and, unless NoReal, the real-speech
// manifests) in opts.Out. It is resumable: an output file that already
// exists and is complete is kept, and because every utterance's file name
// carries a hash of its text, voice, prosody and augmentation, a run with
// different options never mistakes another run's audio for its own.
// Partial manifests (<name>.partial.jsonl) are rewritten every
// CheckpointEvery utterances; the final <name>.jsonl files are written
// atomically at the end and the partial ones removed. Single utterances
// that fail are reported and left out; if failures pass 10% (after the
// first ten), Synth stops with an error.
func Synth(ctx context.Context, opts SynthOptions) (*SynthReport, error) {
	start := time.Now()
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := ensureDebs(ctx, !opts.NoInstall, toolPackages(opts.Voices)...); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	if err := checkEspeakVariants(ctx, opts.Voices); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	texts := opts.Texts
	if texts == nil {
		var err error
		if texts, err = LoadTexts(ctx, TextOptions{CacheDir: opts.TextCache, NoInstall: opts.NoInstall}); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	plan, nTrain, nDev, err := buildPlan(opts, texts)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	rep := &SynthReport{
		Out: opts.Out, Manifests: map[string]ManifestReport{}, Texts: texts.Stats,
		TrainSentences: nTrain, DevSentences: nDev, Engines: map[string]int{},
	}
	var jobs []job
	for i := range plan {
		jobs = append(jobs, job{order: len(jobs), synth: &plan[i]})
		rep.Engines[plan[i].voice.Engine]++
	}
	if !opts.NoReal {
		if opts.AsteriskTranscript == "" && opts.AsteriskSounds == "" {
			if err := ensureDebs(ctx, !opts.NoInstall,
				debPackage{"asterisk-core-sounds-en", DefaultAsteriskTranscript},
				debPackage{"asterisk-core-sounds-en-wav", filepath.Join(DefaultAsteriskSounds, "hello.wav")}); err != nil {
				return nil, fmt.Errorf("synth: real speech: %w", err)
			}
		}
		items, st, err := loadAsterisk(opts.AsteriskTranscript, opts.AsteriskSounds, opts.RealDevFraction)
		if err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
		rep.Real = st
		for i := range items {
			jobs = append(jobs, job{order: len(jobs), real: &items[i]})
		}
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	tmpRoot, err := os.MkdirTemp(opts.Out, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmpRoot)

	names := []string{SplitTrain, SplitDev, SplitDevVoices}
	if !opts.NoReal {
		names = append(names, ManifestRealTrain, ManifestRealDev, ManifestEvalReal)
	}
	entries, runErr := runJobs(ctx, opts, jobs, tmpRoot, rep, names)
	for _, name := range names {
		var es []Entry
		var sec float64
		for i, j := range jobs {
			if entries[i] != nil && j.manifest() == name {
				es = append(es, *entries[i])
				sec += entries[i].Duration
			}
		}
		p := filepath.Join(opts.Out, name+".jsonl")
		if runErr != nil {
			p = filepath.Join(opts.Out, name+".partial.jsonl")
		}
		if err := WriteManifest(p, es); err != nil {
			return rep, fmt.Errorf("synth: %w", err)
		}
		if runErr == nil {
			os.Remove(filepath.Join(opts.Out, name+".partial.jsonl"))
		}
		rep.Manifests[name] = ManifestReport{Path: p, Utterances: len(es), AudioSeconds: sec}
		rep.AudioSeconds += sec
	}
	rep.WallSeconds = time.Since(start).Seconds()
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		if err := writeFileAtomic(filepath.Join(opts.Out, "synth-report.json"), append(b, '\n')); err != nil {
			return rep, fmt.Errorf("synth: report: %w", err)
		}
	}
	if runErr != nil {
		return rep, fmt.Errorf("synth: %w", runErr)
	}
	return rep, nil
}

// defaults fills zero options and checks the rest.
func (o *SynthOptions) defaults() error {
	if o.Out == "" {
		return errors.New("synth: no output folder")
	}
	if o.N <= 0 {
		return fmt.Errorf("synth: N must be positive, got %d", o.N)
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if len(o.Voices) == 0 {
		o.Voices = DefaultVoices()
	}
	for _, v := range o.Voices {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	d := DefaultAugmentOptions()
	switch {
	case o.CleanFraction == 0:
		o.CleanFraction = d.CleanFraction
	case o.CleanFraction < 0:
		o.CleanFraction = 0
	case o.CleanFraction > 1:
		return fmt.Errorf("synth: clean fraction %v above 1", o.CleanFraction)
	}
	if o.MinSNR == 0 && o.MaxSNR == 0 {
		o.MinSNR, o.MaxSNR = d.MinSNR, d.MaxSNR
	}
	if o.MaxSNR < o.MinSNR {
		return fmt.Errorf("synth: SNR range %v..%v is empty", o.MinSNR, o.MaxSNR)
	}
	switch {
	case o.DevFraction == 0:
		o.DevFraction = 0.03
	case o.DevFraction < 0:
		o.DevFraction = 0
	case o.DevFraction >= 0.5:
		return fmt.Errorf("synth: dev fraction %v leaves too little for training", o.DevFraction)
	}
	if o.RealDevFraction <= 0 {
		o.RealDevFraction = 0.1
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 200
	}
	if o.AsteriskTranscript == "" {
		o.AsteriskTranscript = DefaultAsteriskTranscript
	} else if o.AsteriskSounds == "" {
		return errors.New("synth: AsteriskTranscript set without AsteriskSounds")
	}
	if o.AsteriskSounds == "" {
		o.AsteriskSounds = DefaultAsteriskSounds
	}
	return nil
}

// sentence is a candidate utterance text.
type sentence struct {
	source, text string
	order        float64 // seeded position, see buildPlan
}

// buildPlan decides every synthetic utterance. Sentences are split by
// SentenceSplit, then each side is put in a seeded order (a hash of the
// seed and the normalised text), and utterances take sentences from the
// front of their split's order, wrapping round when N exceeds it: the
// corpus covers as many distinct sentences as N allows. Each utterance
// draws from its own generator, seeded by (Seed, index), so utterance i is
// the same whatever N is; a larger N extends a corpus rather than
// reshuffling it. Engines are picked uniformly, then a voice within the
// engine, so espeak-ng's many accent × variant voices do not drown out the
// six flite and festival ones.
func buildPlan(o SynthOptions, texts *TextCorpus) (plan []planItem, nTrain, nDev int, err error) {
	seedSalt := fmt.Sprintf("chorus/order/%d\x00", o.Seed)
	var train, dev []sentence
	for _, src := range TextSources {
		for _, t := range texts.Sentences[src] {
			s := sentence{source: src, text: t, order: unitHash(seedSalt, metrics.Normalize(t))}
			if SentenceSplit(t, o.DevFraction) == SplitDev {
				dev = append(dev, s)
			} else {
				train = append(train, s)
			}
		}
	}
	if len(train) == 0 {
		return nil, 0, 0, errors.New("no training sentences")
	}
	for _, ss := range [][]sentence{train, dev} {
		sort.SliceStable(ss, func(a, b int) bool { return ss[a].order < ss[b].order })
	}
	trainVoices, devVoices := map[string][]Voice{}, map[string][]Voice{}
	for _, v := range o.Voices {
		if IsDevVoice(v) {
			devVoices[v.Engine] = append(devVoices[v.Engine], v)
		} else {
			trainVoices[v.Engine] = append(trainVoices[v.Engine], v)
		}
	}
	if len(trainVoices) == 0 {
		return nil, 0, 0, errors.New("every voice is held out for dev-voices; add a training voice")
	}
	trainEngines, devEngines := sortedKeys(trainVoices), sortedKeys(devVoices)
	aopts := AugmentOptions{CleanFraction: o.CleanFraction, SpeedPerturb: o.SpeedPerturb, MinSNR: o.MinSNR, MaxSNR: o.MaxSNR}
	used := map[string]int{}
	for i := 0; i < o.N; i++ {
		rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(i)))
		u := rng.Float64()
		uEngine, uVoice := rng.Float64(), rng.Float64()
		split := SplitTrain
		switch {
		case len(dev) > 0 && u < o.DevFraction:
			split = SplitDev
		case len(dev) > 0 && u < 2*o.DevFraction && len(devEngines) > 0:
			split = SplitDevVoices
		}
		pool, engines, voices := train, trainEngines, trainVoices
		if split == SplitDevVoices {
			engines, voices = devEngines, devVoices
		}
		if split != SplitTrain {
			pool = dev
		}
		s := pool[used[split]%len(pool)]
		used[split]++
		eng := engines[int(uEngine*float64(len(engines)))]
		v := voices[eng][int(uVoice*float64(len(voices[eng])))]
		p := drawParams(v, rng)
		a := drawAugment(aopts, rng)
		it := planItem{
			index: i, split: split, source: s.source, text: s.text, voice: v, params: p, aug: a,
			padHead: round3(0.05 + 0.25*rng.Float64()),
			padTail: round3(0.10 + 0.30*rng.Float64()),
		}
		h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%v\x00%v", it.text, v, p, a, it.padHead, it.padTail)))
		it.rel = fmt.Sprintf("audio/%s/%03d/%06d-%s.wav", split, i/1000, i, hex.EncodeToString(h[:4]))
		plan = append(plan, it)
	}
	return plan, len(train), len(dev), nil
}

func round3(x float64) float64 { return float64(int(x*1000+0.5)) / 1000 }

// runJobs runs jobs on opts.Workers workers and returns the entry of each
// job (nil for failures and jobs not reached). Progress and partial
// manifests are handled here, on the collecting goroutine.
func runJobs(ctx context.Context, o SynthOptions, jobs []job, tmpRoot string, rep *SynthReport, names []string) ([]*Entry, error) {
	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	entries := make([]*Entry, len(jobs))
	jobCh := make(chan job)
	resCh := make(chan result)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			dir := filepath.Join(tmpRoot, fmt.Sprint(w))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				for j := range jobCh {
					resCh <- result{order: j.order, err: err}
				}
				return
			}
			fest := &festivalProc{}
			defer fest.close()
			for j := range jobCh {
				r := runJob(ctx, o, j, dir, fest)
				r.order = j.order
				resCh <- r
			}
		}(w)
	}
	go func() {
		defer close(jobCh)
		for _, j := range jobs {
			select {
			case jobCh <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(resCh) }()

	var done int
	var audio float64
	var runErr error
	for r := range resCh {
		done++
		switch {
		case r.err != nil && ctx.Err() != nil:
			// Cancelled (by the caller or by too many failures): the
			// utterance did not fail on its own.
		case r.err != nil:
			rep.Failed++
			if len(rep.Errors) < maxErrors {
				rep.Errors = append(rep.Errors, r.err.Error())
			}
			if rep.Failed > maxErrors && rep.Failed*10 > done && runErr == nil {
				runErr = fmt.Errorf("%d of %d utterances failed, first: %s", rep.Failed, done, rep.Errors[0])
				cancel()
			}
		default:
			e := r.entry
			entries[r.order] = &e
			audio += e.Duration
			if r.resumed {
				rep.Resumed++
			} else {
				rep.Synthesised++
			}
		}
		if o.Progress != nil {
			o.Progress(done, len(jobs), audio)
		}
		if done%o.CheckpointEvery == 0 && runErr == nil {
			writePartials(o.Out, jobs, entries, names)
		}
	}
	if runErr == nil {
		runErr = parent.Err()
	}
	return entries, runErr
}

// writePartials writes what is done so far; errors are ignored because the
// partial manifests are only a convenience (the audio files are what make
// a run resumable).
func writePartials(out string, jobs []job, entries []*Entry, names []string) {
	for _, name := range names {
		var es []Entry
		for i, j := range jobs {
			if entries[i] != nil && j.manifest() == name {
				es = append(es, *entries[i])
			}
		}
		_ = WriteManifest(filepath.Join(out, name+".partial.jsonl"), es)
	}
}

// runJob makes (or finds) one output file; fest is the worker's festival.
func runJob(ctx context.Context, o SynthOptions, j job, tmp string, fest *festivalProc) result {
	if err := ctx.Err(); err != nil {
		return result{err: err}
	}
	var rel string
	var e Entry
	if j.synth != nil {
		it := j.synth
		rel = it.rel
		e = Entry{Text: it.text, Voice: it.voice.String(), Source: it.source, Split: it.split,
			Prosody: it.params.String(), Augment: it.aug.String()}
	} else {
		it := j.real
		rel = it.rel
		e = Entry{Text: it.prompt.Text, Voice: asteriskSpeaker, Source: SourceAsterisk, Split: it.split, Augment: "clean"}
	}
	e.AudioFilepath = rel
	final := filepath.Join(o.Out, filepath.FromSlash(rel))
	if d, err := wavDuration(final); err == nil && d > 0 {
		e.Duration = d
		return result{entry: e, resumed: true}
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return result{err: err}
	}
	var err error
	if j.synth != nil {
		err = synthesize(ctx, o.Seed, j.synth, tmp, final, fest)
	} else {
		err = soxToFinal(ctx, j.real.src, final)
	}
	if err != nil {
		return result{err: fmt.Errorf("%s: %w", rel, err)}
	}
	d, err := wavDuration(final)
	if err != nil {
		return result{err: fmt.Errorf("%s: %w", rel, err)}
	}
	if d <= 0 {
		os.Remove(final)
		return result{err: fmt.Errorf("%s: empty audio", rel)}
	}
	e.Duration = d
	return result{entry: e}
}

// synthesize runs TTS, the first sox pass, the Go noise/gain stage and,
// for telephone utterances, the second sox pass. Festival voices speak
// through fest, the others through their engine's command.
func synthesize(ctx context.Context, seed int64, it *planItem, tmp, final string, fest *festivalProc) error {
	textFile := filepath.Join(tmp, "text.txt")
	if err := os.WriteFile(textFile, []byte(it.text+"\n"), 0o644); err != nil {
		return err
	}
	tts := filepath.Join(tmp, "tts.wav")
	os.Remove(tts)
	var err error
	if it.voice.Engine == EngineFestival {
		err = fest.speak(ctx, it.voice, it.params, textFile, tts)
	} else {
		err = run(ttsCommand(ctx, it.voice, it.params, textFile, tts))
	}
	if err != nil {
		return fmt.Errorf("tts %s: %w", it.voice, err)
	}
	pass1 := filepath.Join(tmp, "pass1.wav")
	args := append([]string{"-D", tts, "-r", fmt.Sprint(SampleRate), "-c", "1", "-e", "floating-point", "-b", "32", pass1},
		soxEffects(it.params, it.aug, it.padHead, it.padTail)...)
	if err := run(exec.CommandContext(ctx, "sox", args...)); err != nil {
		return fmt.Errorf("sox: %w", err)
	}
	x, err := readMono(pass1, SampleRate)
	if err != nil {
		return fmt.Errorf("sox output: %w", err)
	}
	if peak(x) == 0 {
		return errors.New("tts produced silence")
	}
	// Noise has its own generator (a different seed from the plan's) so
	// that noise samples never shift the plan's draws.
	noiseRNG := rand.New(rand.NewPCG(uint64(seed)^0x6e6f697365, uint64(it.index)))
	finishSamples(x, it.aug, noiseRNG)
	if !it.aug.Telephone {
		return writeFileAtomic(final, encodeWAV16(x, SampleRate))
	}
	pass2 := filepath.Join(tmp, "pass2.wav")
	if err := os.WriteFile(pass2, encodeWAV16(x, SampleRate), 0o644); err != nil {
		return err
	}
	return soxToFinal(ctx, pass2, final, telephoneEffects(SampleRate)...)
}

// soxToFinal converts src to 16 kHz mono 16-bit with the given effects,
// into a temporary file beside final (same folder, so the rename is
// atomic), then renames it into place. Real recordings go through it with
// no effects.
func soxToFinal(ctx context.Context, src, final string, effects ...string) error {
	part := final + ".part.wav"
	// -G lowers the level just enough if a filter's overshoot would clip.
	args := append([]string{"-D", "-G", src, "-r", fmt.Sprint(SampleRate), "-c", "1", "-e", "signed-integer", "-b", "16", part}, effects...)
	if err := run(exec.CommandContext(ctx, "sox", args...)); err != nil {
		os.Remove(part)
		return fmt.Errorf("sox: %w", err)
	}
	if err := os.Rename(part, final); err != nil {
		os.Remove(part)
		return err
	}
	return nil
}

// run runs cmd, folding its stderr into the error.
func run(cmd *exec.Cmd) error {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, tail([]byte(s), 300))
		}
		return fmt.Errorf("%s: %w", filepath.Base(cmd.Path), err)
	}
	return nil
}
