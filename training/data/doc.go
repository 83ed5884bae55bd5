// Package data builds and reads chorus's speech corpora: the text the
// project may synthesise (DATA.md), synthesis with Debian TTS voices plus sox
// augmentation, the real-speech prompts of asterisk-core-sounds-en-wav,
// imports of LibriSpeech- and Common Voice-style folders, and the JSON-lines
// manifests that tie audio files to transcripts.
//
// # Policy
//
// DATA.md is the contract. The code encodes it rather than taking it as
// configuration: the allowed text cut points (LoadTexts), the allowed and
// reserved voices (ParseVoice, ErrReservedVoice), and the real-speech cut
// (the first 284 transcript entries) are constants here, so a flag typo
// cannot leak evaluation data into training.
//
// # Splits
//
// Sentences are split into train and dev by a salted hash of their
// normalised text (SentenceSplit), independent of the synthesis seed, so
// every corpus built from the same text holds out the same sentences. Voices
// are split by a fixed list (DevVoices): espeak-ng variants m7 and f4 (with
// every accent) and flite rms never speak training utterances. Synthesis
// writes three manifests: train (train sentences × train voices), dev
// (dev sentences × train voices) and dev-voices (dev sentences × held-out
// voices), so generalisation to unseen text and to unseen voices can be
// read separately. Real speech adds real-train, real-dev and eval-real.
//
// # External tools
//
// Synthesis runs espeak-ng, flite, festival and sox as child processes
// (festival once per worker, fed one utterance after another: its start-up
// costs more than a sentence, and the files equal text2wave's); text loading
// runs npm pack. Missing Debian packages are
// installed with apt-get when running as root (unless NoInstall is set);
// otherwise the error names the apt-get command to run.
package data
