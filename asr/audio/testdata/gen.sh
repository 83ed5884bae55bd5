#!/bin/sh
# Regenerates the audio fixtures in this folder (Debian packages sox 14.4.2 and flac 1.4.2).
# The tests compare decoders against each other, so the exact bytes do not matter, but
# every WAV here holds the same 16-bit signal (s16.wav) converted losslessly, which lets
# the tests require bit-exact agreement between formats.
#
#   sh gen.sh        (run from this folder)
set -eu
# 0.1 s, 8 kHz, stereo: 440 Hz left, 1 kHz right, -6 dBFS, no dither (-D) so it is repeatable.
sox -D -n -r 8000 -c 2 -b 16 s16.wav synth 0.1 sine 440 sine 1000 vol 0.5
sox -D s16.wav -b 8 u8.wav                       # 8-bit unsigned PCM (quantised from s16)
sox -D s16.wav -b 24 s24.wav                     # 24-bit, WAVE_FORMAT_EXTENSIBLE + fact chunk
sox -D s16.wav -b 32 s32.wav                     # 32-bit integer, extensible
sox -D s16.wav -e floating-point -b 32 f32.wav   # IEEE float 32, format 3 + fact chunk
sox -D s16.wav -e floating-point -b 64 f64.wav   # IEEE float 64
sox -D s16.wav -c 1 -b 8 m8.wav remix 1          # mono 8-bit (left channel)
# 3 channels, extensible with channel mask 0 (sox): 440 Hz, 1 kHz, 2 kHz.
sox -D -n -r 8000 -c 3 -b 16 c3.wav synth 0.1 sine 440 sine 1000 sine 2000 vol 0.5
# FLAC of the same signals (with seek table and Vorbis comment, no padding).
flac -s -f --best --no-padding --blocksize=192 -o s16.flac s16.wav   # 5 frames
flac -s -f --best --no-padding -o s24.flac s24.wav
flac -s -f --no-padding -o s32.flac s32.wav   # 32-bit: the decoder must reject it clearly
flac -s -f --no-padding -o m8.flac m8.wav
flac -s -f --no-padding --blocksize=256 --channel-map=none -o c3.flac c3.wav   # 4 frames
