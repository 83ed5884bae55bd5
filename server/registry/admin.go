package registry

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/chorus-asr/chorus/server"
)

// AdminServer serves the chorus.v1.Models admin API on a Registry. Authentication is the
// gRPC server's business (an interceptor), not this type's.
type AdminServer struct {
	chorusv1.UnimplementedModelsServer
	r *Registry // immutable
}

// NewAdminServer returns the admin API of r; register it with chorusv1.RegisterModelsServer.
func NewAdminServer(r *Registry) *AdminServer { return &AdminServer{r: r} }

// List describes every variant the registry holds, whatever its state.
func (a *AdminServer) List(context.Context, *chorusv1.ListModelsRequest) (*chorusv1.ListModelsResponse, error) {
	vs := a.r.Variants()
	out := &chorusv1.ListModelsResponse{Models: make([]*chorusv1.ModelInfo, 0, len(vs))}
	for _, v := range vs {
		out.Models = append(out.Models, toPB(v))
	}
	return out, nil
}

// Load loads a variant beside the live one, and promotes it when asked.
func (a *AdminServer) Load(ctx context.Context, req *chorusv1.LoadModelRequest) (*chorusv1.LoadModelResponse, error) {
	if req.GetVariant() == "" {
		return nil, status.Error(codes.InvalidArgument, "variant is required: a folder name in the models directory or a path")
	}
	v, err := a.r.Load(ctx, req.GetVariant(), req.GetModel(), req.GetPromote())
	if err != nil {
		return nil, toStatus(err)
	}
	return &chorusv1.LoadModelResponse{Model: toPB(v)}, nil
}

// Promote makes a loaded variant live; the previous one drains.
func (a *AdminServer) Promote(ctx context.Context, req *chorusv1.PromoteModelRequest) (*chorusv1.PromoteModelResponse, error) {
	if req.GetVariant() == "" {
		return nil, status.Error(codes.InvalidArgument, "variant is required")
	}
	cur, prev, err := a.r.Promote(ctx, req.GetModel(), req.GetVariant())
	if err != nil {
		return nil, toStatus(err)
	}
	res := &chorusv1.PromoteModelResponse{Model: toPB(cur)}
	if prev.Variant != "" {
		res.Previous = toPB(prev)
	}
	return res, nil
}

// Unload retires a variant that is not live.
func (a *AdminServer) Unload(ctx context.Context, req *chorusv1.UnloadModelRequest) (*chorusv1.UnloadModelResponse, error) {
	if req.GetVariant() == "" {
		return nil, status.Error(codes.InvalidArgument, "variant is required")
	}
	v, err := a.r.Unload(ctx, req.GetModel(), req.GetVariant())
	if err != nil {
		return nil, toStatus(err)
	}
	return &chorusv1.UnloadModelResponse{Model: toPB(v)}, nil
}

// Watch sends the state of every variant, then every change until the client goes away or
// the registry closes. Events are copied out of the registry under its lock and sent
// without it; a client too slow to keep up is cut off with RESOURCE_EXHAUSTED rather than
// holding the registry back.
func (a *AdminServer) Watch(_ *chorusv1.WatchModelsRequest, stream grpc.ServerStreamingServer[chorusv1.ModelEvent]) error {
	snapshot, events, errf, cancel := a.r.subscribe()
	defer cancel()
	for _, ev := range snapshot {
		if err := stream.Send(eventPB(ev)); err != nil {
			return err
		}
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case ev, ok := <-events:
			if !ok {
				if err := errf(); err != nil {
					return status.Error(codes.ResourceExhausted, err.Error())
				}
				return status.Error(codes.Unavailable, "model registry closed")
			}
			if err := stream.Send(eventPB(ev)); err != nil {
				return err
			}
		}
	}
}

// toStatus maps the registry's errors to gRPC codes.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, server.ErrModelClosing):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrInvalidVariant), errors.Is(err, ErrVariantLive), errors.Is(err, ErrVariantNotReady):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, server.ErrModelNotFound): // ErrVariantNotFound too
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func toPB(v VariantInfo) *chorusv1.ModelInfo {
	m := &chorusv1.ModelInfo{
		Model: v.Model, Variant: v.Variant, Version: v.Version, State: chorusv1.ModelInfo_State(v.State),
		Active: int32(min(v.Active, 1<<31-1)), Source: v.Source, Parameters: v.Parameters, Error: v.Err,
		Default: v.Default,
	}
	if !v.Loaded.IsZero() {
		m.LoadedAt = timestamppb.New(v.Loaded)
	}
	return m
}

func eventPB(ev Event) *chorusv1.ModelEvent {
	return &chorusv1.ModelEvent{Model: toPB(ev.Info), Time: timestamppb.New(ev.Time), Message: ev.Message}
}
