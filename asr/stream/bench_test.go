package stream

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkSessionRealtime streams two phrases (10.9 s of audio) in 100-ms chunks with
// interims on, as a real-time client would, with greedy finals (beam=1) and the default beam
// (beam=5), and reports:
//
//   - ms/audio-s: compute per second of audio, over Write+Process+Close;
//   - final-latency-ms (mean) and max-final-latency-ms: from the end of speech to the final,
//     on a simulated real-time clock: chunk k arrives when its audio has been spoken, a
//     Process call starts when its chunk has arrived and the previous call has finished,
//     and a final exists when the call that returns it finishes. This counts the endpoint
//     silence, the 100-ms chunking and every compute delay, backlog included.
func BenchmarkSessionRealtime(b *testing.B) {
	for _, beam := range []int{1, 5} {
		b.Run(fmt.Sprintf("beam=%d", beam), func(b *testing.B) { benchmarkSessionRealtime(b, beam) })
	}
}

func benchmarkSessionRealtime(b *testing.B, beam int) {
	sp := testSpeech(b)
	x := concat(zeros(0.5), sp, zeros(1), scaled(sp, 0.8), zeros(1))
	ends := []time.Duration{at(int64(8000 + speechEnd(sp))), at(int64(8000 + len(sp) + 16000 + speechEnd(sp)))}
	const chunk = 1600
	ctx := context.Background()
	var compute time.Duration
	var latSum, latMax time.Duration
	var finals int
	b.ResetTimer()
	for b.Loop() {
		s := newSession(b, Config{Interim: true, BeamSize: beam})
		var clock time.Duration // simulated wall time, from the start of the stream
		for i := 0; i < len(x); i += chunk {
			arrive := at(int64(min(i+chunk, len(x))))
			clock = max(clock, arrive)
			t0 := time.Now()
			if err := s.Write(x[i:min(i+chunk, len(x))]); err != nil {
				b.Fatal(err)
			}
			ev, err := s.Process(ctx)
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			compute += d
			clock += d
			for _, e := range ev {
				if e.Kind != Final {
					continue
				}
				if e.Utterance >= len(ends) {
					b.Fatalf("unexpected final %+v", e)
				}
				lat := clock - ends[e.Utterance]
				latSum += lat
				latMax = max(latMax, lat)
				finals++
			}
		}
		t0 := time.Now()
		if _, err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		compute += time.Since(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(compute.Milliseconds())/n/(float64(len(x))/16000), "ms/audio-s")
	if finals > 0 {
		b.ReportMetric(float64(latSum.Milliseconds())/float64(finals), "final-latency-ms")
		b.ReportMetric(float64(latMax.Milliseconds()), "max-final-latency-ms")
	}
}
