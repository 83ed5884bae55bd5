package audio_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/chorus-asr/chorus/asr/audio"
)

// A 44.1 kHz stereo clip, written as WAV and read back as Whisper input.
func Example() {
	const rate = 44100
	stereo := make([]float32, 2*rate/10) // 100 ms, interleaved L R
	for i := range rate / 10 {
		v := float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/rate))
		stereo[2*i], stereo[2*i+1] = v, v
	}
	var file bytes.Buffer
	if err := audio.WriteWAV(&file, stereo, rate, 2, audio.PCM16); err != nil {
		panic(err)
	}
	pcm, err := audio.Decode16kMono(&file, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(pcm), "samples at", audio.WhisperRate, "Hz")
	// Output: 1600 samples at 16000 Hz
}

// Streamed LINEAR16 chunks at 48 kHz, resampled as they arrive.
func ExampleResampler() {
	r, err := audio.NewResampler(48000, audio.WhisperRate)
	if err != nil {
		panic(err)
	}
	chunk := make([]byte, 2*960) // 20 ms of 48 kHz PCM16
	var got []float32
	for range 50 { // 1 s
		got = append(got, r.Process(audio.FromPCM16(chunk))...)
	}
	got = append(got, r.Flush()...)
	fmt.Println(len(got))
	// Output: 16000
}
