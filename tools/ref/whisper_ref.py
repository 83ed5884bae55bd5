#!/usr/bin/env python3
"""Write the Whisper reference fixtures that chorus's Go tests compare against.

The numbers are computed by OpenAI's own whisper/model.py and whisper/audio.py (STYLE.md item 8),
on checkpoints whose weights come from chorus's seeded generator (tensor/seeded.go), re-implemented
here in NumPy bit for bit, so the fixtures never carry the weights themselves.

Regenerate everything (from the repository root):

    rm -rf /tmp/whisper-src && mkdir -p /tmp/whisper-src
    git -C /work/.mirror/openai+whisper/repo archive HEAD whisper | tar -x -C /tmp/whisper-src
    /usr/bin/python3 tools/ref/whisper_ref.py --whisper-src /tmp/whisper-src --out testdata

--whisper-src is any folder that holds OpenAI's `whisper/` package directory (a checkout or an
archive of https://github.com/openai/whisper; only whisper/model.py, whisper/audio.py,
whisper/utils.py and whisper/assets/mel_filters.npz are read). `git archive HEAD whisper` is used
above because the local mirror lacks some large notebook blobs, so archiving the whole tree fails.
Python needs torch and numpy only (Debian: python3-torch, python3-numpy for /usr/bin/python3).

How OpenAI's code is imported without its package __init__: whisper/__init__.py and the modules
that model.py imports at top level (decoding.py, transcribe.py → tokenizer.py, timing.py) need
tiktoken, numba, tqdm and more. load_openai_whisper() therefore
  1. puts an empty module named `whisper` into sys.modules with __path__ = [<src>/whisper], so
     `whisper.model` and `whisper.audio` resolve to the files in that folder and __init__.py never
     runs;
  2. puts stand-in modules `whisper.decoding` (decode, detect_language) and `whisper.transcribe`
     (transcribe) into sys.modules: model.py only binds those three functions as Whisper methods,
     which this script never calls (the stand-ins raise if called);
  3. imports whisper.audio (which imports whisper.utils, stdlib only) and whisper.model normally.
For the word timings, load_openai_timing() then imports whisper.tokenizer and whisper.timing as
they are, after putting two stand-ins into sys.modules: `tiktoken`, whose Encoding keeps only
what Tokenizer and timing.py call (special tokens, eot_token, decode: the tokens' bytes joined
and decoded as UTF-8 with errors="replace", which is what tiktoken's decode does), and `numba`,
whose jit returns the function unchanged, so dtw_cpu and backtrace run as plain Python on the
same NumPy arrays (float32 cost, float64 input).
model.py uses torch.nn.functional.scaled_dot_product_attention when it exists (torch >= 2.0);
this script sets MultiHeadAttention.use_sdpa = False, so the explicit softmax(QK^T)V path runs on
every torch version (on torch 1.13 SDPA does not exist and that path runs anyway).

Outputs (paths under --out):
  audio/ref.wav                    input clip (committed; --make-audio recreates it, see below)
  whisper-ref/mel<n_mels>.npy      pad_or_trim(mel[:, :content_frames], 3000) with
                                   mel = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES):
                                   exactly what transcribe.py decodes window one from (frames
                                   after the audio are 0.0, not the log floor)
  whisper-ref/<config>/encoder.npy encoder output rows (meta.json "encoder_rows"; null = all)
  whisper-ref/<config>/logits.npy  decoder logits rows for the prompt (meta.json "logits_rows")
  whisper-ref/<config>/meta.json   dims, seed, tokens, greedy ids, provenance, max |value|s
  whisper-ref/<config>/weights.sha256.json
                                   Hugging Face tensor name -> sha256 of its raw little-endian
                                   float32 bytes, so Go can check its generator bit for bit
  whisper-ref/<config>/alignment.json
                                   (full-vocabulary configs only) word-level timestamps of
                                   WORD_TEXT on the clip: timing.py's find_alignment words and
                                   add_word_timestamps on two segments, with the bytes of
                                   every text token so Go can decode them without the vocab
With --write-hf DIR, also DIR/<config>/{config.json,model.safetensors} (not committed).

--make-audio rewrites audio/ref.wav with espeak-ng 1.51 + sox 14.4.2 (other versions may differ
in bits; the committed file is the reference):
    espeak-ng -v en-us -s 150 -w raw.wav "<AUDIO_TEXT>"
    sox raw.wav -D -r 16000 -c 1 -b 16 ref.wav
"""

import argparse
import base64
import hashlib
import importlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import types
import wave

import numpy as np
import torch

AUDIO_TEXT = "The quick brown fox jumps over the lazy dog by the river."

# ---------------------------------------------------------------------------------------------
# Seeded weights: the NumPy twin of tensor.SeededUniform and whisper.TensorSpecs / InitRange.

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
MASK64 = (1 << 64) - 1


def fnv1a64(s):
    h = FNV_OFFSET
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def splitmix(z):
    """splitmix64 finaliser on a uint64 array (arithmetic wraps mod 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def seeded_uniform(n, seed, name, center, scale, chunk=1 << 22):
    """n float32 values uniform in [center-scale, center+scale), as tensor.SeededUniform."""
    h = np.uint64(fnv1a64("%d/%s" % (seed, name)))
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            i1 = np.arange(start + 1, stop + 1, dtype=np.uint64)
            z = splitmix(h + i1 * GOLDEN)
            u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
            out[start:stop] = (center + scale * (2.0 * u - 1.0)).astype(np.float32)
    return out


def check_seeded_pin():
    """The pinned values of tensor/seeded_test.go."""
    got = seeded_uniform(4, 1, "model.encoder.conv1.weight", 0.0, 1.0)
    want = np.array([-0.5107825, 0.6316333, -0.5256318, -0.6102518], dtype=np.float32)
    assert np.array_equal(got, want), "seeded generator mismatch: %r != %r" % (got, want)


def tensor_specs(d):
    """(Hugging Face name, shape) in the order of whisper.TensorSpecs (asr/models/whisper)."""
    s = []

    def add(name, *shape):
        s.append((name, tuple(shape)))

    def attn(p, w):
        add(p + ".k_proj.weight", w, w)
        add(p + ".v_proj.weight", w, w)
        add(p + ".v_proj.bias", w)
        add(p + ".q_proj.weight", w, w)
        add(p + ".q_proj.bias", w)
        add(p + ".out_proj.weight", w, w)
        add(p + ".out_proj.bias", w)

    def ln(p, w):
        add(p + ".weight", w)
        add(p + ".bias", w)

    e, t = d["n_audio_state"], d["n_text_state"]
    fe, fd = 4 * e, 4 * t
    add("model.encoder.conv1.weight", e, d["n_mels"], 3)
    add("model.encoder.conv1.bias", e)
    add("model.encoder.conv2.weight", e, e, 3)
    add("model.encoder.conv2.bias", e)
    add("model.encoder.embed_positions.weight", d["n_audio_ctx"], e)
    for i in range(d["n_audio_layer"]):
        p = "model.encoder.layers.%d" % i
        attn(p + ".self_attn", e)
        ln(p + ".self_attn_layer_norm", e)
        add(p + ".fc1.weight", fe, e)
        add(p + ".fc1.bias", fe)
        add(p + ".fc2.weight", e, fe)
        add(p + ".fc2.bias", e)
        ln(p + ".final_layer_norm", e)
    ln("model.encoder.layer_norm", e)
    add("model.decoder.embed_tokens.weight", d["n_vocab"], t)
    add("model.decoder.embed_positions.weight", d["n_text_ctx"], t)
    for i in range(d["n_text_layer"]):
        p = "model.decoder.layers.%d" % i
        attn(p + ".self_attn", t)
        ln(p + ".self_attn_layer_norm", t)
        attn(p + ".encoder_attn", t)
        ln(p + ".encoder_attn_layer_norm", t)
        add(p + ".fc1.weight", fd, t)
        add(p + ".fc1.bias", fd)
        add(p + ".fc2.weight", t, fd)
        add(p + ".fc2.bias", t)
        ln(p + ".final_layer_norm", t)
    ln("model.decoder.layer_norm", t)
    return s


def init_range(name, shape):
    """(center, scale) as whisper.InitRange."""
    if name.endswith("layer_norm.weight"):
        return 1.0, 0.2
    if name.endswith(".bias"):
        return 0.0, 0.1
    if "embed_positions" in name or "embed_tokens" in name:
        return 0.0, 0.5
    fan_in = int(np.prod(shape)) // shape[0]
    return 0.0, float(np.sqrt(3.0 / fan_in))


def random_checkpoint(d, seed):
    """Ordered list of (HF name, float32 array) as whisper.RandomCheckpoint."""
    out = []
    for name, shape in tensor_specs(d):
        c, sc = init_range(name, shape)
        n = int(np.prod(shape))
        out.append((name, seeded_uniform(n, seed, name, c, sc).reshape(shape)))
    return out


# ---------------------------------------------------------------------------------------------
# Hugging Face <-> OpenAI names (checked by load_state_dict(strict=True)).

_ATTN = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "out_proj": "out"}
_LAYER = {
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "final_layer_norm": "mlp_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
}
_TOP = {
    "model.encoder.conv1": "encoder.conv1",
    "model.encoder.conv2": "encoder.conv2",
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    "model.encoder.layer_norm": "encoder.ln_post",
    "model.decoder.embed_tokens": "decoder.token_embedding",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    "model.decoder.layer_norm": "decoder.ln",
}


def hf_to_openai(name):
    parts = name.split(".")
    if parts[2] == "layers":
        # model.{encoder,decoder}.layers.N.<module>[.<proj>].{weight,bias}
        side, n, mod, rest = parts[1], parts[3], parts[4], parts[5:]
        if mod in ("self_attn", "encoder_attn"):
            mod = ("attn" if mod == "self_attn" else "cross_attn") + "." + _ATTN[rest[0]]
            rest = rest[1:]
        else:
            mod = _LAYER[mod]
        return ".".join([side, "blocks", n, mod] + rest)
    for hf, oa in _TOP.items():
        if name == hf or name.startswith(hf + "."):
            return oa + name[len(hf):]
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# OpenAI whisper, imported from a source folder without whisper/__init__.py.


def load_openai_whisper(src):
    pkg_dir = os.path.abspath(os.path.join(src, "whisper"))
    if not os.path.isfile(os.path.join(pkg_dir, "model.py")):
        sys.exit("no whisper/model.py under --whisper-src %s" % src)
    pkg = types.ModuleType("whisper")
    pkg.__path__ = [pkg_dir]
    sys.modules["whisper"] = pkg

    def unavailable(fn):
        def f(*a, **k):
            raise RuntimeError("whisper.%s is stubbed out by whisper_ref.py" % fn)

        return f

    for sub, names in (("decoding", ("decode", "detect_language")), ("transcribe", ("transcribe",))):
        m = types.ModuleType("whisper." + sub)
        for n in names:
            setattr(m, n, unavailable(n))
        sys.modules["whisper." + sub] = m
    audio = importlib.import_module("whisper.audio")
    model = importlib.import_module("whisper.model")
    for m in (audio, model):
        assert os.path.dirname(os.path.abspath(m.__file__)) == pkg_dir, m.__file__
    model.MultiHeadAttention.use_sdpa = False
    return audio, model


def load_openai_timing():
    """whisper.tokenizer and whisper.timing, over the tiktoken and numba stand-ins."""

    class Encoding:
        def __init__(self, name, explicit_n_vocab, pat_str, mergeable_ranks, special_tokens):
            self.name = name
            self.ranks = mergeable_ranks
            self.bytes_of = {r: b for b, r in mergeable_ranks.items()}
            self._special_tokens = dict(special_tokens)
            for name_, i in special_tokens.items():
                self.bytes_of[i] = name_.encode("utf-8")
            self.special_tokens_set = set(special_tokens)
            self.eot_token = special_tokens["<|endoftext|>"]

        def encode_single_token(self, piece):
            if isinstance(piece, str):
                return self._special_tokens[piece]
            return self.ranks[piece]

        def decode(self, tokens, errors="replace"):
            return b"".join(self.bytes_of[t] for t in tokens).decode("utf-8", errors=errors)

    tk = types.ModuleType("tiktoken")
    tk.Encoding = Encoding
    sys.modules["tiktoken"] = tk
    nb = types.ModuleType("numba")

    def jit(*args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    nb.jit = jit
    sys.modules["numba"] = nb
    return importlib.import_module("whisper.tokenizer"), importlib.import_module("whisper.timing")


# The words aligned: the clip's sentence, with " river" split into two tokens so that a word
# of several tokens is grouped, and the full stop merged into it; " réf" (30170) is the token
# the seeded tiny model predicts almost whatever came before (meta.json greedy), so that one
# word's probability is far from 0 and the probabilities are tested for more than underflow.
WORD_TEXT = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", " réf",
             " by", " the", " riv", "er", "."]
WORD_SPLIT = 4  # the first segment holds the first 4 words


def word_timings(model, wt, wtok, mel, content_frames):
    """find_alignment and add_word_timestamps on the clip's window (transcribe.py#L401-L411)."""
    tok = wtok.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    ranks = tok.encoding.ranks
    text = [ranks[w.encode("utf-8")] for w in WORD_TEXT]
    mel_t = torch.from_numpy(mel)
    align = wt.find_alignment(model, tok, text, mel_t, content_frames)
    ts = lambda sec: tok.timestamp_begin + int(round(sec / 0.02))
    cut = 1.5
    segments = [
        {"seek": 0, "start": 0.0, "end": cut, "tokens": [ts(0)] + text[:WORD_SPLIT] + [ts(cut)]},
        {"seek": 0, "start": cut, "end": 4.0, "tokens": [ts(cut)] + text[WORD_SPLIT:] + [ts(4.0)]},
    ]
    wt.add_word_timestamps(segments=segments, model=model, tokenizer=tok, mel=mel_t,
                           num_frames=content_frames, last_speech_timestamp=0.0)
    return {
        "sot_sequence": list(tok.sot_sequence),
        "no_timestamps": tok.no_timestamps,
        "eot": tok.eot,
        "timestamp_begin": tok.timestamp_begin,
        "language": "en",
        "text_tokens": text,
        "token_bytes": {str(t): base64.b64encode(tok.encoding.bytes_of[t]).decode("ascii") for t in text},
        "num_frames": int(content_frames),
        "alignment_heads": [[int(l), int(h)] for l, h in model.alignment_heads.indices().T.tolist()],
        "medfilt_width": 7,
        "find_alignment": [
            {"word": w.word, "tokens": [int(t) for t in w.tokens], "start": float(w.start),
             "end": float(w.end), "probability": float(w.probability)}
            for w in align
        ],
        "segments": [
            {"start": float(sg["start"]), "end": float(sg["end"]), "tokens": sg["tokens"],
             "words": [{"word": w["word"], "start": float(w["start"]), "end": float(w["end"]),
                        "probability": float(w["probability"])} for w in sg["words"]]}
            for sg in segments
        ],
    }


# ---------------------------------------------------------------------------------------------
# Files.


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, (
            "%s: want 16 kHz 16-bit mono" % path
        )
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def make_audio(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, AUDIO_TEXT], check=True)
        subprocess.run(["sox", raw, "-D", "-r", "16000", "-c", "1", "-b", "16", path], check=True)


def save_npy(path, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    assert np.isfinite(a).all(), "%s: non-finite values" % path
    np.save(path, a)
    return a


def f32_bytes(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def write_safetensors(path, tensors):
    """tensors: iterable of (name, float32 array). Header keys and data in sorted name order."""
    items = sorted(tensors, key=lambda kv: kv[0])
    header, off = {}, 0
    for name, a in items:
        n = a.size * 4
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, a in items:
            f.write(f32_bytes(a))


def hf_config(d, special):
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "torch_dtype": "float32",
        "vocab_size": d["n_vocab"],
        "num_mel_bins": d["n_mels"],
        "d_model": d["n_audio_state"],
        "encoder_layers": d["n_audio_layer"],
        "encoder_attention_heads": d["n_audio_head"],
        "decoder_layers": d["n_text_layer"],
        "decoder_attention_heads": d["n_text_head"],
        "encoder_ffn_dim": 4 * d["n_audio_state"],
        "decoder_ffn_dim": 4 * d["n_text_state"],
        "max_source_positions": d["n_audio_ctx"],
        "max_target_positions": d["n_text_ctx"],
        "num_hidden_layers": d["n_audio_layer"],
        "scale_embedding": False,
        **special,
    }


def special_tokens(d, prompt):
    """Whisper's ids for a full vocabulary; for toy vocabularies, start = prompt[0] and 0 for the rest."""
    if d["n_vocab"] >= 51865:
        return {"decoder_start_token_id": 50258, "eos_token_id": 50257, "pad_token_id": 50257, "bos_token_id": 50257}
    return {"decoder_start_token_id": prompt[0], "eos_token_id": 0, "pad_token_id": 0, "bos_token_id": 0}


# ---------------------------------------------------------------------------------------------
# Configurations.

DIM_KEYS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
            "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")

CONFIGS = {
    "small": {
        "dims": dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                     n_vocab=400, n_text_ctx=64, n_text_state=64, n_text_head=2, n_text_layer=2),
        "tokens": [1, 5, 17, 42, 99, 3],
        "encoder_every": 1,
        "logits_last": 0,  # 0 = all rows
    },
    "tiny": {
        "dims": dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                     n_vocab=51865, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4),
        "tokens": [50258, 50259, 50359, 50363, 440, 1349],
        "encoder_every": 10,
        "logits_last": 2,
    },
}


def parse_dims(s):
    """'n_mels=80,n_audio_state=64,...' -> dict (keys of ModelDimensions; unnamed keys kept)."""
    out = {}
    for kv in s.split(","):
        k, v = kv.split("=")
        if k.strip() not in DIM_KEYS:
            raise argparse.ArgumentTypeError("unknown dimension %r" % k)
        out[k.strip()] = int(v)
    return out


def git_commit(src):
    for cmd in (["git", "-C", src, "rev-parse", "HEAD"],
                ["git", "-C", "/work/.mirror/openai+whisper/repo", "rev-parse", "HEAD"]):
        try:
            return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return "unknown"


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_config(name, cfg, args, wa, wm, audio, commit, mels, content_frames):
    d = cfg["dims"]
    seed = cfg["seed"]
    out_dir = os.path.join(args.out, "whisper-ref", name)
    os.makedirs(out_dir, exist_ok=True)
    print("[%s] building seeded checkpoint %s seed %d" % (name, d, seed), flush=True)
    ckpt = random_checkpoint(d, seed)
    write_json(os.path.join(out_dir, "weights.sha256.json"),
               {n: hashlib.sha256(f32_bytes(a)).hexdigest() for n, a in ckpt})
    if args.write_hf:
        hf_dir = os.path.join(args.write_hf, name)
        os.makedirs(hf_dir, exist_ok=True)
        write_json(os.path.join(hf_dir, "config.json"), hf_config(d, special_tokens(d, cfg["tokens"])))
        write_safetensors(os.path.join(hf_dir, "model.safetensors"), ckpt)
        print("[%s] wrote %s" % (name, hf_dir), flush=True)

    model = wm.Whisper(wm.ModelDimensions(**{k: d[k] for k in DIM_KEYS}))
    state = {hf_to_openai(n): torch.from_numpy(a) for n, a in ckpt}
    model.load_state_dict(state, strict=True)
    model = model.float().eval()
    del state, ckpt

    n_mels = d["n_mels"]
    if n_mels not in mels:
        full = wa.log_mel_spectrogram(torch.from_numpy(audio), n_mels, padding=wa.N_SAMPLES)
        assert full.shape[-1] - wa.N_FRAMES == content_frames  # as transcribe.py
        mel = wa.pad_or_trim(full[:, :content_frames], wa.N_FRAMES)
        mels[n_mels] = save_npy(os.path.join(args.out, "whisper-ref", "mel%d.npy" % n_mels), mel.numpy())
    mel = mels[n_mels]
    assert mel.shape == (n_mels, 2 * d["n_audio_ctx"]), mel.shape

    tokens = list(cfg["tokens"])
    assert max(tokens) < d["n_vocab"] and len(tokens) + args.greedy_steps <= d["n_text_ctx"]
    with torch.no_grad():
        print("[%s] encoder" % name, flush=True)
        xa = model.encoder(torch.from_numpy(mel)[None])
        enc = xa[0].numpy()
        enc_rows = list(range(0, enc.shape[0], cfg["encoder_every"]))
        enc_out = save_npy(os.path.join(out_dir, "encoder.npy"), enc[enc_rows])

        print("[%s] decoder" % name, flush=True)
        logits = model.decoder(torch.tensor([tokens]), xa)[0].numpy()
        n = len(tokens)
        log_rows = list(range(n)) if cfg["logits_last"] == 0 else list(range(n - cfg["logits_last"], n))
        log_out = save_npy(os.path.join(out_dir, "logits.npy"), logits[log_rows])

        seq, margins = list(tokens), []
        for _ in range(args.greedy_steps):
            last = model.decoder(torch.tensor([seq]), xa)[0, -1]
            top2 = torch.topk(last, 2).values
            margins.append(float(top2[0] - top2[1]))
            seq.append(int(torch.argmax(last)))
        greedy = seq[len(tokens):]

    if d["n_vocab"] >= 51865:
        print("[%s] word timings" % name, flush=True)
        wtok, wt = load_openai_timing()
        words = word_timings(model, wt, wtok, mel, content_frames)
        words["whisper_commit"] = commit
        words["generator"] = "tools/ref/whisper_ref.py"
        write_json(os.path.join(out_dir, "alignment.json"), words)
        print("[%s] words %s" % (name, [(w["word"], w["start"], w["end"]) for w in words["find_alignment"]]),
              flush=True)

    meta = {
        "config": name,
        "dims": d,
        "seed": seed,
        "init": "tensor.SeededUniform with whisper.InitRange; weights.sha256.json pins every tensor",
        "tokens": tokens,
        "mel": "../mel%d.npy" % n_mels,
        "encoder": "encoder.npy",
        "encoder_rows": None if cfg["encoder_every"] == 1 else enc_rows,
        "encoder_shape_full": list(enc.shape),
        "logits": "logits.npy",
        "logits_rows": log_rows,
        "greedy": greedy,
        "greedy_top2_margin": margins,
        "max_abs": {
            "mel": float(np.abs(mel).max()),
            "encoder": float(np.abs(enc_out).max()),
            "encoder_full": float(np.abs(enc).max()),
            "logits": float(np.abs(log_out).max()),
            "logits_full": float(np.abs(logits).max()),
        },
        "audio": {"path": "audio/ref.wav", "sha256": sha256_file(args.audio), "samples": int(audio.size)},
        "whisper_commit": commit,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "attention": "manual softmax path (MultiHeadAttention.use_sdpa = False)",
        "generator": "tools/ref/whisper_ref.py",
    }
    write_json(os.path.join(out_dir, "meta.json"), meta)
    print("[%s] greedy %s margins %s max_abs %s" % (name, greedy, ["%.3g" % m for m in margins],
                                                     meta["max_abs"]), flush=True)
    if meta["max_abs"]["logits_full"] > 1e3 or meta["max_abs"]["encoder_full"] > 1e3:
        print("[%s] WARNING: activations exceed 1e3; InitRange may need changing" % name, flush=True)
    if min(margins) < 1e-2:
        print("[%s] WARNING: a greedy step has a top-2 margin under 1e-2" % name, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--whisper-src", required=True, help="folder holding OpenAI's whisper/ package")
    ap.add_argument("--out", default="testdata", help="testdata folder (default: testdata)")
    ap.add_argument("--audio", help="input wav (default: <out>/audio/ref.wav)")
    ap.add_argument("--make-audio", action="store_true", help="(re)create the input wav with espeak-ng + sox")
    ap.add_argument("--configs", default="small,tiny", help="comma-separated subset of: " + ",".join(CONFIGS))
    ap.add_argument("--seed", type=int, default=1, help="weight seed for every config (default 1)")
    ap.add_argument("--small-dims", type=parse_dims, help="override small dims, e.g. n_audio_state=64,n_vocab=400")
    ap.add_argument("--tiny-dims", type=parse_dims, help="override tiny dims")
    ap.add_argument("--greedy-steps", type=int, default=8)
    ap.add_argument("--write-hf", metavar="DIR", help="also write DIR/<config>/{config.json,model.safetensors}")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args()

    check_seeded_pin()
    torch.set_num_threads(args.threads)
    args.audio = args.audio or os.path.join(args.out, "audio", "ref.wav")
    if args.make_audio:
        make_audio(args.audio)
    audio = read_wav(args.audio)
    wa, wm = load_openai_whisper(args.whisper_src)
    commit = git_commit(args.whisper_src)
    print("whisper %s torch %s audio %s (%d samples, %.2f s)" % (
        commit, torch.__version__, args.audio, audio.size, audio.size / 16000), flush=True)

    mels = {}
    # Mel frames holding audio, as transcribe.py counts them: the padded spectrogram's less 3000.
    content_frames = wa.log_mel_spectrogram(torch.from_numpy(audio), 80, padding=wa.N_SAMPLES).shape[-1] - wa.N_FRAMES
    for name in args.configs.split(","):
        cfg = dict(CONFIGS[name])
        cfg["dims"] = dict(cfg["dims"], **(getattr(args, name + "_dims") or {}))
        cfg["seed"] = args.seed
        run_config(name, cfg, args, wa, wm, audio, commit, mels, content_frames)


if __name__ == "__main__":
    main()
