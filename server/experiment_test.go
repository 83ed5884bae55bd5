package server

import (
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/chorus-asr/chorus/experts"
	"github.com/klauspost/compress/zstd"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func armSpec(name, router string, experts int32, weight float64) *chorusv1.Arm {
	return &chorusv1.Arm{Name: name, Weight: weight, Routing: &chorusv1.RoutingConfig{Router: router, Experts: experts}}
}

// TestExperimentBadInput: experiments that cannot run are refused with INVALID_ARGUMENT and
// a message naming the problem, the admin token is required, and a refused experiment
// leaves the running one (none here) as it was.
func TestExperimentBadInput(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe", AdminToken: "tok"})
	ex := chorusv1.NewExperimentsClient(g.cc)
	ctx := clients.WithToken(t.Context(), "tok")
	if _, err := ex.Get(t.Context(), &chorusv1.GetExperimentRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Get without the token: %v, want Unauthenticated", err)
	}
	for _, tc := range []struct {
		name string
		spec *chorusv1.Experiment
		want string // in the message
	}{
		{"no name", &chorusv1.Experiment{Arms: []*chorusv1.Arm{armSpec("a", "dense", 0, 1)}}, "name"},
		{"no arms", &chorusv1.Experiment{Name: "x"}, "arms"},
		{"duplicate arm", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "dense", 0, 1), armSpec("a", "random", 4, 1)}}, "named twice"},
		{"negative weight", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "dense", 0, -1)}}, "weight"},
		{"zero weights", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "dense", 0, 0), armSpec("b", "random", 4, 0)}}, "sum"},
		{"unknown router", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "magic", 4, 1)}}, "unknown router"},
		{"k out of range", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "random", 17, 1)}}, "a"},
		{"router without learned weights", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "mlp", 4, 1)}}, "a"},
		{"unknown model", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{{Name: "a", Model: "nope", Weight: 1}}}, "not found"},
		{"nested experiment", &chorusv1.Experiment{Name: "x", Arms: []*chorusv1.Arm{armSpec("a", "experiment", 0, 1)}}, "experiment"},
		{"shadow fraction", &chorusv1.Experiment{Name: "x", ShadowFraction: 1.5, Arms: []*chorusv1.Arm{armSpec("a", "dense", 0, 1)}}, "shadow_fraction"},
	} {
		_, err := ex.Set(ctx, tc.spec)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
	if st, err := ex.Get(ctx, &chorusv1.GetExperimentRequest{}); err != nil || st.GetRunning() {
		t.Errorf("after refused experiments: %v %v, want none running", st, err)
	}
	if _, err := ex.Stop(ctx, &chorusv1.StopExperimentRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("Stop with none running: %v, want NotFound", err)
	}
	if _, err := streamRouted(t, g, speechClip(t)[:8000], &chorusv1.RoutingConfig{Router: "experiment"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("router experiment with none running: %v, want FailedPrecondition", err)
	}
}

// TestExperimentLive runs an experiment of three arms with shadow decoding over concurrent
// streams: each stream gets one arm for its life (served_by.arm constant, its router the
// arm's), the per-arm figures add up to the streams run, the non-dense arms are compared
// with the dense decoding, the per-arm metrics appear on /metrics, a stream that names its
// router stays out, and after Stop new streams are not assigned.
func TestExperimentLive(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe", AdminToken: "tok"})
	ex := chorusv1.NewExperimentsClient(g.cc)
	ctx := clients.WithToken(t.Context(), "tok")
	spec := &chorusv1.Experiment{Name: "routers", Seed: 7, ShadowFraction: 1,
		Arms: []*chorusv1.Arm{armSpec("dense", "dense", 0, 1), armSpec("random-4", "random", 4, 1), armSpec("oracle-4", "oracle", 4, 1)}}
	if _, err := ex.Set(ctx, spec); err != nil {
		t.Fatal(err)
	}
	clip := speechClip(t)
	const n = 9
	routers := map[string]string{"dense": "dense", "random-4": "random:4", "oracle-4": "oracle:4"}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps, err := streamRouted(t, g, clip, nil)
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			a := resps[0].GetServedBy().GetArm()
			for _, r := range resps {
				if sb := r.GetServedBy(); sb.GetArm() != a || sb.GetRouter() != routers[a] {
					t.Errorf("stream %d: served_by %v, first arm %q", i, sb, a)
					return
				}
			}
		}()
	}
	wg.Wait()
	resps, err := streamRouted(t, g, clip, &chorusv1.RoutingConfig{Router: "dense"})
	if err != nil || resps[0].GetServedBy().GetArm() != "" {
		t.Errorf("a stream naming its router joined the experiment: %v %v", resps, err)
	}
	st, err := ex.Get(ctx, &chorusv1.GetExperimentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var streams int64
	for _, a := range st.GetArms() {
		streams += a.GetStreams()
		t.Logf("arm %s: streams %d finals %d rtf %.3f experts %.3f shadow %d wer %.2f p50 %.3fs",
			a.GetArm(), a.GetStreams(), a.GetFinals(), a.GetRealTimeFactor(), a.GetExpertsUsed(), a.GetShadowUtterances(), a.GetShadowWer(), a.GetFinalLatencyP50Seconds())
		if a.GetActive() != 0 {
			t.Errorf("arm %s: %d streams still active", a.GetArm(), a.GetActive())
		}
		if a.GetStreams() > 0 && (a.GetFinals() == 0 || a.GetAudioSeconds() <= 0) {
			t.Errorf("arm %s: %d streams but %d finals, %g s audio", a.GetArm(), a.GetStreams(), a.GetFinals(), a.GetAudioSeconds())
		}
		switch a.GetArm() {
		case "dense":
			if a.GetShadowUtterances() != 0 || (a.GetStreams() > 0 && a.GetExpertsUsed() != 1) {
				t.Errorf("dense arm: shadow %d, experts used %g", a.GetShadowUtterances(), a.GetExpertsUsed())
			}
		default:
			if a.GetStreams() > 0 && (a.GetShadowUtterances() == 0 || a.GetExpertsUsed() != 0.25) {
				t.Errorf("arm %s: shadow %d, experts used %g, want shadowed and 0.25", a.GetArm(), a.GetShadowUtterances(), a.GetExpertsUsed())
			}
			if a.GetStreams() > 0 {
				if want := defaultLayers(t); len(a.GetLayers()) != want {
					t.Fatalf("arm %s: expert use of %d layers, want %d", a.GetArm(), len(a.GetLayers()), want)
				}
				for _, l := range a.GetLayers() {
					sum := 0.0
					for _, u := range l.GetUtilisation() {
						sum += u
					}
					if l.GetTokens() == 0 || len(l.GetUtilisation()) != 16 || math.Abs(sum-4) > 1e-9 /* k = 4 experts per token */ || l.GetEntropyBits() <= 0 || l.GetEntropyBits() > 4+1e-9 {
						t.Errorf("arm %s layer %s: %d tokens, utilisation %v (sum %g), entropy %g", a.GetArm(), l.GetName(), l.GetTokens(), l.GetUtilisation(), sum, l.GetEntropyBits())
					}
				}
			}
		}
	}
	if streams != n {
		t.Errorf("arms counted %d streams, want %d", streams, n)
	}
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"chorus_arm_streams_total{arm=", "chorus_arm_final_latency_seconds_bucket{arm=", "chorus_arm_shadow_words_total{arm="} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if st, err := ex.Stop(ctx, &chorusv1.StopExperimentRequest{}); err != nil || st.GetRunning() {
		t.Fatalf("Stop: %v %v", st, err)
	}
	resps, err = streamRouted(t, g, clip[:16000], nil)
	if err != nil || resps[0].GetServedBy().GetArm() != "" {
		t.Errorf("a stream after Stop was assigned: %v %v", resps, err)
	}
}

// TestPathwayExport: with a pathway log, every final of a routed stream is exported as
// zstd-compressed JSON lines even when the client did not ask for the pathway, tagged with
// the stream's model and router, and readable with experts.ReadJSONL once the server has
// shut down (which flushes the file).
func TestPathwayExport(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	g := startGRPC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe", PathwayLog: dir})
	finals := 0
	for range 2 {
		resps, err := streamRouted(t, g, speechClip(t), &chorusv1.RoutingConfig{Router: "random", Experts: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resps {
			if r.GetPathway() != nil {
				t.Fatal("pathway sent to a client that did not ask for it")
			}
			if len(r.GetResults()) > 0 && r.GetResults()[0].GetIsFinal() {
				finals++
			}
		}
	}
	g.stop(t)
	files, _ := filepath.Glob(filepath.Join(dir, "pathways-*.jsonl.zst"))
	if len(files) != 1 {
		t.Fatalf("export files %v, want one", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	ps, err := experts.ReadJSONL(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != finals || finals == 0 {
		t.Fatalf("%d pathways exported for %d finals", len(ps), finals)
	}
	for _, p := range ps {
		if p.Tags["model"] != "chorus-micro-moe" || p.Tags["router"] != "random:4" || p.Tags["time"] == "" || len(p.Layers) != defaultLayers(t) {
			t.Errorf("pathway %s: tags %v, %d layers", p.Request, p.Tags, len(p.Layers))
		}
	}
}

// TestExperimentPathwayExport is the live check in one run: streams split across two
// arms; each stream keeps its arm; the per-arm figures (API), the per-arm metrics (/metrics)
// and the exported pathways (tagged with their arm) all show both arms.
func TestExperimentPathwayExport(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	g := startGRPC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe", AdminToken: "tok", PathwayLog: dir})
	ex := chorusv1.NewExperimentsClient(g.cc)
	ctx := clients.WithToken(t.Context(), "tok")
	if _, err := ex.Set(ctx, &chorusv1.Experiment{Name: "two", Seed: 2,
		Arms: []*chorusv1.Arm{armSpec("random-4", "random", 4, 1), armSpec("oracle-4", "oracle", 4, 1)}}); err != nil {
		t.Fatal(err)
	}
	arms := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps, err := streamRouted(t, g, speechClip(t), nil)
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			a := resps[0].GetServedBy().GetArm()
			for _, r := range resps {
				if r.GetServedBy().GetArm() != a {
					t.Errorf("stream %d changed arm", i)
				}
			}
			mu.Lock()
			arms[a]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(arms) != 2 {
		t.Fatalf("streams went to arms %v, want both", arms)
	}
	st, err := ex.Get(ctx, &chorusv1.GetExperimentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.GetArms() {
		if int(a.GetStreams()) != arms[a.GetArm()] || a.GetFinals() == 0 || len(a.GetLayers()) == 0 {
			t.Errorf("arm %s: API says %d streams (%d ran), %d finals, %d layers", a.GetArm(), a.GetStreams(), arms[a.GetArm()], a.GetFinals(), len(a.GetLayers()))
		}
	}
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for a := range arms {
		if !strings.Contains(string(body), `chorus_arm_streams_total{arm="`+a+`",experiment="two"}`) {
			t.Errorf("/metrics lacks arm %s", a)
		}
	}
	g.stop(t)
	files, _ := filepath.Glob(filepath.Join(dir, "pathways-*.jsonl.zst"))
	tagged := map[string]bool{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := experts.ReadJSONL(zr)
		zr.Close()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Tags["experiment"] != "two" {
				t.Errorf("pathway %s tagged %v", p.Request, p.Tags)
			}
			tagged[p.Tags["arm"]] = true
		}
	}
	for a := range arms {
		if !tagged[a] {
			t.Errorf("no exported pathway of arm %s", a)
		}
	}
}
