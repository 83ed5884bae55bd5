package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/chorus-asr/chorus/clients"
	"github.com/chorus-asr/chorus/clients/mic"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/spf13/cobra"
)

func micCmd() *cobra.Command {
	var (
		addr, model, language string
		tls, asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "mic",
		Short: "Transcribe the microphone live through a chorus server (Ctrl-C ends)",
		Long: `Capture the default microphone (PortAudio) at 16 kHz and stream it to a chorus server.
Interim text updates in place; finals are printed on their own lines with their times. Ctrl-C
ends the stream cleanly: the server finalizes what it heard before the program exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := mic.Open(mic.Options{})
			if err != nil {
				return err
			}
			defer m.Close()
			cc, err := clients.Dial(addr, clients.DialOptions{TLS: tls})
			if err != nil {
				return err
			}
			defer cc.Close()
			// Ctrl-C stops capturing; the stream then half-closes and the last finals arrive.
			stopCapture, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			next := func(ctx context.Context) ([]float32, error) {
				if stopCapture.Err() != nil {
					return nil, io.EOF
				}
				b, err := m.Read()
				if err != nil {
					return nil, err
				}
				return append([]float32(nil), b...), nil
			}
			p := newPrinter(asJSON)
			fmt.Fprintln(os.Stderr, "listening… (Ctrl-C to stop)")
			out, err := clients.StreamFrom(cmd.Context(), cc, next, clients.StreamOptions{
				Config: &chorusv1.StreamingRecognitionConfig{
					Config:                    &chorusv1.RecognitionConfig{Model: model, LanguageCode: language, RequestId: "chorus-mic"},
					InterimResults:            true,
					EnableVoiceActivityEvents: true,
				},
				OnResponse: p.print,
			})
			p.done()
			if err != nil {
				return err
			}
			if !asJSON {
				summarize(os.Stderr, []*clients.Outcome{out}, true)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "localhost:50051", "server gRPC address")
	fl.BoolVar(&tls, "tls", false, "connect with TLS")
	fl.StringVar(&model, "model", "", "served model name (default: the server's default)")
	fl.StringVar(&language, "language", "", "language code")
	fl.BoolVar(&asJSON, "json", false, "print every response as a JSON line")
	return cmd
}
