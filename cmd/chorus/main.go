// Command chorus is the one binary of the chorus speech-recognition server: serve, transcribe,
// train, eval, models and bench. It parses flags and calls into the packages; it holds no
// logic of its own.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "chorus",
		Short:         "Streaming speech recognition with expert-routed Whisper models",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuprofile, matmul string
	root.PersistentFlags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	root.PersistentFlags().StringVar(&matmul, "matmul", "f32", "precision of large matrix products: f32 (Whisper's numerics), bf16 (operands rounded to bfloat16, float32 sums, on AMX tiles or with AVX512-BF16; 2x (Zen 4) to 6x (AMX) faster products: training, or faster encoding at a small accuracy cost; a served variant whose card pins a golden transcript may then fail its check) or auto (bf16 where it is faster: AMX, or AVX512-BF16 on AMD)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := setMatmul(matmul); err != nil {
			return err
		}
		if cpuprofile == "" {
			return nil
		}
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) { pprof.StopCPUProfile() }
	root.AddCommand(transcribeCmd(), serveCmd(), streamCmd(), micCmd(), pathwaysCmd(), adminCmd(), pruneCmd(), modelsCmd(), benchCmd(), dataCmd(), trainCmd(), evalCmd(), moeCmd(), abCmd(), lmCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "chorus:", err)
		os.Exit(1)
	}
}
