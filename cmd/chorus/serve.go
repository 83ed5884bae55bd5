package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/chorus-asr/chorus/server"
	"github.com/spf13/cobra"
)

func serveCmd() *cobra.Command {
	var (
		model, name, addr string
		maxConcurrent     int
		threads           int
		f16               bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a model over HTTP (OpenAI-compatible /v1/audio/transcriptions, /metrics, /healthz, /readyz)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGTERM (Kubernetes) and SIGINT (a terminal) both start the graceful drain.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			setThreads(threads)
			v, err := openModelOrDefault(model, f16)
			if err != nil {
				return err
			}
			srv, err := server.New(server.Config{
				Addr:          addr,
				Model:         v,
				ModelName:     name,
				MaxConcurrent: maxConcurrent,
				Logger:        log,
			})
			if err != nil {
				return err
			}
			log.Info("chorus serve", "addr", addr, "model", v.Path)
			return srv.Serve(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "model folder or ggml file (default: the embedded default model)")
	fl.StringVar(&name, "name", "", "the model's name in the API (default: the model folder's or file's name)")
	fl.StringVar(&addr, "addr", server.DefaultAddr, "address to listen on")
	fl.IntVar(&maxConcurrent, "max-concurrent", 0, "transcriptions run at once; more get 429 (default: GOMAXPROCS)")
	fl.IntVar(&threads, "threads", 0, "compute threads (default: all cores)")
	fl.BoolVar(&f16, "f16", true, "store large weights in half precision (f32 compute)")
	return cmd
}
