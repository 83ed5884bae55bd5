package server

import (
	"fmt"
	"time"

	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Keepalive settings: a client that vanished without closing its connection (a laptop lid,
// a dropped network) is found within about a minute and its streams end, releasing their
// admission slots and model pins.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 20 * time.Second
)

// recognizerService is the health-checking name of the Recognizer.
const recognizerService = "chorus.v1.Recognizer"

// newGRPC builds the gRPC server: Recognizer, the admin Models service behind the bearer
// token, health checking and reflection (so grpcurl works without the .proto files).
func (s *Server) newGRPC() (*grpc.Server, *health.Server, error) {
	auth := newBearerAuth(s.cfg.AdminToken)
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.MaxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(auth.unary),
		grpc.ChainStreamInterceptor(auth.stream),
	}
	if s.cfg.TLSCertFile != "" {
		creds, err := credentials.NewServerTLSFromFile(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("server: TLS: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	chorusv1.RegisterRecognizerServer(gs, &recognizer{s: s})
	if s.cfg.Admin != nil {
		chorusv1.RegisterModelsServer(gs, s.cfg.Admin)
	}
	chorusv1.RegisterExperimentsServer(gs, s.experiments)
	hs := health.NewServer()
	// Not serving until the models are warm; ServeListeners flips it.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(recognizerService, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs, hs, nil
}

// setHealth reports serving (or not) on the gRPC health service.
func (s *Server) setHealth(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(recognizerService, st)
}

// GRPC returns the gRPC server, for callers that serve it on a listener of their own (tests
// over bufconn). Serving it that way skips the warm-up and the drain of ServeListeners.
func (s *Server) GRPC() *grpc.Server { return s.grpc }
