package data

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParseVoice(t *testing.T) {
	tests := []struct {
		in       string
		want     Voice
		reserved bool
		bad      bool
	}{
		{in: "espeak-ng:en-us+m3", want: Voice{EngineEspeak, "en-us", "m3"}},
		{in: "espeak:en-GB-scotland", want: Voice{EngineEspeak, "en-gb-scotland", ""}},
		{in: "espeak-ng:en-029+klatt4", want: Voice{EngineEspeak, "en-029", "klatt4"}},
		{in: "flite:slt", want: Voice{EngineFlite, "slt", ""}},
		{in: "flite:kal16", want: Voice{EngineFlite, "kal16", ""}},
		{in: "festival:cmu_us_slt_arctic_hts", want: Voice{EngineFestival, "cmu_us_slt_arctic_hts", ""}},
		{in: "flite:awb", reserved: true},
		{in: "flite:kal", reserved: true},
		{in: "flite:awb_time", reserved: true},
		{in: "pico:en-US", reserved: true},
		{in: "mbrola:us1", reserved: true},
		{in: "espeak-ng:mb-us1", reserved: true},
		{in: "espeak-ng:en-uk", reserved: true},
		{in: "espeak-ng:de", reserved: true},
		{in: "festival:rab_diphone", reserved: true},
		{in: "coqui:vits", reserved: true},
		{in: "slt", bad: true},
		{in: "flite:", bad: true},
		{in: "flite:slt+m1", bad: true},
		{in: "espeak-ng:en-us+../../x", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := ParseVoice(tt.in)
			switch {
			case tt.reserved:
				if !errors.Is(err, ErrReservedVoice) {
					t.Fatalf("err = %v, want ErrReservedVoice", err)
				}
			case tt.bad:
				if err == nil || errors.Is(err, ErrReservedVoice) {
					t.Fatalf("err = %v, want a syntax error", err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if v != tt.want {
					t.Fatalf("got %+v, want %+v", v, tt.want)
				}
				if back, err := ParseVoice(v.String()); err != nil || back != v {
					t.Fatalf("String round trip: %q -> %+v, %v", v.String(), back, err)
				}
			}
		})
	}
}

func TestDefaultVoices(t *testing.T) {
	vs := DefaultVoices()
	seen := map[string]bool{}
	dev := 0
	for _, v := range vs {
		if err := v.Validate(); err != nil {
			t.Errorf("default voice %s: %v", v, err)
		}
		if seen[v.String()] {
			t.Errorf("duplicate voice %s", v)
		}
		seen[v.String()] = true
		if IsDevVoice(v) {
			dev++
		}
	}
	for _, want := range []string{"flite:slt", "flite:rms", "flite:kal16", "festival:kal_diphone",
		"festival:ked_diphone", "festival:cmu_us_slt_arctic_hts", "espeak-ng:en-us+m1", "espeak-ng:en-gb-x-rp+f5"} {
		if !seen[want] {
			t.Errorf("DefaultVoices lacks %s", want)
		}
	}
	// m7 and f4 in each of the 8 accents, plus flite rms.
	if dev != 2*8+1 {
		t.Errorf("held-out voices = %d, want 17", dev)
	}
	if IsDevVoice(Voice{EngineFlite, "slt", ""}) || IsDevVoice(Voice{EngineFestival, "kal_diphone", ""}) || IsDevVoice(Voice{EngineEspeak, "en-us", "m1"}) {
		t.Error("a training voice is marked held out")
	}
}

func TestDrawParamsRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		for _, v := range []Voice{{EngineEspeak, "en-us", "m1"}, {EngineFlite, "slt", ""}, {EngineFestival, "kal_diphone", ""}, {EngineFestival, "cmu_us_slt_arctic_hts", ""}} {
			p := drawParams(v, rng)
			switch {
			case v.Engine == EngineEspeak:
				if p.Rate < 130 || p.Rate > 200 || p.Pitch < 30 || p.Pitch > 70 || p.Stretch != 0 || p.Cents != 0 {
					t.Fatalf("espeak params %+v", p)
				}
			case v.Name == "cmu_us_slt_arctic_hts":
				if p.Tempo < 0.85 || p.Tempo > 1.15 || p.Stretch != 0 {
					t.Fatalf("hts params %+v", p)
				}
			default:
				if p.Stretch < 0.85 || p.Stretch > 1.2 || p.Tempo != 0 {
					t.Fatalf("%s params %+v", v, p)
				}
			}
			if p.Cents < -150 || p.Cents > 150 {
				t.Fatalf("cents %d", p.Cents)
			}
		}
	}
}

func TestTTSCommand(t *testing.T) {
	tests := []struct {
		v    Voice
		p    VoiceParams
		want string
	}{
		{Voice{EngineEspeak, "en-us", "m3"}, VoiceParams{Rate: 150, Pitch: 40}, "espeak-ng -v en-us+m3 -s 150 -p 40 -w out.wav -f in.txt"},
		{Voice{EngineEspeak, "en-gb", ""}, VoiceParams{Rate: 130, Pitch: 30}, "espeak-ng -v en-gb -s 130 -p 30 -w out.wav -f in.txt"},
		{Voice{EngineFlite, "slt", ""}, VoiceParams{Stretch: 1.1}, "flite -voice slt --setf duration_stretch=1.10 -f in.txt -o out.wav"},
		{Voice{EngineFestival, "kal_diphone", ""}, VoiceParams{Stretch: 0.9},
			"text2wave -eval (voice_kal_diphone) -eval (Parameter.set 'Duration_Stretch 0.90) -o out.wav in.txt"},
		{Voice{EngineFestival, "cmu_us_slt_arctic_hts", ""}, VoiceParams{Tempo: 1.1},
			"text2wave -eval (voice_cmu_us_slt_arctic_hts) -o out.wav in.txt"},
	}
	for _, tt := range tests {
		cmd := ttsCommand(t.Context(), tt.v, tt.p, "in.txt", "out.wav")
		got := strings.Join(append([]string{strings.TrimPrefix(cmd.Args[0], "/usr/bin/")}, cmd.Args[1:]...), " ")
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.v, got, tt.want)
		}
	}
}

func TestToolPackages(t *testing.T) {
	pkgs := toolPackages([]Voice{{EngineFestival, "kal_diphone", ""}, {EngineFestival, "ked_diphone", ""}, {EngineEspeak, "en-us", ""}, {EngineEspeak, "en-gb", ""}})
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	want := []string{"sox", "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "espeak-ng"}
	if !slices.Equal(names, want) {
		t.Errorf("packages %v, want %v", names, want)
	}
}

func TestAugmentDraws(t *testing.T) {
	o := AugmentOptions{CleanFraction: 0.25, SpeedPerturb: true, MinSNR: 5, MaxSNR: 30}
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 20000
	var clean, noise, reverb, tel, speed int
	for i := 0; i < n; i++ {
		a := drawAugment(o, rng)
		if a.Clean() {
			clean++
			if a.String() != "clean" {
				t.Fatalf("clean augment prints %q", a.String())
			}
			continue
		}
		if a.GainDB < -6 || a.GainDB > 6 || a.GainDB == 0 {
			t.Fatalf("gain %v", a.GainDB)
		}
		if a.Noise != "" {
			noise++
			if a.SNR < 5 || a.SNR > 30 {
				t.Fatalf("snr %v", a.SNR)
			}
		}
		if a.Reverb != nil {
			reverb++
		}
		if a.Telephone {
			tel++
		}
		if a.Speed != 0 {
			speed++
			if a.Speed < 0.9 || a.Speed > 1.1 {
				t.Fatalf("speed %v", a.Speed)
			}
		}
	}
	near := func(name string, got int, of int, p float64) {
		if f := float64(got) / float64(of); math.Abs(f-p) > 0.02 {
			t.Errorf("%s fraction %.3f, want %.2f", name, f, p)
		}
	}
	near("clean", clean, n, 0.25)
	aug := n - clean
	near("noise", noise, aug, pNoise)
	near("reverb", reverb, aug, pReverb)
	near("telephone", tel, aug, pTelephone)
	near("speed", speed, aug, pSpeed)

	// Same generator state, same augmentation.
	a1 := drawAugment(o, rand.New(rand.NewPCG(3, 4)))
	a2 := drawAugment(o, rand.New(rand.NewPCG(3, 4)))
	if a1.String() != a2.String() {
		t.Errorf("not deterministic: %s vs %s", a1, a2)
	}
	// No speed perturbation unless asked for.
	o.SpeedPerturb = false
	for i := 0; i < 1000; i++ {
		if a := drawAugment(o, rng); a.Speed != 0 {
			t.Fatal("speed perturbation without SpeedPerturb")
		}
	}
}

func TestAugmentString(t *testing.T) {
	a := Augment{Speed: 1.05, Reverb: &Reverb{40, 55, 70, 12}, Noise: NoisePink, SNR: 12.5, GainDB: -2, Telephone: true}
	if got, want := a.String(), "speed=1.05,reverb=40/55/70/12,noise=pink@12.5dB,gain=-2.0,telephone"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestSoxEffects(t *testing.T) {
	tests := []struct {
		name string
		p    VoiceParams
		a    Augment
		want string
	}{
		{"clean espeak", VoiceParams{Rate: 150, Pitch: 50}, Augment{}, "pad 0.100 0.200"},
		{"hts tempo and pitch", VoiceParams{Tempo: 1.1, Cents: -50}, Augment{}, "tempo -s 1.10 pitch -50 pad 0.100 0.200"},
		{"tempo of one skipped", VoiceParams{Tempo: 1}, Augment{}, "pad 0.100 0.200"},
		{"speed and reverb", VoiceParams{}, Augment{Speed: 0.95, Reverb: &Reverb{50, 40, 80, 10}},
			"speed 0.95 pad 0.100 0.200 reverb 50 40 80 100 10 0"},
		{"noise, gain and telephone are not sox pass one", VoiceParams{}, Augment{Noise: NoiseWhite, SNR: 10, GainDB: 3, Telephone: true}, "pad 0.100 0.200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(soxEffects(tt.p, tt.a, 0.1, 0.2), " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := strings.Join(telephoneEffects(16000), " "); got != "sinc 300-3400 rate 8000 rate 16000" {
		t.Errorf("telephone effects %q", got)
	}
}

func TestFinishSamplesSNR(t *testing.T) {
	const n = 32000
	for _, colour := range []string{NoiseWhite, NoisePink, NoiseBrown} {
		for _, snr := range []float64{5, 20} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/16000))
			}
			clean := slices.Clone(x)
			finishSamples(x, Augment{Noise: colour, SNR: snr}, rand.New(rand.NewPCG(1, 1)))
			// finishSamples first scales to peakTarget; undo that to
			// separate the added noise.
			k := float32(dbToAmp(peakTarget) / peak(clean))
			noise := make([]float32, n)
			for i := range x {
				clean[i] *= k
				noise[i] = x[i] - clean[i]
			}
			got := 10 * math.Log10(power(clean)/power(noise))
			if math.Abs(got-snr) > 0.1 {
				t.Errorf("%s at %v dB: measured %.2f dB", colour, snr, got)
			}
			if peak(x) > 0.99 {
				t.Errorf("%s: clipped, peak %v", colour, peak(x))
			}
		}
	}
}

func TestFinishSamplesGain(t *testing.T) {
	x := []float32{0.5, -1, 0.25}
	finishSamples(x, Augment{GainDB: 6}, nil)
	want := dbToAmp(peakTarget + 6)
	if math.Abs(peak(x)-want) > 1e-6 {
		t.Errorf("peak after +6 dB = %v, want %v", peak(x), want)
	}
	silent := make([]float32, 10)
	finishSamples(silent, Augment{Noise: NoiseWhite, SNR: 10}, rand.New(rand.NewPCG(1, 1)))
	if peak(silent) != 0 {
		t.Error("noise added to silence (SNR undefined)")
	}
}

// TestNoiseColours checks the spectral tilt: the share of power in the
// first difference falls from white to pink to brown.
func TestNoiseColours(t *testing.T) {
	tilt := func(c string) float64 {
		x := makeNoise(c, 1<<16, rand.New(rand.NewPCG(9, 9)))
		d := make([]float32, len(x)-1)
		for i := range d {
			d[i] = x[i+1] - x[i]
		}
		return power(d) / power(x)
	}
	w, p, b := tilt(NoiseWhite), tilt(NoisePink), tilt(NoiseBrown)
	if !(w > p && p > b) {
		t.Errorf("difference/power ratios white %.3f pink %.3f brown %.3f not decreasing", w, p, b)
	}
	if math.Abs(w-2) > 0.1 {
		t.Errorf("white noise ratio %.3f, want about 2", w)
	}
}
