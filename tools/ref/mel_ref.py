#!/usr/bin/env python3
"""Write the log-mel reference fixtures that asr/mel's Go tests compare against.

The spectrograms are computed by OpenAI's own whisper/audio.py (log_mel_spectrogram, which uses
torch.stft and whisper/assets/mel_filters.npz), on a deterministic synthetic clip that this
script also writes, so Go and Python read the very same 16-bit samples.

Regenerate (from the repository root):

    rm -rf /tmp/whisper-src && mkdir -p /tmp/whisper-src
    git -C /work/.mirror/openai+whisper/repo archive HEAD whisper | tar -x -C /tmp/whisper-src
    /usr/bin/python3 tools/ref/mel_ref.py --whisper-src /tmp/whisper-src --out asr/mel/testdata

--whisper-src is any folder holding OpenAI's `whisper/` package directory (a checkout or an
archive of https://github.com/openai/whisper); only whisper/audio.py, whisper/utils.py and
whisper/assets/mel_filters.npz are read. Python needs numpy and torch only (Debian:
python3-numpy, python3-torch for /usr/bin/python3).

How audio.py is imported without tiktoken and the rest: whisper/__init__.py imports the model,
decoding and transcription modules, which need tiktoken, numba, tqdm... This script puts an empty
module named `whisper` into sys.modules with __path__ = [<src>/whisper], so `whisper.audio`
resolves to the file in that folder and __init__.py never runs; audio.py's only relative import,
whisper.utils, needs the standard library alone.

Outputs (under --out; all .npy are float32, little-endian, C order, shape (n_mels, frames)):
  clip.wav          the test signal: 3.7 s, 16 kHz, mono, PCM16 (see make_clip)
  mel80.npy         log_mel_spectrogram(audio, 80)                       (370 frames)
  mel128.npy        log_mel_spectrogram(audio, 128)                      (370 frames)
  mel80_pad.npy     log_mel_spectrogram(audio, 80, padding=N_SAMPLES)[:, :500]
  mel128_pad.npy    log_mel_spectrogram(audio, 128, padding=N_SAMPLES)[:, :500]
  seg80.npy         transcribe.py's first decoding window, [:, :500] of it:
                    mel = log_mel_spectrogram(audio, 80, padding=N_SAMPLES);
                    content = mel.shape[-1] - N_FRAMES;
                    pad_or_trim(mel[:, :min(N_FRAMES, content)], N_FRAMES)
Only the first 500 of the padded spectrograms' 3370 frames are stored, which keeps the fixtures
under 1.5 MB while covering the audio, the reflect-padded edge frames and 130 frames of pure
padding (those sit at the global max - 8 floor, as do the clip's silent and near-silent parts).

The script also checks the mel filterbank against whisper's mel_filters.npz and prints the max
abs difference of
  * an independent NumPy evaluation of the Slaney formula (librosa.filters.mel's arithmetic), and
  * with --go-filters DIR, the Go package's own matrices, dumped by
        MEL_FILTERS_OUT=DIR go test ./asr/mel -run TestFilters
    as DIR/filters80.npy and DIR/filters128.npy.
The npz itself is never copied into the repository; the Go test pins the sha256 printed here.
"""

import argparse
import hashlib
import importlib
import os
import sys
import types
import wave

import numpy as np
import torch

SR = 16000
DURATION_S = 3.7
SEED = 20240611
STORE_FRAMES = 500


def load_openai_audio(src):
    """Import whisper/audio.py from src without running whisper/__init__.py."""
    pkg_dir = os.path.join(src, "whisper")
    if not os.path.isfile(os.path.join(pkg_dir, "audio.py")):
        sys.exit(f"mel_ref: no whisper/audio.py under {src}")
    pkg = types.ModuleType("whisper")
    pkg.__path__ = [pkg_dir]
    sys.modules["whisper"] = pkg
    return importlib.import_module("whisper.audio")


def make_clip():
    """The deterministic test signal, as int16 samples.

    0.0-1.2 s  rising linear chirp 200 -> 6000 Hz plus a 220 Hz tone with 3 harmonics
    1.2-1.5 s  digital silence (all-zero frames: log10(1e-10) = -10, floored at max - 8)
    1.5-2.5 s  150 Hz harmonic tone with 5 Hz vibrato, plus white noise at -46 dBFS
    2.5-3.0 s  white noise of about 1 LSB (mostly under the max - 8 floor)
    3.0-3.7 s  falling exponential chirp 7000 -> 100 Hz plus white noise at -40 dBFS
    """
    rng = np.random.default_rng(SEED)
    n = int(round(DURATION_S * SR))
    t = np.arange(n) / SR
    x = np.zeros(n)

    def seg(a, b):
        return (t >= a) & (t < b)

    s = seg(0.0, 1.2)
    ts = t[s]
    f0, f1, dur = 200.0, 6000.0, 1.2
    x[s] = 0.35 * np.sin(2 * np.pi * (f0 * ts + (f1 - f0) / (2 * dur) * ts**2))
    for h, amp in enumerate([0.2, 0.1, 0.05, 0.025], start=1):
        x[s] += amp * np.sin(2 * np.pi * 220.0 * h * ts)

    s = seg(1.5, 2.5)
    ts = t[s] - 1.5
    phase = 2 * np.pi * 150.0 * ts + (3.0 / 5.0) * np.sin(2 * np.pi * 5.0 * ts)
    for h, amp in enumerate([0.4, 0.2, 0.12, 0.08, 0.05], start=1):
        x[s] += amp * np.sin(h * phase)
    x[s] += 0.005 * rng.standard_normal(s.sum())

    s = seg(2.5, 3.0)
    x[s] = (1.2 / 32768) * rng.standard_normal(s.sum())

    s = seg(3.0, DURATION_S + 1)
    ts = t[s] - 3.0
    f0, f1, dur = 7000.0, 100.0, 0.7
    k = np.log(f1 / f0) / dur
    x[s] = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * ts) - 1) / k)
    x[s] += 0.01 * rng.standard_normal(s.sum())

    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def read_wav(path):
    """PCM16 mono WAV -> float32 in [-1, 1), the way whisper's load_audio scales s16le."""
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SR
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def slaney_filters(n_mels, n_fft=400, sr=SR):
    """librosa.filters.mel(sr, n_fft, n_mels) with htk=False, norm="slaney", from the formula."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz,
                        min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep,
                        f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def read_npy_f32(path):
    a = np.load(path, allow_pickle=False)
    assert a.dtype == np.float32, f"{path}: dtype {a.dtype}"
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--whisper-src", required=True, help="folder holding OpenAI's whisper/ package")
    ap.add_argument("--out", default="asr/mel/testdata", help="fixture folder")
    ap.add_argument("--go-filters", help="folder with filters80.npy/filters128.npy dumped by the Go test")
    args = ap.parse_args()

    audio_mod = load_openai_audio(args.whisper_src)
    os.makedirs(args.out, exist_ok=True)

    wav_path = os.path.join(args.out, "clip.wav")
    write_wav(wav_path, make_clip())
    audio = read_wav(wav_path)
    print(f"clip.wav: {len(audio)} samples")

    npz_path = os.path.join(args.whisper_src, "whisper", "assets", "mel_filters.npz")
    with np.load(npz_path, allow_pickle=False) as npz:
        for n_mels in (80, 128):
            ref = npz[f"mel_{n_mels}"]
            mine = slaney_filters(n_mels)
            print(f"filters {n_mels}: numpy formula vs mel_filters.npz max abs diff "
                  f"{np.abs(mine - ref).max():.3e} (max weight {ref.max():.4f}); npz sha256 "
                  f"{hashlib.sha256(ref.astype('<f4').tobytes()).hexdigest()}")
            if args.go_filters:
                go = read_npy_f32(os.path.join(args.go_filters, f"filters{n_mels}.npy"))
                print(f"filters {n_mels}: Go vs mel_filters.npz max abs diff "
                      f"{np.abs(go - ref).max():.3e}")

    x = torch.from_numpy(audio)
    torch.set_num_threads(1)
    for n_mels in (80, 128):
        mel = audio_mod.log_mel_spectrogram(x, n_mels).numpy().astype(np.float32)
        np.save(os.path.join(args.out, f"mel{n_mels}.npy"), np.ascontiguousarray(mel))
        padded = audio_mod.log_mel_spectrogram(x, n_mels, padding=audio_mod.N_SAMPLES)
        np.save(os.path.join(args.out, f"mel{n_mels}_pad.npy"),
                np.ascontiguousarray(padded[:, :STORE_FRAMES].numpy().astype(np.float32)))
        floored = (padded == padded.min()).float().mean().item()
        print(f"mel{n_mels}: {tuple(mel.shape)}, padded {tuple(padded.shape)}, "
              f"max {padded.max().item():.4f}, {100 * floored:.1f}% at the max-8 floor")
        if n_mels == 80:
            content = padded.shape[-1] - audio_mod.N_FRAMES
            seg = audio_mod.pad_or_trim(padded[:, : min(audio_mod.N_FRAMES, content)],
                                        audio_mod.N_FRAMES)
            np.save(os.path.join(args.out, "seg80.npy"),
                    np.ascontiguousarray(seg[:, :STORE_FRAMES].numpy().astype(np.float32)))


if __name__ == "__main__":
    main()
