package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/chorus-asr/chorus/server"
	"github.com/chorus-asr/chorus/server/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// writeVariant publishes a copy of the embedded default model as variant name, serving as
// chorus-micro; corrupt flips one byte of its weights (the card's checksum then fails).
func writeVariant(t *testing.T, dir, name string, corrupt bool) {
	t.Helper()
	publishFS(t, defaultmodel.FS(), dir, name, corrupt)
}

// publishFS publishes a copy of the variant folder src as variant name, serving as
// chorus-micro (see writeVariant).
func publishFS(t *testing.T, src fs.FS, dir, name string, corrupt bool) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name) // publish by rename, as the registry documents
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		switch p {
		case "card.json":
			var card map[string]any
			if err := json.Unmarshal(b, &card); err != nil {
				return err
			}
			card["serves"] = "chorus-micro"
			if b, err = json.Marshal(card); err != nil {
				return err
			}
		case "model.safetensors.zst":
			if corrupt {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 0xff
			}
		}
		if err := os.MkdirAll(filepath.Join(tmp, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func heapMB() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// TestHotSwapUnderLoad is the hot-swap check: 16 real-time streams run while the
// default model is promoted to another variant and back 10 times. No stream may fail or be
// dropped, each stream's served_by must stay constant for its life, the retired variants
// must drain and unload (memory back to one model), and a corrupt variant must be refused
// while serving goes on. Last, the embedded flagship is published into the models folder and
// must take over by itself, with streams served by it and none dropped.
func TestHotSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("hot swap under load takes about a minute")
	}
	server.CheckLeaks(t)
	server.LoadDefault(t) // start the kernel workers before the leak check's baseline matters
	dir := t.TempDir()
	writeVariant(t, dir, "a", false)
	writeVariant(t, dir, "b", false)
	log := server.TestLogger(t)
	reg, err := registry.New(registry.Config{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Models: reg, Admin: registry.NewAdminServer(reg), AdminToken: "tok", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	bl := bufconn.Listen(1 << 20)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListeners(ctx, hl, bl) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := reg.Close(context.Background()); err != nil {
			t.Errorf("registry close: %v", err)
		}
	}()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for deadline := time.Now().Add(60 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready after 60 s")
		}
	}
	baseline := heapMB()
	live := func() string {
		for _, v := range reg.Variants() {
			if v.State == registry.Live {
				return v.Variant
			}
		}
		return ""
	}
	first := live()
	other := map[string]string{"a": "b", "b": "a"}[first]
	if other == "" {
		t.Fatalf("live variant %q, want a or b", first)
	}

	clip := server.SpeechClip(t)
	var stop atomic.Bool
	var streams, failures atomic.Int64
	seen := sync.Map{} // variant → streams served
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				out, err := clients.StreamAudio(t.Context(), cc, clip, clients.StreamOptions{Realtime: true,
					Config: &chorusv1.StreamingRecognitionConfig{InterimResults: true}})
				streams.Add(1)
				if err == nil && !out.EOF {
					err = errors.New("no is_eof")
				}
				if err == nil {
					for _, r := range out.Responses {
						if sb := r.Response.GetServedBy(); sb.GetVariant() != out.ServedBy.GetVariant() || sb.GetVersion() != out.ServedBy.GetVersion() {
							err = errors.New("served_by changed during the stream")
						}
					}
				}
				if err != nil {
					failures.Add(1)
					t.Errorf("stream %d: %v", i, err)
					return
				}
				n, _ := seen.LoadOrStore(out.ServedBy.GetVariant(), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	admin := chorusv1.NewModelsClient(cc)
	actx := clients.WithToken(t.Context(), "tok")
	time.Sleep(time.Second) // streams open on the first variant
	for i := range 10 {
		target := other
		if i%2 == 1 {
			target = first
		}
		if _, err := admin.Load(actx, &chorusv1.LoadModelRequest{Variant: target, Model: "chorus-micro", Promote: true}); err != nil {
			t.Fatalf("swap %d to %s: %v", i, target, err)
		}
		if got := live(); got != target {
			t.Fatalf("swap %d: live %q, want %q", i, got, target)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A corrupt variant is refused while the streams go on.
	writeVariant(t, dir, "c", true)
	if _, err := admin.Load(actx, &chorusv1.LoadModelRequest{Variant: "c", Model: "chorus-micro", Promote: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("corrupt variant: %v, want FailedPrecondition", err)
	}
	if got := live(); got != first {
		t.Errorf("after the corrupt load live is %q, want %q", got, first)
	}
	// The flagship (pruned, then MoE-fied; its pruned blocks run dense by default) published into
	// the models folder takes over on the next rescan (the watcher's, or SIGHUP's).
	if slices.Contains(defaultmodel.Names(), defaultmodel.FlagshipName) {
		flag, err := defaultmodel.VariantFS(defaultmodel.FlagshipName)
		if err != nil {
			t.Fatal(err)
		}
		publishFS(t, flag, dir, defaultmodel.FlagshipName, false)
		if err := reg.Rescan(t.Context()); err != nil {
			t.Fatalf("rescan after publishing the flagship: %v", err)
		}
		for deadline := time.Now().Add(30 * time.Second); live() != defaultmodel.FlagshipName; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("published flagship not live after 30 s (live %q)", live())
			}
		}
		time.Sleep(3 * time.Second) // streams open on the flagship
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d streams failed", failures.Load(), streams.Load())
	}
	seen.Range(func(k, v any) bool { t.Logf("variant %s served %d streams", k, v.(*atomic.Int64).Load()); return true })
	if n, ok := seen.Load(defaultmodel.FlagshipName); slices.Contains(defaultmodel.Names(), defaultmodel.FlagshipName) && (!ok || n.(*atomic.Int64).Load() == 0) {
		t.Errorf("no stream was served by the published flagship")
	}

	// Drain: every retired variant unloads once its last stream is done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var loaded []string
		for _, v := range reg.Variants() {
			if v.State != registry.Failed {
				loaded = append(loaded, v.Variant+":"+v.State.String())
			}
		}
		if len(loaded) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the drain still loaded: %v", loaded)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := heapMB()
	t.Logf("%d streams, heap with one model %.1f MB before the swaps, %.1f MB after the drain", streams.Load(), baseline, after)
	if after > baseline*1.25+8 {
		t.Errorf("heap %.1f MB after the drain, %.1f MB before: a retired model was not freed", after, baseline)
	}
}
