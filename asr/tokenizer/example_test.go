package tokenizer_test

import (
	"fmt"
	"slices"

	"github.com/chorus-asr/chorus/asr/tokenizer"
)

// Train a tiny English-only vocabulary, then build a decoder prompt and decode a transcript.
func ExampleTrain() {
	texts := []string{
		"the cat sat on the mat", "the dog sat on the log", "the cat and the dog",
		"then the cat ran", "the end of the day",
	}
	tok, err := tokenizer.Train(slices.Values(texts), 270, []string{"en"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := tok.Encode("the cat sat")
	var tokens []string
	for _, id := range ids {
		tokens = append(tokens, tok.Token(id))
	}
	fmt.Printf("%q\n", tokens)

	sp := tok.Specials()
	prompt, _ := sp.SOTSequence("", "", false) // English-only: <|startoftranscript|><|notimestamps|>
	out := slices.Concat(prompt, ids, []int{sp.EOT})
	fmt.Println(tok.Decode(out))
	// Output:
	// ["the" "Ġcat" "Ġsat"]
	// <|startoftranscript|><|notimestamps|>the cat sat<|endoftext|>
}
