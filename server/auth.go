package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// adminPrefixes are the full-method prefixes of the admin services, the ones that need the
// bearer token.
var adminPrefixes = []string{"/chorus.v1.Models/", "/chorus.v1.Experiments/"}

// bearerAuth checks "authorization: Bearer <token>" on admin calls. The token is compared as
// a SHA-256 digest in constant time, so neither its length nor its prefix leaks through
// timing. An empty token disables the admin API rather than opening it.
type bearerAuth struct {
	digest [32]byte
	set    bool
}

func newBearerAuth(token string) bearerAuth {
	if token == "" {
		return bearerAuth{}
	}
	return bearerAuth{digest: sha256.Sum256([]byte(token)), set: true}
}

func (a bearerAuth) check(ctx context.Context, method string) error {
	if !slices.ContainsFunc(adminPrefixes, func(p string) bool { return strings.HasPrefix(method, p) }) {
		return nil
	}
	if !a.set {
		return status.Error(codes.Unauthenticated, "admin API disabled: start the server with --admin-token-file (or --admin-token)")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			continue
		}
		d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "admin API: missing or invalid bearer token")
}

func (a bearerAuth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a bearerAuth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}
