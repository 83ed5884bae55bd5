package stream_test

import (
	"context"
	"fmt"
	"log"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/stream"
)

// A server's per-stream loop: write each chunk as it arrives, process, send the events;
// at the end of the stream, close.
func Example() {
	v, err := defaultmodel.Open(asr.OpenOptions{F16: true})
	if err != nil {
		log.Fatal(err)
	}
	s, err := stream.New(v, stream.Config{Interim: true})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	chunks := [][]float32{make([]float32, 1600), make([]float32, 1600)} // 100 ms each, from the network
	for _, c := range chunks {
		if err := s.Write(c); err != nil {
			log.Fatal(err) // NaN samples, or a caller that never calls Process
		}
		events, err := s.Process(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range events {
			fmt.Println(e.Kind, e.Text)
		}
	}
	events, err := s.Close(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(events), "events at the end of a silent stream")
	// Output: 0 events at the end of a silent stream
}
