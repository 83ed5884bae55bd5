// Package moefy turns a dense ReLU Whisper variant into a mixture-of-experts variant
// (MoEfication, Zhang et al. 2022): it records each feed-forward block's inputs on speech
// (encoder frames, and decoder tokens by teacher-forcing the transcripts), splits each
// block's neurons into experts (balanced k-means on fc1's rows, or co-activation
// clustering), permutes the weights so each expert is contiguous, trains an MLP router per
// block to predict each expert's activation mass, measures the routers against the oracle
// on held-out tokens, and writes the variant folder (config.json with the expert layout,
// permuted weights plus router tensors, tokenizer, card.json).
package moefy

// Shapes: per block, recorded inputs X [T, C], hidden [T, N], expert mass [T, E].

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
)

// Clip is one utterance to record: 16-kHz mono samples and, for the decoder's tokens, its
// transcript ("" records the encoder only).
type Clip struct {
	Samples []float32
	Text    string
}

// Recording holds every block's recorded inputs, in layer order (whisper.MLP.Layer).
type Recording struct {
	C      int         // block width
	X      [][]float32 // per layer [T, C]
	Tokens []int       // T per layer
	Clips  int
}

// recorder is a whisper.Routing that copies each block's input and runs the dense block, so
// the inputs recorded are exactly those the model computes (the same Encode and decoder
// code paths a stream runs). Blocks already holding max tokens stop recording.
type recorder struct {
	rec *Recording
	max int
}

func (r *recorder) FFN(ctx *tensor.Ctx, m *whisper.MLP, x *tensor.T) *tensor.T {
	l := m.Layer()
	if room := r.max - r.rec.Tokens[l]; room > 0 {
		t := min(room, len(x.Data)/r.rec.C)
		r.rec.X[l] = append(r.rec.X[l], x.Data[:t*r.rec.C]...)
		r.rec.Tokens[l] += t
	}
	return m.Forward(ctx, x)
}

// Record runs v on the clips and records every block's inputs, at most maxTokens per block
// (0: no limit). Each clip's audio is encoded as a stream's window is (only its frames for
// content-window models, clipped to 30 s), and its transcript is fed to the decoder after
// the SOT sequence (English, transcribe, no timestamps) and followed by EOT, truncated to
// the text context. progress, when set, is called after each clip.
func Record(ctx context.Context, v *asr.Variant, clips []Clip, maxTokens int, progress func(done, total int)) (*Recording, error) {
	m := v.Model
	if m.Dims.NAudioState != m.Dims.NTextState {
		return nil, fmt.Errorf("moefy: encoder width %d and decoder width %d differ", m.Dims.NAudioState, m.Dims.NTextState)
	}
	layers := len(m.Encoder.Layers) + len(m.Decoder.Layers)
	rec := &Recording{C: m.Dims.NAudioState, X: make([][]float32, layers), Tokens: make([]int, layers)}
	if maxTokens <= 0 {
		maxTokens = int(^uint(0) >> 1)
	}
	r := &recorder{rec: rec, max: maxTokens}
	st := m.NewState(1)
	st.SetRouting(r)
	var sot []int
	if v.Tokenizer != nil {
		var err error
		if sot, err = v.Tokenizer.SOTSequence("en", "transcribe", false); err != nil {
			return nil, fmt.Errorf("moefy: %w", err)
		}
	}
	content := v.Chorus.EncoderWindow == asr.WindowContent
	for i, c := range clips {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		samples := c.Samples[:min(len(c.Samples), mel.NSamples)]
		st.Encode(Window(samples, m.Dims.NMels, content))
		if c.Text != "" && v.Tokenizer != nil {
			toks := append(append(slices.Clone(sot), v.Tokenizer.Encode(" "+strings.TrimSpace(c.Text))...), v.Tokenizer.Specials().EOT)
			st.AllLogits(0, toks[:min(len(toks), m.Dims.NTextCtx)])
		}
		rec.Clips++
		if progress != nil {
			progress(i+1, len(clips))
		}
	}
	return rec, nil
}

// Window is the mel window [M, F] the model encodes for samples: the audio's frames (even,
// at least 2) for a content-window model, the full 30-s window otherwise (asr's EncodeWindow).
func Window(samples []float32, nMels int, content bool) *tensor.T {
	spec, err := mel.LogMel(samples, nMels, mel.NSamples)
	if err != nil {
		panic(err) // only for a bad mel count, which the model's dims rule out
	}
	n := mel.NFrames
	if content {
		c := spec.NFrames - mel.NFrames
		n = max(2, c+c%2)
	}
	buf := make([]float32, 0, nMels*n)
	for b := range nMels {
		buf = append(buf, spec.Data[b*spec.NFrames:b*spec.NFrames+n]...)
	}
	return tensor.FromData(buf, nMels, n)
}

// Options tune Build.
type Options struct {
	Experts      int    // E per block
	Method       string // experts.MethodKMeans or experts.MethodCoActivation
	RouterHidden int    // H of each router
	Epochs       int    // router training passes [40]
	Seed         uint64
	// K is the top-k at which router recall is reported [E/4].
	K int
	// CoActTokens bounds the tokens co-activation clustering counts over [8000] (the count
	// is a T×N by N×N product).
	CoActTokens int
	// Keep, when set, is the expert layout of the MoE variant being rebuilt: its blocks are
	// already split (weights stored expert by expert), so each keeps its expert count and
	// stored order and only the routers are trained afresh — on the activations of the
	// variant as it now is, e.g. after a fine-tune under its old routers changed the experts.
	// Experts and Method are then ignored.
	Keep *experts.ExpertLayout
}

// LayerReport is one block's outcome: how well its router finds the oracle's experts on
// held-out tokens.
type LayerReport struct {
	Name         string  `json:"name"`
	Tokens       int     `json:"tokens"`      // recorded (training + held out)
	HeldOut      int     `json:"held_out"`    // tokens the recall is measured on
	K            int     `json:"k"`           // top-k of the recall
	Recall       float64 `json:"recall"`      // MLP top-k ∩ oracle top-k, over K
	RandomRecall float64 `json:"random"`      // the same for the random router (≈ K/E)
	MassShare    float64 `json:"mass_share"`  // activation mass in the MLP's experts
	OracleShare  float64 `json:"oracle_mass"` // activation mass in the oracle's experts
	Loss         float64 `json:"loss"`        // last epoch's router loss
}

// Result is a MoE-fied model: the layout (with permutations and router declarations), the
// permuted blocks and the trained routers. A block pruned to no units has a nil FFN and
// router, an empty layout entry and no report.
type Result struct {
	Layout  *experts.ExpertLayout
	FFNs    []*experts.FFN
	Routers *experts.MLP
	Reports []LayerReport
	// HeadRouters are the encoder's learned head routers (BuildHeads; nil: none), declared in
	// Layout.Heads.
	HeadRouters *experts.MLP
}

// routerTensors are the tensors of every router res declares: the feed-forward blocks' and,
// when trained, the encoder's head routers.
func (res *Result) routerTensors() (map[string]*tensor.T, error) {
	return experts.AllRouterTensors(res.Layout, res.Routers, res.HeadRouters)
}

// Build splits every block of v (a ReLU model) into o.Experts experts by o.Method on the
// recording and trains its router; the last tenth of each block's tokens (the last clips)
// is held out for the recall figures. progress, when set, is called after each block.
func Build(v *asr.Variant, rec *Recording, o Options, progress func(done, total int)) (*Result, error) {
	m := v.Model
	if a := m.Dims.Activation; a != "relu" {
		return nil, fmt.Errorf("moefy: the model uses %q; MoEfication needs a ReLU model (ReLU-fy it first)", a)
	}
	mlps := moe.MLPs(m)
	if l := o.Keep; l != nil {
		if len(l.Layers) != len(mlps) {
			return nil, fmt.Errorf("moefy: the kept layout has %d blocks, the model %d", len(l.Layers), len(mlps))
		}
		o.Method, o.Experts = l.Split()
		for _, ly := range l.Layers {
			if ly.Method == experts.MethodEmpty {
				continue
			}
			if ly.Method == experts.MethodUpcycled {
				return nil, fmt.Errorf("moefy: %s is a gated (upcycled) block: its router is the model's gate", ly.Name)
			}
			if ly.Experts != o.Experts {
				return nil, fmt.Errorf("moefy: the kept layout has %d experts in %s and %d in the first block; routers need one count", ly.Experts, ly.Name, o.Experts)
			}
		}
	}
	if o.Experts <= 0 || o.RouterHidden <= 0 {
		return nil, fmt.Errorf("moefy: experts %d and router hidden %d must be positive", o.Experts, o.RouterHidden)
	}
	if o.Keep == nil && o.Method != experts.MethodKMeans && o.Method != experts.MethodCoActivation {
		return nil, fmt.Errorf("moefy: method %q: want %s or %s", o.Method, experts.MethodKMeans, experts.MethodCoActivation)
	}
	if o.K <= 0 {
		o.K = max(1, o.Experts/4)
	}
	if o.CoActTokens <= 0 {
		o.CoActTokens = 8000
	}
	enc := len(m.Encoder.Layers)
	res := &Result{Layout: &experts.ExpertLayout{}, Routers: &experts.MLP{}}
	ctx := tensor.NewCtx()
	for i, mlp := range mlps {
		name := moe.LayerName(i, enc)
		if mlp.FC1.Out == 0 {
			// A block pruned to no units (CoFi removed its whole FFN): nothing to split or route.
			res.FFNs = append(res.FFNs, nil)
			res.Routers.Layers = append(res.Routers.Layers, nil)
			res.Layout.Layers = append(res.Layout.Layers, experts.LayerLayout{Name: name, Method: experts.MethodEmpty})
			if progress != nil {
				progress(i+1, len(mlps))
			}
			continue
		}
		if o.Keep != nil && o.Keep.Layers[i].Method == experts.MethodEmpty {
			return nil, fmt.Errorf("moefy: the kept layout says %s is empty; the model's block has %d units", name, mlp.FC1.Out)
		}
		t, c := rec.Tokens[i], rec.C
		held := t / 10
		train := t - held
		if train < 16 || held < 1 {
			return nil, fmt.Errorf("moefy: %s has %d recorded tokens; record more audio", name, t)
		}
		f0, err := experts.FromLinear(&mlp.FC1, &mlp.FC2, 1)
		if err != nil {
			return nil, fmt.Errorf("moefy: %s: %w", name, err)
		}
		xTrain := tensor.FromData(rec.X[i][:train*c], train, c)
		var perm []int
		if o.Keep != nil {
			// The kept split: stored expert by expert (identity on the stored weights), or, in
			// an overlay's layout, in the base order with the permutation still to apply.
			perm = make([]int, f0.N)
			for j := range perm {
				perm[j] = j
			}
			if p := o.Keep.Layers[i].Perm; o.Keep.Unpermuted && p != nil {
				perm = p
			}
		} else if o.Method == experts.MethodKMeans {
			perm, err = experts.PartitionKMeans(f0.W1, f0.N, f0.C, o.Experts, o.Seed+uint64(i))
		} else {
			n := min(train, o.CoActTokens)
			h := f0.Hidden(ctx, tensor.FromData(rec.X[i][:n*c], n, c))
			perm, err = experts.PartitionCoActivation(h.Data, n, f0.N, o.Experts, o.Seed+uint64(i))
		}
		if err != nil {
			return nil, fmt.Errorf("moefy: %s: %w", name, err)
		}
		f, err := f0.Permute(perm, o.Experts)
		if err != nil {
			return nil, fmt.Errorf("moefy: %s: %w", name, err)
		}
		f.Layer = i
		y := f.ExpertMass(ctx, xTrain)
		router := experts.NewMLPLayer(c, o.RouterHidden, o.Experts, o.Seed+uint64(i))
		losses, err := router.Train(xTrain.Data, y.Data, train, experts.TrainOptions{Epochs: o.Epochs, Seed: o.Seed + uint64(i)})
		if err != nil {
			return nil, fmt.Errorf("moefy: %s: %w", name, err)
		}
		rep := evaluate(ctx, f, router, tensor.FromData(rec.X[i][train*c:t*c], held, c), o.K, o.Seed)
		rep.Name, rep.Tokens, rep.Loss = name, t, losses[len(losses)-1]
		res.Reports = append(res.Reports, rep)
		res.FFNs = append(res.FFNs, f)
		res.Routers.Layers = append(res.Routers.Layers, router)
		layoutPerm := perm
		if o.Keep != nil {
			// The saved weights are in the kept layout's permuted order either way.
			layoutPerm = o.Keep.Layers[i].Perm
		}
		res.Layout.Layers = append(res.Layout.Layers, experts.LayerLayout{
			Name: name, Neurons: f.N, Experts: o.Experts, Method: o.Method, Perm: layoutPerm,
			Router: &experts.RouterDesc{Kind: "mlp", Hidden: o.RouterHidden, Scale: router.Scale, Prefix: name + ".router"},
		})
		ctx.Reset()
		if progress != nil {
			progress(i+1, len(mlps))
		}
	}
	if err := res.Layout.Validate(); err != nil {
		return nil, err
	}
	return res, nil
}

// evaluate measures router against the oracle top-k of block f on held-out inputs x.
func evaluate(ctx *tensor.Ctx, f *experts.FFN, router *experts.MLPLayer, x *tensor.T, k int, seed uint64) LayerReport {
	one := func(s experts.Scorer) experts.Selection {
		tk, err := experts.NewTopK(s, k, experts.PerToken, []int{f.E})
		if err != nil {
			panic(err) // k is checked against E by the caller's layout
		}
		return tk.Select(ctx, 0, x)
	}
	oracle := one(experts.Oracle{FFNs: []*experts.FFN{f}})
	mlp := one(&experts.MLP{Layers: []*experts.MLPLayer{router}})
	rnd := one(experts.Random{Seed: seed, E: []int{f.E}})
	mass := f.ExpertMass(ctx, x)
	return LayerReport{HeldOut: x.Shape[0], K: k, Recall: recall(mlp, oracle), RandomRecall: recall(rnd, oracle),
		MassShare: massShare(mlp, mass.Data), OracleShare: massShare(oracle, mass.Data)}
}

// recall is the mean over tokens of |got ∩ want| / K.
func recall(got, want experts.Selection) float64 {
	var hit int
	for i := range got.T() {
		for _, id := range got.Token(i) {
			if slices.Contains(want.Token(i), id) {
				hit++
			}
		}
	}
	return float64(hit) / float64(max(1, len(got.IDs)))
}

// massShare is the mean over tokens of the share of activation mass [T, E] in the selected
// experts (1 for a token with no mass at all).
func massShare(sel experts.Selection, mass []float32) float64 {
	var sum float64
	e := sel.E
	for i := range sel.T() {
		var in, all float64
		for _, v := range mass[i*e : (i+1)*e] {
			all += float64(v)
		}
		for _, id := range sel.Token(i) {
			in += float64(mass[i*e+int(id)])
		}
		if all > 0 {
			sum += in / all
		} else {
			sum++
		}
	}
	return sum / float64(max(1, sel.T()))
}
