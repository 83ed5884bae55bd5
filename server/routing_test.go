package server

import (
	"context"
	"errors"
	"io"
	"math"
	"math/bits"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/clients"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRoutingChoice: RoutingConfig fields map onto asr.RoutingChoice, and every malformed
// one is INVALID_ARGUMENT before a model is pinned.
func TestRoutingChoice(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *chorusv1.RoutingConfig
		want asr.RoutingChoice
		bad  bool
	}{
		{"absent", nil, asr.RoutingChoice{}, false},
		{"dense", &chorusv1.RoutingConfig{Router: "dense"}, asr.RoutingChoice{Router: "dense"}, false},
		{"mlp fraction", &chorusv1.RoutingConfig{Router: "mlp", Fraction: 0.25, ReturnPathway: true}, asr.RoutingChoice{Router: "mlp", Fraction: 0.25, Pathway: true}, false},
		{"random count per request", &chorusv1.RoutingConfig{Router: "random", Experts: 4, Mode: chorusv1.RoutingConfig_PER_REQUEST, Seed: 9},
			asr.RoutingChoice{Router: "random", K: 4, PerRequest: true, Seed: 9}, false},
		{"unknown router", &chorusv1.RoutingConfig{Router: "magic"}, asr.RoutingChoice{}, true},
		{"experiment (assigned later)", &chorusv1.RoutingConfig{Router: "experiment"}, asr.RoutingChoice{Router: "experiment"}, false},
		{"fraction above 1", &chorusv1.RoutingConfig{Router: "oracle", Fraction: 1.5}, asr.RoutingChoice{}, true},
		{"fraction NaN", &chorusv1.RoutingConfig{Router: "oracle", Fraction: float32(math.NaN())}, asr.RoutingChoice{}, true},
		{"negative count", &chorusv1.RoutingConfig{Router: "mlp", Experts: -2}, asr.RoutingChoice{}, true},
		{"no k", &chorusv1.RoutingConfig{Router: "random"}, asr.RoutingChoice{}, true},
		{"unknown mode", &chorusv1.RoutingConfig{Router: "mlp", Experts: 2, Mode: 7}, asr.RoutingChoice{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := routingChoice(tc.in)
			if tc.bad {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("got %+v, %v; want INVALID_ARGUMENT", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// moeDefault is the default model with its blocks split, unpermuted, into 16 experts each
// and no learned routers: enough for random and oracle routing.
// defaultLayers is the number of layers (encoder and decoder) of the embedded default model:
// the layers a pathway of moeDefault records.
func defaultLayers(t *testing.T) int {
	t.Helper()
	m := loadDefault(t).Model
	return len(m.Encoder.Layers) + len(m.Decoder.Layers)
}

func moeDefault(t *testing.T) *asr.Variant {
	t.Helper()
	v := *loadDefault(t)
	l := &experts.ExpertLayout{}
	for i, m := range moe.MLPs(v.Model) {
		l.Layers = append(l.Layers, experts.LayerLayout{Name: moe.LayerName(i, len(v.Model.Encoder.Layers)), Neurons: m.FC1.Out, Experts: 16, Method: experts.MethodIdentity})
	}
	set, err := moe.New(v.Model, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Experts = set
	return &v
}

// streamRouted streams samples under rc and returns every response, or the stream's error.
func streamRouted(t *testing.T, g *grpcTest, samples []float32, rc *chorusv1.RoutingConfig) ([]*chorusv1.StreamingRecognizeResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pcmConfig()
	cfg.Routing = rc
	if err := st.Send(configMsg(cfg)); err != nil {
		t.Fatal(err)
	}
	b := clients.PCM16(samples)
	for i := 0; i < len(b); i += 3200 {
		if err := st.Send(audioMsg(b[i:min(len(b), i+3200)])); err != nil {
			break // the server ended the stream; Recv says why
		}
	}
	st.CloseSend()
	var out []*chorusv1.StreamingRecognizeResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// TestStreamRoutingRefused: routers the served model cannot honour end the stream with
// INVALID_ARGUMENT naming the problem: any expert router on the dense default model, and k
// beyond the MoE variant's 16 experts.
func TestStreamRoutingRefused(t *testing.T) {
	x := speechClip(t)[:16000]
	dense := startGRPC(t, Config{})
	_, err := streamRouted(t, dense, x, &chorusv1.RoutingConfig{Router: "mlp", Fraction: 0.25})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "dense") {
		t.Errorf("mlp on the dense model: %v", err)
	}
	g := startGRPC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe"})
	_, err = streamRouted(t, g, x, &chorusv1.RoutingConfig{Router: "oracle", Experts: 17})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("17 of 16 experts: %v", err)
	}
	_, err = streamRouted(t, g, x, &chorusv1.RoutingConfig{Router: "mlp", Experts: 4})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no learned router") {
		t.Errorf("mlp on a variant without routers: %v", err)
	}
}

// TestStreamPathway: a routed stream reports its router in served_by; with return_pathway
// its final carries one record per feed-forward layer, the encoder layers with equal token
// counts, the decoder layers too, every token using exactly k experts, the masks ⌈E/8⌉
// bytes per token; the per-router metrics appear on /metrics.
func TestStreamPathway(t *testing.T) {
	v := moeDefault(t)
	g := startGRPC(t, Config{Model: v, ModelName: "chorus-micro-moe"})
	resps, err := streamRouted(t, g, speechClip(t), &chorusv1.RoutingConfig{Router: "random", Experts: 4, Seed: 1, ReturnPathway: true})
	if err != nil {
		t.Fatal(err)
	}
	enc, layers := len(v.Model.Encoder.Layers), len(moe.MLPs(v.Model))
	finals := 0
	for _, r := range resps {
		if got := r.GetServedBy().GetRouter(); got != "random:4" {
			t.Fatalf("served_by.router %q, want random:4", got)
		}
		if len(r.GetResults()) == 0 || !r.GetResults()[0].GetIsFinal() {
			if r.GetPathway() != nil {
				t.Fatal("pathway on a response that is not a final")
			}
			continue
		}
		finals++
		p := r.GetPathway()
		if len(p.GetLayers()) != layers {
			t.Fatalf("final pathway has %d layers, want %d", len(p.GetLayers()), layers)
		}
		for i, lp := range p.GetLayers() {
			ref := p.GetLayers()[0]
			if i >= enc {
				ref = p.GetLayers()[enc]
			}
			if lp.GetExperts() != 16 || lp.GetTokens() == 0 || lp.GetTokens() != ref.GetTokens() || len(lp.GetMasks()) != int(lp.GetTokens())*2 {
				t.Fatalf("layer %d %s: %d experts, %d tokens (first of its stack %d), %d mask bytes", i, lp.GetName(), lp.GetExperts(), lp.GetTokens(), ref.GetTokens(), len(lp.GetMasks()))
			}
			for tok := range int(lp.GetTokens()) {
				m := lp.GetMasks()[2*tok : 2*tok+2]
				if n := bits.OnesCount8(m[0]) + bits.OnesCount8(m[1]); n != 4 {
					t.Fatalf("layer %s token %d used %d experts, want 4", lp.GetName(), tok, n)
				}
			}
		}
	}
	if finals == 0 {
		t.Fatal("no final result")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + g.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `chorus_ffn_seconds_total{model="chorus-micro-moe",router="random:4"}`) &&
			strings.Contains(string(body), `chorus_experts_used_ratio_sum{model="chorus-micro-moe",router="random:4"} 0.25`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("per-router metrics missing:\n%s", body)
		}
	}
}

// TestStreamHeadRouting: a stream asking for 2 of 4 encoder heads per request is served with
// that routing (served_by.router names it) and its final's pathway lists each encoder
// layer's heads after the feed-forward layers, 2 per token; heads on a dense model, or more
// heads than the model has, are INVALID_ARGUMENT.
func TestStreamHeadRouting(t *testing.T) {
	v := moeDefault(t)
	g := startGRPC(t, Config{Model: v, ModelName: "chorus-micro-moe"})
	rc := &chorusv1.RoutingConfig{Router: "dense", Heads: 2, HeadRouter: "random", Mode: chorusv1.RoutingConfig_PER_REQUEST, ReturnPathway: true}
	resps, err := streamRouted(t, g, speechClip(t), rc)
	if err != nil {
		t.Fatal(err)
	}
	ffn, enc := len(moe.MLPs(v.Model)), len(v.Model.Encoder.Layers)
	finals := 0
	for _, r := range resps {
		if got := r.GetServedBy().GetRouter(); got != "dense+heads:random:2/request" {
			t.Fatalf("served_by.router %q", got)
		}
		p := r.GetPathway()
		if p == nil {
			continue
		}
		finals++
		if len(p.GetLayers()) != ffn+enc {
			t.Fatalf("pathway has %d layers, want %d feed-forward + %d attention", len(p.GetLayers()), ffn, enc)
		}
		for _, lp := range p.GetLayers()[ffn:] {
			if !strings.HasSuffix(lp.GetName(), ".self_attn") || lp.GetExperts() != 4 {
				t.Fatalf("head layer %s with %d heads", lp.GetName(), lp.GetExperts())
			}
			for tok := range int(lp.GetTokens()) {
				if n := bits.OnesCount8(lp.GetMasks()[tok]); n != 2 {
					t.Fatalf("%s token %d kept %d heads", lp.GetName(), tok, n)
				}
			}
		}
	}
	if finals == 0 {
		t.Fatal("no final with a pathway")
	}
	g2 := startGRPC(t, Config{})
	for _, rc := range []*chorusv1.RoutingConfig{{Heads: 2, HeadRouter: "random"}} {
		if _, err := streamRouted(t, g2, speechClip(t)[:8000], rc); status.Code(err) != codes.InvalidArgument {
			t.Errorf("heads on the dense model: %v, want InvalidArgument", err)
		}
	}
	if _, err := streamRouted(t, g, speechClip(t)[:8000], &chorusv1.RoutingConfig{Heads: 5, HeadRouter: "random"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("5 of 4 heads: %v, want InvalidArgument", err)
	}
}
