package stream

import "math"

// vad is an energy voice-activity detector with an adaptive noise floor, hysteresis and a
// hangover. No pretrained VAD model is available to chorus, and an energy detector is what
// whisper.cpp's stream example uses too; its weakness, noise as loud as speech, is why the
// session also gates the decoder's results (see Config).
//
// It works on 10-ms frames (one mel hop). A frame's level is its mean power in dBFS,
// 10·log10(mean x² + 1e-10), so digital silence reads −100 dB.
//
//   - Noise floor: the minimum level over the last floorFrames frames (minimum statistics,
//     after Martin 2001, without the bias correction). A minimum follows a falling floor at
//     once and a rising one (a fan switching on) after the window, and speech, whose level
//     dips between syllables, barely lifts it. Before the first frame the floor is unknown:
//     the first frame sets it, so a stream is assumed to start with something other than
//     loud speech.
//   - Voiced: a frame at least startMargin dB above the floor (keepMargin, smaller, once in
//     speech: hysteresis keeps weak word endings) and above minLevel dBFS, so that the
//     dither of an otherwise silent line is not speech.
//   - Onset: onsetFrames voiced frames in a row start speech, at the first of them; a click
//     is shorter.
//   - Hangover: speech lasts until hangFrames unvoiced frames in a row follow the last voiced
//     one; the session's endpoint is the end of the hangover, so hangFrames is
//     Config.EndpointSilence in frames.
type vad struct {
	startMargin, keepMargin, minLevel    float64 // dB
	onsetFrames, hangFrames, floorFrames int

	frame    int64      // frames seen
	mins     []minEntry // monotonic deque: levels increasing, frames increasing
	speech   bool       // in speech (onset seen, hangover not over)
	run      int        // voiced frames in a row, while not in speech
	silence  int        // unvoiced frames in a row, while in speech
	lastVoic int64      // frame after the last voiced one, while in speech
}

type minEntry struct {
	frame int64
	level float64
}

// vadEvent is what one frame changed.
type vadEvent int

const (
	vadNone  vadEvent = iota
	vadBegin          // speech started at frame onset()
	vadEnd            // the hangover ran out: speech ended at frame voicedEnd()
)

// level is a frame's mean power in dBFS.
func level(x []float32) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return 10 * math.Log10(e/float64(len(x))+1e-10)
}

// floor is the noise floor before the current frame, NaN before the first frame.
func (v *vad) floor() float64 {
	if len(v.mins) == 0 {
		return math.NaN()
	}
	return v.mins[0].level
}

// push classifies the next frame of level l and reports the transition it caused.
func (v *vad) push(l float64) vadEvent {
	f := v.frame
	v.frame++
	floor := v.floor()
	margin := v.startMargin
	if v.speech {
		margin = v.keepMargin
	}
	voiced := !math.IsNaN(floor) && l >= floor+margin && l >= v.minLevel

	// Slide the minimum window: drop entries that left it, and those no longer the minimum
	// of any window that holds this frame.
	for len(v.mins) > 0 && v.mins[0].frame <= f-int64(v.floorFrames) {
		v.mins = v.mins[1:]
	}
	for len(v.mins) > 0 && v.mins[len(v.mins)-1].level >= l {
		v.mins = v.mins[:len(v.mins)-1]
	}
	v.mins = append(v.mins, minEntry{f, l}) // at most floorFrames entries

	if !v.speech {
		if !voiced {
			v.run = 0
			return vadNone
		}
		v.run++
		if v.run < v.onsetFrames {
			return vadNone
		}
		v.speech, v.silence, v.lastVoic = true, 0, f+1
		return vadBegin
	}
	if voiced {
		v.silence, v.lastVoic = 0, f+1
		return vadNone
	}
	v.silence++
	if v.silence < v.hangFrames {
		return vadNone
	}
	v.speech, v.run = false, 0
	return vadEnd
}

// onset is the first frame of the speech that vadBegin reported.
func (v *vad) onset() int64 { return v.lastVoic - int64(v.onsetFrames) }

// voicedEnd is the frame after the last voiced frame of the current or just ended speech.
func (v *vad) voicedEnd() int64 { return v.lastVoic }

// paused reports speech whose last n frames were unvoiced (a pause, perhaps the end).
func (v *vad) paused(n int) bool { return v.speech && v.silence >= n }
