package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/stream"
	"github.com/chorus-asr/chorus/server"
	"github.com/chorus-asr/chorus/server/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func serveCmd() *cobra.Command {
	var (
		model, name, addr, httpAddr, modelsDir string
		adminToken, adminTokenFile             string
		tlsCert, tlsKey                        string
		maxConcurrent, maxStreams, slots       int
		threads                                int
		f16                                    bool
		grace                                  time.Duration
		rtcPeers                               int
		rtcPorts                               string
		rtcPublicIPs, rtcIfaces                []string
		rtcLoopback                            bool
		pathwayLog                             string
		encoderBatch, beam                     int
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve speech recognition: gRPC streaming and admin API, HTTP (OpenAI-compatible transcriptions, /metrics, health)",
		Long: `Serve speech recognition.

gRPC on --addr: chorus.v1.Recognizer (StreamingRecognize, Recognize), chorus.v1.Models (the
admin API: List, Load, Promote, Unload, Watch; needs the bearer token), health checking and
reflection. HTTP on --http: POST /v1/audio/transcriptions (OpenAI-compatible), /v1/models,
/metrics, /healthz, /readyz.

Models come from --models, a directory of variant folders watched for new ones (publishing a
folder hot-swaps it in; SIGHUP rescans); the embedded default model serves when it holds
none. --model serves one model folder or ggml file instead, with no registry.

SIGTERM or SIGINT drains: health goes NOT_SERVING, open streams are finalized, requests get
--grace to finish, then the models unload.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGTERM (Kubernetes) and SIGINT (a terminal) both start the graceful drain.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			setThreads(threads)
			token := adminToken
			if adminTokenFile != "" {
				b, err := os.ReadFile(adminTokenFile)
				if err != nil {
					return fmt.Errorf("--admin-token-file: %w", err)
				}
				if token = strings.TrimSpace(string(b)); token == "" {
					return errors.New("--admin-token-file is empty")
				}
			}
			if token == "" {
				log.Warn("no admin token (--admin-token-file): the admin API refuses every call")
			}
			rtc, err := webRTCConfig(rtcPeers, rtcPorts, rtcPublicIPs, rtcIfaces, rtcLoopback)
			if err != nil {
				return err
			}
			metrics := prometheus.NewRegistry()
			cfg := server.Config{
				Addr:          httpAddr,
				GRPCAddr:      addr,
				MaxConcurrent: maxConcurrent,
				MaxStreams:    maxStreams,
				ComputeSlots:  slots,
				ShutdownGrace: grace,
				AdminToken:    token,
				TLSCertFile:   tlsCert,
				TLSKeyFile:    tlsKey,
				Metrics:       metrics,
				Logger:        log,
				WebRTC:        rtc,
				PathwayLog:    pathwayLog,
				EncoderBatch:  encoderBatch,
				Stream:        stream.Config{BeamSize: beam},
			}
			if model != "" && model != defaultmodel.Name {
				v, err := openModelOrDefault(model, f16)
				if err != nil {
					return err
				}
				cfg.Model, cfg.ModelName = v, name
				srv, err := server.New(cfg)
				if err != nil {
					return err
				}
				log.Info("chorus serve", "grpc", addr, "http", httpAddr, "model", v.Path)
				return srv.Serve(ctx)
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reg, err := registry.New(registry.Config{
				Dir: modelsDir, DefaultModel: name, Open: asr.OpenOptions{F16: f16}, EmbeddedVariants: true,
				Logger: log, Registerer: metrics, Hangup: hup,
			})
			if err != nil {
				return err
			}
			cfg.Models, cfg.Admin = reg, registry.NewAdminServer(reg)
			srv, err := server.New(cfg)
			if err != nil {
				reg.Close(context.Background())
				return err
			}
			watchCtx, stopWatch := context.WithCancel(ctx)
			watched := make(chan error, 1)
			go func() { watched <- reg.Run(watchCtx) }()
			log.Info("chorus serve", "grpc", addr, "http", httpAddr, "models", modelsDir)
			serr := srv.Serve(ctx)
			stopWatch()
			if werr := <-watched; werr != nil && !errors.Is(werr, context.Canceled) {
				serr = errors.Join(serr, werr)
			}
			// Models unload last, once nothing can use them.
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return errors.Join(serr, reg.Close(cctx))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", ":50051", "gRPC address to listen on (empty: none)")
	fl.StringVar(&httpAddr, "http", server.DefaultAddr, "HTTP address to listen on")
	fl.StringVar(&modelsDir, "models", "", "models directory of variant folders, watched for new ones (default: the embedded model only)")
	fl.StringVar(&model, "model", "", "serve this one model folder or ggml file, without a registry")
	fl.StringVar(&name, "name", "", "the default model's name in the API (default: chorus-micro, or the --model folder's name)")
	fl.StringVar(&adminToken, "admin-token", "", "bearer token of the admin API (prefer --admin-token-file: flags show in ps)")
	fl.StringVar(&adminTokenFile, "admin-token-file", "", "file holding the admin API's bearer token")
	fl.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key serves gRPC and HTTP over TLS")
	fl.StringVar(&tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.IntVar(&maxConcurrent, "max-concurrent", 0, "whole-file transcriptions at once; more are refused (default: GOMAXPROCS)")
	fl.IntVar(&maxStreams, "max-streams", 0, fmt.Sprintf("open streams at once; more are refused (default %d)", server.DefaultMaxStreams))
	fl.IntVar(&slots, "compute-slots", 0, "stream decoding jobs at once (default: GOMAXPROCS)")
	fl.IntVar(&encoderBatch, "encoder-batch", 0, fmt.Sprintf("most streams' windows encoded in one batch (default %d; 1: no batching)", server.DefaultEncoderBatch))
	fl.DurationVar(&grace, "grace", server.DefaultShutdownGrace, "how long work may finish after SIGTERM")
	fl.IntVar(&rtcPeers, "webrtc-max-peers", 0, fmt.Sprintf("WebRTC peers at once (default %d)", server.DefaultMaxPeers))
	fl.StringVar(&rtcPorts, "webrtc-udp-ports", "", "UDP port range of WebRTC ICE candidates, MIN-MAX (default: any)")
	fl.StringSliceVar(&rtcPublicIPs, "webrtc-public-ip", nil, "address(es) to announce in ICE candidates (a server behind 1:1 NAT)")
	fl.StringSliceVar(&rtcIfaces, "webrtc-interface", nil, "network interface(s) for ICE candidates (default: all)")
	fl.BoolVar(&rtcLoopback, "webrtc-loopback", true, "offer loopback ICE candidates (a browser on the same machine)")
	fl.StringVar(&pathwayLog, "pathway-log", "", "export every routed final's activation pathway to this directory (zstd JSON lines; see chorus pathways)")
	fl.IntVar(&beam, "beam", 1, "beam size of finals and whole-file transcriptions (1: greedy; 5 lowers the default model's WER by about a quarter at twice a final's compute; interims are always greedy)")
	fl.IntVar(&threads, "threads", 0, "compute threads (default: all cores)")
	fl.BoolVar(&f16, "f16", true, "store large weights in half precision (f32 compute)")
	return cmd
}

// webRTCConfig turns the --webrtc-* flags into the server's WebRTC settings.
func webRTCConfig(peers int, ports string, publicIPs, ifaces []string, loopback bool) (server.WebRTCConfig, error) {
	c := server.WebRTCConfig{MaxPeers: peers, ICEPublicIPs: publicIPs, ICEInterfaces: ifaces, ICELoopback: loopback}
	if ports != "" {
		lo, hi, ok := strings.Cut(ports, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
			return c, fmt.Errorf("--webrtc-udp-ports %q: want MIN-MAX, 1 ≤ MIN ≤ MAX ≤ 65535", ports)
		}
		c.ICEPortMin, c.ICEPortMax = uint16(a), uint16(b)
	}
	return c, nil
}
