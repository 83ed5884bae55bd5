package mel_test

import (
	"fmt"
	"math"

	"github.com/chorus-asr/chorus/asr/mel"
)

// Whisper30s turns up to 30 s of 16 kHz audio into the encoder's 3000-frame input.
func ExampleWhisper30s() {
	samples := make([]float32, 2*mel.SampleRate) // 2 s of a 440 Hz tone
	for i := range samples {
		samples[i] = float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/mel.SampleRate))
	}
	s, err := mel.Whisper30s(samples, 80)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.NMels, s.NFrames)
	fmt.Println(s.At(0, 250) == 0, s.At(0, 100) != 0) // frames past the 2 s of audio are zero
	// Output:
	// 80 3000
	// true true
}
