package registry

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/chorus-asr/chorus/asr/defaultmodel"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
)

// adminClient serves r's admin API over an in-memory connection for the test's life.
func adminClient(t *testing.T, r *Registry) chorusv1.ModelsClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	chorusv1.RegisterModelsServer(srv, NewAdminServer(r))
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		wg.Wait()
	})
	return chorusv1.NewModelsClient(conn)
}

// TestAdminServer drives the Models API over gRPC: errors map to INVALID_ARGUMENT,
// NOT_FOUND and FAILED_PRECONDITION (a corrupt variant, unloading the live one), Load puts
// a variant on standby and Promote swaps it in, and Watch sees a snapshot and then every
// variant's life: LOADING→STANDBY→LIVE→DRAINING→UNLOADED, LOADING→FAILED.
func TestAdminServer(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	h := newHarness(t, Config{Dir: dir})
	h.warm(t)
	publish(t, dir, "micro-b", variantOpts{serves: defaultmodel.Name, plain: true})
	publish(t, dir, "micro-c", variantOpts{})
	publish(t, dir, "micro-bad", variantOpts{serves: defaultmodel.Name, after: func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "config.json"), []byte(`{"d_model": 1}`))
	}})
	c := adminClient(t, h.r)
	ctx := t.Context()

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := c.Watch(wctx, &chorusv1.WatchModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m := first.GetModel(); m.GetVariant() != "micro-a" || m.GetState() != chorusv1.ModelInfo_LIVE || !m.GetDefault() {
		t.Fatalf("watch snapshot: %v", m)
	}
	var (
		evMu   sync.Mutex
		events []*chorusv1.ModelEvent
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			ev, err := watch.Recv()
			if err != nil {
				return
			}
			evMu.Lock()
			events = append(events, ev)
			evMu.Unlock()
		}
	})

	list, err := c.List(ctx, &chorusv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetModels()) != 1 || list.GetModels()[0].GetVersion() != embeddedVersion ||
		list.GetModels()[0].GetParameters() == 0 || list.GetModels()[0].GetLoadedAt() == nil {
		t.Errorf("List: %v", list.GetModels())
	}

	errCases := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"load without variant", func() error { _, err := c.Load(ctx, &chorusv1.LoadModelRequest{}); return err },
			codes.InvalidArgument, "variant"},
		{"load missing variant", func() error {
			_, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: "nope"})
			return err
		}, codes.NotFound, "nope"},
		{"load missing path", func() error {
			_, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: filepath.Join(dir, "gone")})
			return err
		}, codes.NotFound, "gone"},
		{"load corrupt variant", func() error {
			_, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: "micro-bad"})
			return err
		}, codes.FailedPrecondition, "config.json"},
		{"promote without variant", func() error {
			_, err := c.Promote(ctx, &chorusv1.PromoteModelRequest{})
			return err
		}, codes.InvalidArgument, "variant"},
		{"promote unknown variant", func() error {
			_, err := c.Promote(ctx, &chorusv1.PromoteModelRequest{Variant: "nope"})
			return err
		}, codes.NotFound, "nope"},
		{"promote failed variant", func() error {
			_, err := c.Promote(ctx, &chorusv1.PromoteModelRequest{Variant: "micro-bad"})
			return err
		}, codes.FailedPrecondition, "FAILED"},
		{"unload live variant", func() error {
			_, err := c.Unload(ctx, &chorusv1.UnloadModelRequest{Variant: "micro-a"})
			return err
		}, codes.FailedPrecondition, "live"},
		{"unload without variant", func() error {
			_, err := c.Unload(ctx, &chorusv1.UnloadModelRequest{Model: defaultmodel.Name})
			return err
		}, codes.InvalidArgument, "variant"},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if s, _ := status.FromError(err); s.Code() != tt.code || !strings.Contains(s.Message(), tt.msg) {
				t.Errorf("got %v, want %s mentioning %q", err, tt.code, tt.msg)
			}
		})
	}
	if l, err := h.r.Acquire(ctx, ""); err != nil || l.Model.Variant != "micro-a" {
		t.Fatalf("live model after the failed calls: %+v, %v", l.Model, err)
	} else {
		l.Release()
	}

	// Load beside, promote by hand; then publish another with promote set.
	loaded, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: "micro-b"})
	if err != nil {
		t.Fatal(err)
	}
	if m := loaded.GetModel(); m.GetState() != chorusv1.ModelInfo_STANDBY || m.GetModel() != defaultmodel.Name {
		t.Fatalf("Load micro-b: %v", m)
	}
	pr, err := c.Promote(ctx, &chorusv1.PromoteModelRequest{Variant: "micro-b"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetModel().GetState() != chorusv1.ModelInfo_LIVE || pr.GetPrevious().GetVariant() != "micro-a" {
		t.Fatalf("Promote micro-b: %v", pr)
	}
	// micro-c's card serves nothing: loaded by hand it goes under the model named.
	lc, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: filepath.Join(dir, "micro-c"), Model: defaultmodel.Name, Promote: true})
	if err != nil {
		t.Fatal(err)
	}
	if m := lc.GetModel(); m.GetState() != chorusv1.ModelInfo_LIVE || m.GetSource() != filepath.Join(dir, "micro-c") {
		t.Fatalf("Load micro-c by path with promote: %v", m)
	}
	// A standby variant unloads on request.
	if _, err := c.Load(ctx, &chorusv1.LoadModelRequest{Variant: "embedded:chorus-micro"}); err != nil {
		t.Fatal(err)
	}
	un, err := c.Unload(ctx, &chorusv1.UnloadModelRequest{Variant: defaultmodel.Name})
	if err != nil || un.GetModel().GetState() != chorusv1.ModelInfo_UNLOADED {
		t.Fatalf("Unload standby embedded: %v, %v", un, err)
	}

	h.waitState(t, defaultmodel.Name, "micro-b", Unloaded)
	waitFor(t, "watch events", func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return len(events) > 0 && events[len(events)-1].GetModel().GetState() == chorusv1.ModelInfo_UNLOADED &&
			events[len(events)-1].GetModel().GetSource() == "embedded:chorus-micro"
	})
	stopWatch()
	wg.Wait()
	seq := func(variant string) []string {
		var out []string
		for _, ev := range events {
			if ev.GetModel().GetVariant() == variant {
				out = append(out, ev.GetModel().GetState().String())
			}
		}
		return out
	}
	for variant, want := range map[string][]string{
		"micro-a":      {"DRAINING", "UNLOADED"},
		"micro-bad":    {"LOADING", "FAILED"},
		"micro-b":      {"LOADING", "STANDBY", "LIVE", "DRAINING", "UNLOADED"},
		"micro-c":      {"LOADING", "STANDBY", "LIVE"},
		"chorus-micro": {"LOADING", "STANDBY", "DRAINING", "UNLOADED"},
	} {
		if got := seq(variant); !slices.Equal(got, want) {
			t.Errorf("watch saw %s go %v, want %v", variant, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "micro-b")); err != nil {
		t.Errorf("the registry touched the store: %v", err)
	}
}
