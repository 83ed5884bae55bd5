package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/chorus-asr/chorus/asr"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/moefy"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func moeCmd() *cobra.Command {
	var (
		model, out, method, manifest string
		overlay, defaultRouter       string
		headHidden                   int
		defaultMinTokens             int
		nExperts, hidden, limit      int
		maxTokens, epochs            int
		seed                         uint64
		f16, compress, keepSplit     bool
	)
	cmd := &cobra.Command{
		Use:   "moe --model M --out DIR [--manifest F | files…]",
		Short: "MoE-fy a ReLU model: record FFN activations on speech, split each FFN into experts, train MLP routers, write the variant",
		RunE: func(cmd *cobra.Command, files []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if (manifest == "") == (len(files) == 0) {
				return fmt.Errorf("give --manifest or audio files (not both)")
			}
			var routing *asr.RoutingDefault
			if defaultRouter != "" {
				arms, err := parseArms(defaultRouter)
				if err != nil || len(arms) != 1 {
					return fmt.Errorf("--default-router %q: want one ROUTER:AMOUNT[/minN][/enc][/request] (%v)", defaultRouter, err)
				}
				c := arms[0].Choice
				if c.MinTokens != 0 && defaultMinTokens != 0 {
					return fmt.Errorf("--default-router %q names /min%d: leave out --default-min-tokens", defaultRouter, c.MinTokens)
				}
				routing = &asr.RoutingDefault{Router: c.Router, Fraction: c.Fraction, K: c.K, PerRequest: c.PerRequest,
					MinTokens: max(c.MinTokens, defaultMinTokens), EncoderOnly: c.EncoderOnly}
			} else if defaultMinTokens != 0 {
				return fmt.Errorf("--default-min-tokens needs --default-router")
			}
			if defaultMinTokens < 0 {
				return fmt.Errorf("--default-min-tokens %d is negative", defaultMinTokens)
			}
			m := map[string]string{"coact": experts.MethodCoActivation, "coactivation": experts.MethodCoActivation, "kmeans": experts.MethodKMeans}[method]
			if m == "" {
				return fmt.Errorf("--method %q: want coact or kmeans", method)
			}
			v, err := openModelOrDefault(model, false)
			if err != nil {
				return err
			}
			// A kept split is checked before any audio is recorded.
			var keep *experts.ExpertLayout
			if keepSplit {
				if v.Chorus.Experts == nil {
					return fmt.Errorf("--keep-split: %s is not a mixture-of-experts variant (no expert layout)", model)
				}
				if keep, err = experts.ParseLayout(v.Chorus.Experts); err != nil {
					return fmt.Errorf("--keep-split: %w", err)
				}
				if overlay != "" {
					return fmt.Errorf("--keep-split writes a whole variant; leave out --overlay")
				}
			}
			clips, err := loadClips(manifest, limit, files)
			if err != nil {
				return err
			}
			start := time.Now()
			bar := newBar("record")
			rec, err := moefy.Record(cmd.Context(), v, clips, maxTokens, bar)
			if err != nil {
				return err
			}
			o := moefy.Options{Experts: nExperts, Method: m, RouterHidden: hidden, Epochs: epochs, Seed: seed, Keep: keep}
			res, err := moefy.Build(v, rec, o, newBar("split+route"))
			if err != nil {
				return err
			}
			var heads []moefy.HeadReport
			if headHidden > 0 {
				heads, err = moefy.BuildHeads(cmd.Context(), v, clips, res, headHidden, epochs, maxTokens, 2, seed)
				if errors.Is(err, moefy.ErrFewHeads) {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %v; writing the variant without head routers\n", err)
				} else if err != nil {
					return err
				}
			}
			parent := model
			if parent == "" {
				parent = defaultmodel.Name
			}
			splitMethod, splitExperts := res.Layout.Split()
			card := map[string]any{
				"name": filepath.Base(filepath.Clean(out)), "parent": parent, "kind": "moe",
				"recipe": map[string]any{"method": splitMethod, "experts": splitExperts, "router_hidden": hidden, "epochs": epochs,
					"seed": seed, "max_tokens": maxTokens, "clips": len(clips), "manifest": manifest, "keep_split": keepSplit},
				"data":    map[string]any{"clips": rec.Clips, "tokens_per_layer": rec.Tokens},
				"routers": res.Reports, "head_routers": heads,
				"wall_s": time.Since(start).Seconds(),
			}
			if err := moefy.Save(out, v, res, card, moefy.SaveOptions{F16: f16, Compress: compress, Routing: routing}); err != nil {
				return err
			}
			if overlay != "" {
				base := defaultmodel.FS()
				if model != "" && model != defaultmodel.Name {
					base = os.DirFS(model)
				}
				card["name"] = filepath.Base(filepath.Clean(overlay))
				card["kind"] = "moe-overlay"
				if err := moefy.SaveOverlay(overlay, base, res, card); err != nil {
					return err
				}
			}
			for _, h := range heads {
				fmt.Printf("%-34s heads top-%d recall %.3f (random %.3f) on %d held-out tokens\n", h.Name, h.K, h.Recall, h.RandomRecall, h.HeldOut)
			}
			fmt.Printf("%-24s %7s %6s %7s %7s %7s\n", "layer", "tokens", "k", "recall", "random", "mass")
			for _, r := range res.Reports {
				fmt.Printf("%-24s %7d %6d %7.3f %7.3f %7.3f\n", r.Name, r.Tokens, r.K, r.Recall, r.RandomRecall, r.MassShare)
			}
			b, _ := json.Marshal(map[string]any{"out": out, "wall_s": time.Since(start).Seconds()})
			fmt.Println(string(b))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "dense ReLU model folder (default: the embedded default model)")
	f.StringVar(&out, "out", "", "variant folder to write")
	f.BoolVar(&keepSplit, "keep-split", false, "--model is a MoE variant: keep its experts as split and stored, train only new routers on its activations (after a fine-tune under the old ones); --experts and --method are ignored")
	f.IntVar(&headHidden, "head-router-hidden", 32, "hidden units of each encoder layer's learned head router (0: none)")
	f.StringVar(&defaultRouter, "default-router", "", "routing the variant runs when a request names no router, as a chorus ab arm (mlp:0.25, mlp:0.25/enc for a dense decoder; default: dense)")
	f.IntVar(&defaultMinTokens, "default-min-tokens", 0, "with --default-router: calls of fewer tokens run every expert (2: decoding steps dense, where the router costs more than it saves)")
	f.StringVar(&overlay, "overlay", "", "also write the variant as an overlay over the base model's folder (layout + routers only; what asr/defaultmodel embeds as chorus-micro-moe)")
	f.IntVar(&nExperts, "experts", 16, "experts per feed-forward layer")
	f.StringVar(&method, "method", "coact", "partitioning: coact (co-activation clustering) or kmeans (fc1 weight rows)")
	f.IntVar(&hidden, "router-hidden", 64, "hidden units of each MLP router")
	f.StringVar(&manifest, "manifest", "", "JSON-lines manifest whose audio and transcripts are recorded")
	f.IntVar(&limit, "limit", 300, "first N utterances of the manifest (0: all)")
	f.IntVar(&maxTokens, "max-tokens", 20000, "recorded tokens per layer at most")
	f.IntVar(&epochs, "epochs", 40, "router training epochs")
	f.Uint64Var(&seed, "seed", 1, "seed of the partitioning and router training")
	f.BoolVar(&f16, "f16", true, "store the model's matrices in half precision (routers stay float32)")
	f.BoolVar(&compress, "compress", true, "write model.safetensors.zst")
	return cmd
}

// newBar returns a progress callback drawing a bar on stderr when it is a terminal, and
// otherwise (a log file, a pipe) writing a line at each tenth of the work, so logs do not
// fill with redrawn bars.
func newBar(label string) func(done, total int) {
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	return func(done, total int) {
		const width = 30
		if !tty {
			if tenth := 10 * done / max(1, total); done == total || tenth > 10*(done-1)/max(1, total) {
				fmt.Fprintf(os.Stderr, "%s %d/%d\n", label, done, total)
			}
			return
		}
		n := width * done / max(1, total)
		fmt.Fprintf(os.Stderr, "\r%-12s [%-*s] %d/%d", label, width, strings.Repeat("#", n), done, total)
		if done == total {
			fmt.Fprintln(os.Stderr)
		}
	}
}

// loadClips reads the first limit utterances (0: all) of a manifest, with their transcripts,
// or the given audio files without.
func loadClips(manifest string, limit int, files []string) ([]moefy.Clip, error) {
	var clips []moefy.Clip
	if manifest != "" {
		man, err := data.ReadManifest(manifest, data.ReadOptions{Report: func(e *data.LineError) { fmt.Fprintln(os.Stderr, e) }})
		if err != nil {
			return nil, err
		}
		for _, e := range man.Entries {
			if limit > 0 && len(clips) == limit {
				break
			}
			x, err := audio.Load16kMono(e.Path(man.Dir))
			if err != nil {
				fmt.Fprintf(os.Stderr, "chorus: %s: %v\n", e.AudioFilepath, err)
				continue
			}
			clips = append(clips, moefy.Clip{Samples: x, Text: e.Text})
		}
		return clips, nil
	}
	for _, f := range files {
		x, err := audio.Load16kMono(f)
		if err != nil {
			return nil, err
		}
		clips = append(clips, moefy.Clip{Samples: x})
	}
	return clips, nil
}
