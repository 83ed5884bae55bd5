#!/usr/bin/env python3
"""Time one training step of chorus-micro's architecture in PyTorch, for the side-by-side in
docs/BENCHMARKS.md (issue: training speed at or below PyTorch's step time).

The model mirrors asr/models/whisper (OpenAI's Whisper layout: conv stem with GELU, fixed
sinusoidal encoder positions, pre-LayerNorm residual blocks, key projection without bias,
tied output projection) with chorus-micro's choices from recipes/chorus-micro.json: width 256,
4 heads, 4 encoder + 2 decoder layers (the grown default: --enc-layers 6 --dec-layers 4), ReLU
feed-forward of 1024, 224 text positions. The
objective is the one training/speech uses: 0.7 * label-smoothed (0.1) cross-entropy + 0.3 * CTC
on the encoder (per-target-length mean), AdamW. Batch: 20 utterances of 4 s (400 mel frames)
with 16 text tokens each, as BenchmarkTrainStep in training/speech.

Run with Debian's torch:  /usr/bin/python3 tools/ref/train_step_bench.py --threads 2 [--bf16]
Prints the median step time (forward, backward, optimizer) over --steps steps after warm-up.
--bf16 runs the forward pass and the loss under torch.autocast("cpu", torch.bfloat16), PyTorch's
mixed precision, the counterpart of chorus train --matmul bf16.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoids(length, channels, max_timescale=10000):
    inc = torch.log(torch.tensor(float(max_timescale))) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class MHA(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = nn.Linear(d, d), nn.Linear(d, d, bias=False), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x, xa=None, causal=False):
        b, s, d = x.shape
        src = x if xa is None else xa
        q = self.q(x).view(b, s, self.h, -1).transpose(1, 2)
        k = self.k(src).view(b, src.shape[1], self.h, -1).transpose(1, 2)
        v = self.v(src).view(b, src.shape[1], self.h, -1).transpose(1, 2)
        att = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
        if causal:
            att = att.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
        y = att.softmax(-1) @ v
        return self.o(y.transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    def __init__(self, d, h, ffn, cross):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), MHA(d, h)
        self.cross = MHA(d, h) if cross else None
        self.ln2 = nn.LayerNorm(d) if cross else None
        self.ln3 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Linear(ffn, d))

    def forward(self, x, xa=None, causal=False):
        x = x + self.attn(self.ln1(x), causal=causal)
        if self.cross is not None:
            x = x + self.cross(self.ln2(x), xa)
        return x + self.mlp(self.ln3(x))


class Micro(nn.Module):
    def __init__(self, vocab, d=256, h=4, enc=4, dec=2, ffn=1024, mels=80, text_ctx=224):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("pos", sinusoids(1500, d))
        self.enc = nn.ModuleList(Block(d, h, ffn, False) for _ in range(enc))
        self.ln_enc = nn.LayerNorm(d)
        self.tok = nn.Embedding(vocab, d)
        self.tpos = nn.Parameter(torch.zeros(text_ctx, d))
        self.dec = nn.ModuleList(Block(d, h, ffn, True) for _ in range(dec))
        self.ln_dec = nn.LayerNorm(d)
        self.ctc = nn.Linear(d, vocab)

    def forward(self, mel, tokens):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1)
        x = x + self.pos[: x.shape[1]]
        for b in self.enc:
            x = b(x)
        xa = self.ln_enc(x)
        y = self.tok(tokens) + self.tpos[: tokens.shape[1]]
        for b in self.dec:
            y = b(y, xa, causal=True)
        return self.ln_dec(y) @ self.tok.weight.T, self.ctc(xa)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=2022)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (mixed precision)")
    ap.add_argument("--enc-layers", type=int, default=4, help="encoder layers (the grown default: 6)")
    ap.add_argument("--dec-layers", type=int, default=2, help="decoder layers (the grown default: 4)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = Micro(a.vocab, enc=a.enc_layers, dec=a.dec_layers)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01)
    mel = torch.randn(a.batch, 80, a.frames)
    seq = torch.randint(3, 200, (a.batch, a.tokens + 3))
    inp, tgt = seq[:, :-1], seq[:, 1:]
    labels = seq[:, 2:-1]
    ctc = nn.CTCLoss(blank=a.vocab - 1, reduction="mean", zero_infinity=True)
    times = []
    for i in range(a.steps + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits, h = m(mel, inp)
            ce = F.cross_entropy(logits.float().reshape(-1, a.vocab), tgt.reshape(-1), label_smoothing=0.1)
            lp = h.float().log_softmax(-1).transpose(0, 1)
            l_ctc = ctc(lp, labels, torch.full((a.batch,), h.shape[1]), torch.full((a.batch,), labels.shape[1]))
            loss = 0.7 * ce + 0.3 * l_ctc
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    print("torch %s%s threads %d batch %dx%d frames: median step %.1f ms (runs %s)" % (
        torch.__version__, " bf16 autocast" if a.bf16 else "", a.threads, a.batch, a.frames, statistics.median(times),
        " ".join("%.0f" % t for t in times)))


if __name__ == "__main__":
    main()
