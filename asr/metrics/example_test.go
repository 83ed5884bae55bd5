package metrics_test

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr/metrics"
)

func ExampleNormalize() {
	fmt.Println(metrics.Normalize(`"Don't stop," said the well-known Mr. Smith.`))
	// Output: don't stop said the well known mr smith
}

func ExampleWER() {
	refs := []string{"The cat sat on the mat.", "Hello world"}
	hyps := []string{"the cat sat on a mat", "hello, world!"}
	errs, words := metrics.WER(refs, hyps)
	fmt.Printf("WER %d/%d = %.3f\n", errs, words, float64(errs)/float64(words))
	// Output: WER 1/8 = 0.125
}
