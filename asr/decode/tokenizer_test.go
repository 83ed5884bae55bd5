package decode_test

import (
	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/tokenizer"
)

// The chorus tokenizer plugs into decode without an adapter: its Specials convert (the field
// lists must stay identical) and it is a Vocab that lists its own non-speech tokens.
var (
	_                                      = decode.Specials(tokenizer.Specials{})
	_ decode.Vocab                         = (*tokenizer.Tokenizer)(nil)
	_ interface{ NonSpeechTokens() []int } = (*tokenizer.Tokenizer)(nil)
)
