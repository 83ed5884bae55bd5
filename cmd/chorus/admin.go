package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// adminFlags are the connection settings of the admin commands.
type adminFlags struct {
	addr, tokenFile string
	tls             bool
}

func (f *adminFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.addr, "addr", "localhost:50051", "server gRPC address")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "admin-token-file", "", "file holding the admin bearer token (default: $CHORUS_ADMIN_TOKEN)")
	cmd.PersistentFlags().BoolVar(&f.tls, "tls", false, "connect with TLS")
}

func (f *adminFlags) dial() (*grpc.ClientConn, error) {
	tok := os.Getenv("CHORUS_ADMIN_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("no admin token: give --admin-token-file or set CHORUS_ADMIN_TOKEN")
	}
	return clients.Dial(f.addr, clients.DialOptions{TLS: f.tls, Token: tok})
}

// printProto writes m as indented JSON with the proto field names.
func printProto(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func adminCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{Use: "admin", Short: "Manage a running server: its models (load, promote, unload, watch) and live A/B experiments"}
	f.add(cmd)
	models := &cobra.Command{Use: "models", Short: "The registry of model variants (chorus.v1.Models)"}
	call := func(fn func(ctx context.Context, c chorusv1.ModelsClient) (proto.Message, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cc, err := f.dial()
			if err != nil {
				return err
			}
			defer cc.Close()
			m, err := fn(cmd.Context(), chorusv1.NewModelsClient(cc))
			if err != nil {
				return err
			}
			return printProto(m)
		}
	}
	var model string
	var promote bool
	list := &cobra.Command{Use: "list", Short: "List the variants and their states", Args: cobra.NoArgs,
		RunE: call(func(ctx context.Context, c chorusv1.ModelsClient) (proto.Message, error) {
			return c.List(ctx, &chorusv1.ListModelsRequest{})
		})}
	load := &cobra.Command{Use: "load VARIANT", Short: "Load a variant beside the live one (validated and warmed); --promote makes it live", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(func(ctx context.Context, c chorusv1.ModelsClient) (proto.Message, error) {
				return c.Load(ctx, &chorusv1.LoadModelRequest{Variant: args[0], Model: model, Promote: promote})
			})(cmd, args)
		}}
	load.Flags().StringVar(&model, "model", "", "served model name to load it under (default: its card's, else the default model)")
	load.Flags().BoolVar(&promote, "promote", false, "promote it once loaded")
	promoteCmd := &cobra.Command{Use: "promote MODEL VARIANT", Short: "Make a loaded variant live; the previous one drains", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(func(ctx context.Context, c chorusv1.ModelsClient) (proto.Message, error) {
				return c.Promote(ctx, &chorusv1.PromoteModelRequest{Model: args[0], Variant: args[1]})
			})(cmd, args)
		}}
	unload := &cobra.Command{Use: "unload MODEL VARIANT", Short: "Retire a variant that is not live", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(func(ctx context.Context, c chorusv1.ModelsClient) (proto.Message, error) {
				return c.Unload(ctx, &chorusv1.UnloadModelRequest{Model: args[0], Variant: args[1]})
			})(cmd, args)
		}}
	watch := &cobra.Command{Use: "watch", Short: "Print every variant's state, then every change (Ctrl-C ends)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cc, err := f.dial()
			if err != nil {
				return err
			}
			defer cc.Close()
			st, err := chorusv1.NewModelsClient(cc).Watch(cmd.Context(), &chorusv1.WatchModelsRequest{})
			if err != nil {
				return err
			}
			for {
				ev, err := st.Recv()
				if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				m := ev.GetModel()
				fmt.Printf("%s %-20s %-24s %-9s %s\n", ev.GetTime().AsTime().Format("15:04:05.000"), m.GetModel(), m.GetVariant(), m.GetState(), ev.GetMessage())
			}
		}}
	models.AddCommand(list, load, promoteCmd, unload, watch)

	exp := &cobra.Command{Use: "experiment", Short: "The live A/B experiment between routers and variants (chorus.v1.Experiments)"}
	ecall := func(fn func(ctx context.Context, c chorusv1.ExperimentsClient) (proto.Message, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cc, err := f.dial()
			if err != nil {
				return err
			}
			defer cc.Close()
			m, err := fn(cmd.Context(), chorusv1.NewExperimentsClient(cc))
			if err != nil {
				return err
			}
			return printProto(m)
		}
	}
	var (
		name, arms, weights, variant, armModel string
		shadow                                 float64
		seed                                   uint64
	)
	set := &cobra.Command{Use: "set --name N --arms dense,mlp:0.25,random:0.25 [--weights 2,1,1]", Short: "Start (or replace) the live experiment", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := experimentSpec(name, arms, weights, armModel, variant, shadow, seed)
			if err != nil {
				return err
			}
			return ecall(func(ctx context.Context, c chorusv1.ExperimentsClient) (proto.Message, error) {
				return c.Set(ctx, spec)
			})(cmd, args)
		}}
	sf := set.Flags()
	sf.StringVar(&name, "name", "", "experiment name (required)")
	sf.StringVar(&arms, "arms", "", "arms as chorus ab writes them: ROUTER[:AMOUNT][/request], comma-separated (required)")
	sf.StringVar(&weights, "weights", "", "relative weights of the arms, comma-separated (default: equal)")
	sf.StringVar(&armModel, "model", "", "served model every arm runs (default: the stream's own)")
	sf.StringVar(&variant, "variant", "", "variant every arm pins (default: the live one)")
	sf.Float64Var(&shadow, "shadow", 0, "share of each non-dense arm's streams also decoded densely, for the arm's WER against dense")
	sf.Uint64Var(&seed, "seed", 0, "seed of the assignment (0: from the clock)")
	get := &cobra.Command{Use: "get", Short: "Show the live experiment and each arm's figures", Args: cobra.NoArgs,
		RunE: ecall(func(ctx context.Context, c chorusv1.ExperimentsClient) (proto.Message, error) {
			return c.Get(ctx, &chorusv1.GetExperimentRequest{})
		})}
	stop := &cobra.Command{Use: "stop", Short: "End the live experiment and show its final figures", Args: cobra.NoArgs,
		RunE: ecall(func(ctx context.Context, c chorusv1.ExperimentsClient) (proto.Message, error) {
			return c.Stop(ctx, &chorusv1.StopExperimentRequest{})
		})}
	exp.AddCommand(set, get, stop)
	cmd.AddCommand(models, exp)
	return cmd
}

// experimentSpec builds an Experiment from the set command's flags; the server validates
// the arms against its models.
func experimentSpec(name, arms, weights, model, variant string, shadow float64, seed uint64) (*chorusv1.Experiment, error) {
	if name == "" || arms == "" {
		return nil, errors.New("--name and --arms are required")
	}
	parsed, err := parseArms(arms)
	if err != nil {
		return nil, err
	}
	ws := make([]float64, len(parsed))
	for i := range ws {
		ws[i] = 1
	}
	if weights != "" {
		parts := strings.Split(weights, ",")
		if len(parts) != len(parsed) {
			return nil, fmt.Errorf("--weights has %d values for %d arms", len(parts), len(parsed))
		}
		for i, p := range parts {
			w, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				return nil, fmt.Errorf("--weights %q: %w", p, err)
			}
			ws[i] = w
		}
	}
	spec := &chorusv1.Experiment{Name: name, ShadowFraction: shadow, Seed: seed}
	for i, a := range parsed {
		c := a.Choice
		if c.MinTokens != 0 || c.EncoderOnly {
			// The wire RoutingConfig has neither; a variant's default routing can (chorus moe
			// --default-router), and an arm naming no router runs it.
			return nil, fmt.Errorf("arm %q: /minN and /enc are for chorus ab and variant defaults; a live experiment's routing has no such field", a.Name)
		}
		rc := &chorusv1.RoutingConfig{Router: c.Router, Fraction: float32(c.Fraction), Experts: int32(c.K)}
		if c.PerRequest {
			rc.Mode = chorusv1.RoutingConfig_PER_REQUEST
		}
		spec.Arms = append(spec.Arms, &chorusv1.Arm{Name: a.Name, Model: model, Variant: variant, Routing: rc, Weight: ws[i]})
	}
	return spec, nil
}
