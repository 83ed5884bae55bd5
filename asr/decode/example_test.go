package decode_test

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
)

// Decoding a window greedily with timestamps. A scripted runner stands in for the model: it
// prefers <|0.00|>, then " hello", " world", <|1.00|> and finally EOT.
func ExampleDecode() {
	words := []string{" hello", " world"}
	sp, v := decodetest.Layout(len(words), []string{"en"})
	m := decode.Model{Vocab: decodetest.Vocab{Words: words}, Specials: sp, TextCtx: 448, AudioCtx: 1500}
	plan := []int{sp.TimestampBegin, 0, 1, sp.TimestampBegin + 50, sp.EOT}
	r := decodetest.NewRunner(1, v, func(history []int) []float32 {
		step := min(max(len(history)-1, 0), len(plan)-1) // English-only: SOT is the one initial token
		return decodetest.Peaked(v, plan[step], 0.9)
	})
	res, err := decode.Decode(r, m, decode.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q %v\n", res[0].Text, res[0].Tokens)
	// Output: "hello world" [11 0 1 61]
}
