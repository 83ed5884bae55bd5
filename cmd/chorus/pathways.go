package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/training/plot"
	"github.com/klauspost/compress/zstd"
	"github.com/spf13/cobra"
)

func pathwaysCmd() *cobra.Command {
	var (
		out, coact string
		filters    []string
	)
	cmd := &cobra.Command{
		Use:   "pathways FILE...",
		Short: "Summarise exported activation pathways (chorus serve --pathway-log) and draw expert-use heatmaps",
		Long: `Read activation pathways exported by chorus serve --pathway-log (pathways-*.jsonl.zst, or
plain .jsonl), optionally only those whose tags match --filter key=value (model, variant,
router, experiment, arm), and print per layer: tokens, entropy of the expert load in bits
(log2 E when even) and the least and most used experts. --out draws the layers × experts
utilisation as a PNG heatmap; --coactivation LAYER draws that layer's experts × experts
co-activation.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			want := map[string]string{}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return fmt.Errorf("--filter %q: want key=value", f)
				}
				want[k] = v
			}
			var agg experts.Aggregate
			for _, name := range files {
				ps, err := readPathways(name)
				if err != nil {
					return err
				}
				for _, p := range ps {
					if !tagsMatch(p.Tags, want) {
						continue
					}
					if err := agg.Add(p); err != nil {
						return fmt.Errorf("%s: request %s: %w", name, p.Request, err)
					}
				}
			}
			if agg.Requests == 0 {
				return fmt.Errorf("no pathways matched in %d files", len(files))
			}
			fmt.Printf("%d pathways\n%-28s %8s %8s %10s %10s\n", agg.Requests, "layer", "tokens", "entropy", "min util", "max util")
			var rows [][]float64
			var ylabels []string
			for i := range agg.Layers {
				l := &agg.Layers[i]
				if l.E == 0 {
					continue
				}
				u := l.Utilisation()
				lo, hi := u[0], u[0]
				for _, v := range u {
					lo, hi = min(lo, v), max(hi, v)
				}
				fmt.Printf("%-28s %8d %8.3f %10.3f %10.3f\n", l.Name, l.Tokens, l.Entropy(), lo, hi)
				if len(rows) > 0 && len(u) != len(rows[0]) {
					continue // a heatmap needs one expert count; layers that differ are listed only
				}
				rows = append(rows, u)
				ylabels = append(ylabels, l.Name)
			}
			if out != "" {
				if err := plot.Heatmap(out, fmt.Sprintf("expert utilisation, %d pathways", agg.Requests), rows, nil, ylabels); err != nil {
					return err
				}
				fmt.Println("wrote", out)
			}
			if coact != "" {
				for i := range agg.Layers {
					l := &agg.Layers[i]
					if l.Name != coact {
						continue
					}
					c := l.CoActivation()
					grid := make([][]float64, l.E)
					for r := range grid {
						grid[r] = c[r*l.E : (r+1)*l.E]
					}
					path := strings.TrimSuffix(out, ".png")
					if path == "" {
						path = "pathways"
					}
					path += "-coactivation-" + strings.ReplaceAll(coact, "/", "_") + ".png"
					if err := plot.Heatmap(path, "co-activation, "+coact, grid, nil, nil); err != nil {
						return err
					}
					fmt.Println("wrote", path)
					return nil
				}
				return fmt.Errorf("--coactivation %q: no such layer", coact)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "write the layers × experts utilisation heatmap to this PNG")
	fl.StringVar(&coact, "coactivation", "", "also draw this layer's co-activation matrix (layer name as printed)")
	fl.StringSliceVar(&filters, "filter", nil, "only pathways whose tag key equals value (key=value; repeatable)")
	return cmd
}

// readPathways reads one export file, zstd-compressed when its name ends in .zst.
func readPathways(name string) ([]*experts.Pathway, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(name, ".zst") {
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	ps, err := experts.ReadJSONL(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ps, nil
}

func tagsMatch(tags, want map[string]string) bool {
	for k, v := range want {
		if tags[k] != v {
			return false
		}
	}
	return true
}
