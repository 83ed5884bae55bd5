package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
)

func streamCmd() *cobra.Command {
	var (
		addr, model, language, requestID string
		realtime, asJSON, noInterim, tls bool
		chunk                            time.Duration
		concurrency                      int
		router, headRouter               string
		fraction                         float64
		heads                            int
		perRequest                       bool
	)
	cmd := &cobra.Command{
		Use:   "stream FILE",
		Short: "Stream an audio file to a chorus server and print interim and final results with timings",
		Long: `Stream an audio file (WAV or FLAC, any rate) to a running chorus server over gRPC, as a
microphone would (--realtime) or as fast as the server takes it. Interim results update in
place on a terminal; finals are printed with their audio times and latency; the run ends
with latency statistics. --concurrency N opens N streams of the same file at once and reports
the latency percentiles over all of them (the load tool behind docs/BENCHMARKS.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if concurrency < 1 {
				return fmt.Errorf("--concurrency must be at least 1")
			}
			samples, err := audio.Load16kMono(args[0])
			if err != nil {
				return err
			}
			cc, err := clients.Dial(addr, clients.DialOptions{TLS: tls})
			if err != nil {
				return err
			}
			defer cc.Close()
			newOpts := func(i int) clients.StreamOptions {
				id := requestID
				if concurrency > 1 {
					id = fmt.Sprintf("%s-%d", requestID, i)
				}
				return clients.StreamOptions{
					Config: &chorusv1.StreamingRecognitionConfig{
						Config: &chorusv1.RecognitionConfig{
							Encoding: chorusv1.RecognitionConfig_LINEAR16, SampleRateHertz: 16000, AudioChannelCount: 1,
							Model: model, LanguageCode: language, RequestId: id,
						},
						InterimResults:            !noInterim,
						EnableVoiceActivityEvents: true,
						Routing:                   routingFlags(router, fraction, heads, headRouter, perRequest),
					},
					Chunk:    chunk,
					Realtime: realtime,
				}
			}
			if concurrency == 1 {
				o := newOpts(0)
				p := newPrinter(asJSON)
				o.OnResponse = p.print
				out, err := clients.StreamAudio(cmd.Context(), cc, samples, o)
				p.done()
				if err != nil {
					return err
				}
				if !asJSON {
					summarize(os.Stderr, []*clients.Outcome{out}, realtime)
				}
				return nil
			}
			outs := make([]*clients.Outcome, concurrency)
			errs := make([]error, concurrency)
			var wg sync.WaitGroup
			for i := range concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					outs[i], errs[i] = clients.StreamAudio(cmd.Context(), cc, samples, newOpts(i))
				}()
			}
			wg.Wait()
			failed := 0
			var ok []*clients.Outcome
			for i, err := range errs {
				if err != nil || !outs[i].EOF {
					failed++
					fmt.Fprintf(os.Stderr, "stream %d: %v (eof %v)\n", i, err, outs[i] != nil && outs[i].EOF)
					continue
				}
				ok = append(ok, outs[i])
			}
			summarize(os.Stdout, ok, realtime)
			if failed > 0 {
				return fmt.Errorf("%d of %d streams failed", failed, concurrency)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "localhost:50051", "server gRPC address")
	fl.BoolVar(&tls, "tls", false, "connect with TLS")
	fl.StringVar(&model, "model", "", "served model name (default: the server's default)")
	fl.StringVar(&language, "language", "", "language code")
	fl.StringVar(&requestID, "request-id", "chorus-stream", "request id sent to the server (suffixed -N with --concurrency)")
	fl.BoolVar(&realtime, "realtime", false, "pace the audio at real time, as a microphone would")
	fl.DurationVar(&chunk, "chunk", 100*time.Millisecond, "audio per message")
	fl.BoolVar(&asJSON, "json", false, "print every response as a JSON line (with wall and sent times)")
	fl.BoolVar(&noInterim, "no-interim", false, "ask for final results only")
	fl.IntVar(&concurrency, "concurrency", 1, "streams of the file to run at once (load test)")
	fl.StringVar(&router, "router", "", "expert router for MoE models: dense, random, mlp, oracle, gate (upcycled variants), experiment (default: the server's choice)")
	fl.Float64Var(&fraction, "fraction", 0.25, "share of each layer's experts to run with --router random, mlp, oracle or gate")
	fl.IntVar(&heads, "heads", 0, "attention heads to run per encoder layer (0: all; MoE models)")
	fl.StringVar(&headRouter, "head-router", "random", "how --heads are chosen: random or oracle")
	fl.BoolVar(&perRequest, "per-request", false, "one expert / head subset per layer for the whole stream")
	return cmd
}

// printer shows responses: interim text rewritten in place on a terminal, finals on their
// own lines; or one JSON object per response.
type printer struct {
	json, tty bool
	interim   bool // an interim line is showing
}

func newPrinter(asJSON bool) *printer {
	return &printer{json: asJSON, tty: term.IsTerminal(int(os.Stdout.Fd()))}
}

func (p *printer) print(t clients.Timed) {
	if p.json {
		b, _ := protojson.Marshal(t.Response)
		line, _ := json.Marshal(struct {
			WallMS   int64           `json:"wall_ms"`
			SentMS   int64           `json:"sent_ms"`
			Response json.RawMessage `json:"response"`
		}{t.Wall.Milliseconds(), t.Sent.Milliseconds(), b})
		fmt.Println(string(line))
		return
	}
	for _, r := range t.Response.GetResults() {
		text := ""
		if a := r.GetAlternatives(); len(a) > 0 {
			text = a[0].GetTranscript()
		}
		start, end := r.GetResultStartTime().AsDuration(), r.GetResultEndTime().AsDuration()
		if r.GetIsFinal() {
			p.clear()
			fmt.Printf("[%s → %s] %s   (final at %s, conf %.2f)\n", fmtDur(start), fmtDur(end), strings.TrimSpace(text), fmtDur(t.Wall), r.GetAlternatives()[0].GetConfidence())
			continue
		}
		if p.tty {
			p.clear()
			fmt.Printf("\x1b[2m… %s\x1b[0m", strings.TrimSpace(text))
			p.interim = true
		} else {
			fmt.Printf("~ [%s → %s] %s   (stable %.2f, at %s)\n", fmtDur(start), fmtDur(end), strings.TrimSpace(text), r.GetStability(), fmtDur(t.Wall))
		}
	}
}

func (p *printer) clear() {
	if p.interim {
		fmt.Print("\r\x1b[2K")
		p.interim = false
	}
}

func (p *printer) done() { p.clear() }

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// summarize prints latency statistics over the outcomes; latencies mean something only when
// the audio was sent in real time.
func summarize(w *os.File, outs []*clients.Outcome, realtime bool) {
	var finals, firsts []time.Duration
	var audioS, wallS float64
	for _, o := range outs {
		finals = append(finals, o.FinalLatency...)
		firsts = append(firsts, o.FirstInterim...)
		audioS += o.Audio.Seconds()
		wallS += o.Wall.Seconds()
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(w, "streams %d, audio %.1f s, wall %.1f s", len(outs), audioS, wallS)
	if len(outs) > 0 && outs[0].ServedBy != nil {
		sb := outs[0].ServedBy
		fmt.Fprintf(w, ", served by %s/%s@%s router %s", sb.GetModel(), sb.GetVariant(), sb.GetVersion(), sb.GetRouter())
		if sb.GetArm() != "" {
			fmt.Fprintf(w, " arm %s", sb.GetArm())
		}
	}
	fmt.Fprintln(w)
	if !realtime {
		fmt.Fprintln(w, "(sent as fast as possible: use --realtime for latency figures)")
		return
	}
	fmt.Fprintf(w, "final after end of speech: n %d, median %s, p95 %s, max %s\n", len(finals),
		ms(clients.Percentile(finals, 50)), ms(clients.Percentile(finals, 95)), ms(clients.Percentile(finals, 100)))
	fmt.Fprintf(w, "first interim after speech start: n %d, median %s, p95 %s\n", len(firsts),
		ms(clients.Percentile(firsts, 50)), ms(clients.Percentile(firsts, 95)))
}

// routingFlags is the RoutingConfig of the routing flags (fraction only where the router
// takes one).
func routingFlags(router string, fraction float64, heads int, headRouter string, perRequest bool) *chorusv1.RoutingConfig {
	rc := &chorusv1.RoutingConfig{Router: router}
	if heads > 0 {
		rc.Heads, rc.HeadRouter = int32(heads), headRouter
	}
	if perRequest {
		rc.Mode = chorusv1.RoutingConfig_PER_REQUEST
	}
	switch router {
	case "random", "mlp", "oracle", "gate":
		rc.Fraction = float32(fraction)
	}
	return rc
}
