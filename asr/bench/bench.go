// Package bench measures the inference engine the way `chorus bench` reports it: log-mel time
// for a 30-s window, encoder time for one window, per-token decoder time with the KV cache,
// and peak memory. Figures are medians over repeated runs, since the machines chorus is
// measured on are shared and noisy.
package bench

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"syscall"
	"time"

	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// Options configure a run.
type Options struct {
	Runs    int // repetitions of each measurement (median reported)
	Tokens  int // decoder steps timed per run
	Threads int // compute threads (0: all cores)
	// Routing runs the feed-forward blocks (and heads) as a stream of a MoE variant would:
	// the variant's default routing (asr.Variant.Routing of an empty choice) for one that
	// declares it, nil for the dense model.
	Routing whisper.Routing
	// RoutingName is reported with the result ("" for none).
	RoutingName string
}

// Result is what `chorus bench --json` prints.
type Result struct {
	Model   string `json:"model"`
	Threads int    `json:"threads"`
	BLAS    string `json:"blas"`
	// Matmul is "bf16" when large products ran in bfloat16 (chorus --matmul bf16).
	Matmul           string  `json:"matmul,omitempty"`
	Routing          string  `json:"routing,omitempty"` // the MoE routing run, if any
	MelMS            float64 `json:"mel_ms"`
	EncoderMS        float64 `json:"encoder_ms"`
	DecodeMSPerToken float64 `json:"decode_ms_per_token"`
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	Runs             int     `json:"runs"`
}

// Run measures model m (name is only reported).
func Run(m *whisper.Model, name string, o Options) (*Result, error) {
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.Tokens <= 0 {
		// whisper.cpp's whisper-bench decodes 256 tokens; a model with fewer text positions
		// decodes as many as fit after the start-of-transcript sequence.
		o.Tokens = min(256, m.Dims.NTextCtx-4)
	}
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.Tokens+4 > m.Dims.NTextCtx {
		return nil, fmt.Errorf("bench: %d tokens exceed the model's %d text positions", o.Tokens, m.Dims.NTextCtx)
	}
	tensor.SetThreads(o.Threads)
	// 30 s of a deterministic test signal: a gliding tone with harmonics and a little noise.
	audio := make([]float32, 30*16000)
	tensor.SeededUniform(audio, 7, "bench-noise", 0, 0.01)
	for i := range audio {
		t := float64(i) / 16000
		f := 150 + 100*math.Sin(2*math.Pi*0.3*t)
		audio[i] += float32(0.3*math.Sin(2*math.Pi*f*t) + 0.1*math.Sin(4*math.Pi*f*t))
	}
	res := &Result{Model: name, Threads: o.Threads, BLAS: tensor.BLASName, Runs: o.Runs, Routing: o.RoutingName}
	if tensor.MatmulBF16() {
		res.Matmul = tensor.MatmulEngine()
	}

	var spec *mel.Spectrogram
	melT := make([]float64, 0, o.Runs)
	for range o.Runs {
		start := time.Now()
		s, err := mel.Whisper30s(audio, m.Dims.NMels)
		if err != nil {
			return nil, fmt.Errorf("bench mel: %w", err)
		}
		melT = append(melT, ms(time.Since(start)))
		spec = s
	}
	res.MelMS = median(melT)

	st := m.NewState(1)
	st.SetRouting(o.Routing)
	x := tensor.FromData(spec.Data, spec.NMels, spec.NFrames)
	st.Encode(x) // warm-up: arena and BLAS buffers
	encT := make([]float64, 0, o.Runs)
	for range o.Runs {
		start := time.Now()
		st.Encode(x)
		encT = append(encT, ms(time.Since(start)))
	}
	res.EncoderMS = median(encT)

	decT := make([]float64, 0, o.Runs)
	prompt := []int{0, 1, 2} // any in-vocabulary ids: only the time matters here
	for r := range o.Runs + 1 {
		st.Rewind(0, 0)
		logits := st.Logits(0, prompt)
		start := time.Now()
		for range o.Tokens {
			next := tensor.ArgMax(logits)
			logits = st.Logits(0, []int{next})
		}
		if r > 0 { // the first run warms up
			decT = append(decT, ms(time.Since(start))/float64(o.Tokens))
		}
	}
	res.DecodeMSPerToken = median(decT)
	res.PeakRSSMB = PeakRSSMB()
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// PeakRSSMB is the process's peak resident set size in MiB (getrusage ru_maxrss, KiB on Linux).
func PeakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
