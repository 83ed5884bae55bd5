package transcribe_test

import (
	"os"

	"github.com/chorus-asr/chorus/asr/transcribe"
)

func ExampleWriteSRT() {
	r := &transcribe.Result{Language: "en", Segments: []transcribe.Segment{
		{ID: 0, Start: 0, End: 2.48, Text: " And so, my fellow Americans,"},
		{ID: 1, Start: 2.48, End: 3725.5, Text: " ask not what your country can do for you."},
	}}
	_ = transcribe.WriteSRT(os.Stdout, r)
	// Output:
	// 1
	// 00:00:00,000 --> 00:00:02,480
	// And so, my fellow Americans,
	//
	// 2
	// 00:00:02,480 --> 01:02:05,500
	// ask not what your country can do for you.
}
