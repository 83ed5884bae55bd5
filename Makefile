# chorus — build, test and run. `make run` and `make test` work on a fresh Debian machine:
# both install what they need first (Debian packages through apt-get, Go modules through
# the module proxy).

GO      ?= go
BIN     := bin/chorus
PKGS    := ./...
APT_PKGS := build-essential pkg-config libopenblas-dev espeak-ng sox flac protobuf-compiler portaudio19-dev opus-tools chromium zstd
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DATA_PKGS := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortunes \
	wordnet-base asterisk-core-sounds-en asterisk-core-sounds-en-wav npm sox
CORPUS_N ?= 12000
CORPUS2_N ?= 60000

.PHONY: snapshot embed all deps deps-data build test run bench proto fuzz lint clean corpus corpus-v2 train moe moe-routed flagship lm

all: build

# deps installs the Debian packages chorus builds and tests with, and the Go modules.
deps: .deps-stamp
.deps-stamp: Makefile go.mod
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download
	@touch $@

# deps-data installs the text-to-speech voices and text sources of the training corpus
# (../shared/DATA.md lists what may be used).
deps-data:
	@missing=""; for p in $(DATA_PKGS); do \
		if [ $$p = npm ] && command -v npm >/dev/null 2>&1; then continue; fi; \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# corpus synthesises the training corpus (deterministic for a given seed and N; resumable).
# corpus/v1 is what the from-scratch recipe trained on, and its dev splits are the ones every
# figure in docs/ is measured on.
corpus: build deps-data
	./$(BIN) data synth --out corpus/v1 --n $(CORPUS_N) --seed 1

# corpus-v2 extends corpus/v1 to CORPUS2_N utterances for the continuation recipe: utterance i
# of a corpus does not depend on N, so v2 starts as a hard-linked copy of v1 (synth writes
# through temporary files and renames, never into an existing file) and synth adds the rest.
# Its first dev utterances are v1's.
corpus-v2: corpus
	@[ -d corpus/v2 ] || { echo "copying corpus/v1 to corpus/v2 (hard links)"; cp -al corpus/v1 corpus/v2; }
	./$(BIN) data synth --out corpus/v2 --n $(CORPUS2_N) --seed 1

# train continues the default model's training (recipes/chorus-micro-grow2.json: the embedded
# chorus-micro deepened again, 6+4 → 9+5 layers, then 10,000 steps on corpus/v2 — the run under
# way since session 13), in the background-friendly way: niced, checkpointing every few minutes
# (the newest 8 kept, for `chorus train --average`), resumable with the same command. On a fresh
# clone the run starts from the checkpoint committed in resume/ when there is one (see
# snapshot), else from the embedded model. The runs that made the embedded model, in order
# (TRAIN_RECIPE=… TRAIN_WORK=… selects any): recipes/chorus-micro.json (from scratch, 4+2
# layers, 20,000 steps on corpus/v1), recipes/chorus-micro-continue.json (corpus/v2, stopped at
# step 15,067, its dev WER flat at 4+2 layers), recipes/chorus-micro-grow.json (deepened to 6+4
# layers, each new layer a copy of its neighbour with zero output projections so it starts from
# the parent's function, 12,000 steps on corpus/v2); recipes/chorus-micro-polish.json (a second
# cosine on the 6+4 model) did not help and was not embedded.
TRAIN_RECIPE ?= recipes/chorus-micro-grow2.json
TRAIN_WORK ?= runs/chorus-micro-grow2
RESUME_DIR := resume/$(notdir $(TRAIN_WORK))
train: build corpus-v2
	@if [ ! -d $(TRAIN_WORK)/checkpoints ] && [ -d $(RESUME_DIR)/checkpoints ]; then \
		echo "seeding $(TRAIN_WORK) from the committed checkpoint in $(RESUME_DIR)"; \
		mkdir -p $(TRAIN_WORK)/checkpoints && cp $(RESUME_DIR)/train.csv $(TRAIN_WORK)/ && cp -r $(RESUME_DIR)/tokenizer $(TRAIN_WORK)/ && \
		for z in $(RESUME_DIR)/checkpoints/*.chk.zst.part-aa; do \
			[ -e "$$z" ] || continue; base=$${z%.zst.part-aa}; \
			cat "$$base".zst.part-* | zstd -d -q -o $(TRAIN_WORK)/checkpoints/$$(basename "$$base") || exit 1; \
		done; \
		cp $(RESUME_DIR)/checkpoints/*.chk $(TRAIN_WORK)/checkpoints/ 2>/dev/null || true; \
	fi
	nice -n 10 ./$(BIN) train --recipe $(TRAIN_RECIPE) --work $(TRAIN_WORK) --resume --matmul auto --memory-limit-mb 12288 --keep-checkpoints 8

# snapshot copies the run's newest checkpoint (the only one kept there), its metrics log and
# tokenizer into resume/, so that `make train` on a fresh clone continues the run. The
# checkpoint is zstd-compressed and cut into parts under 64 MB (the grown model's is 113 MB:
# over what some Git hosts take in one file); `make train` joins and decompresses them.
# The trainer writes a checkpoint every few minutes and on SIGTERM; stop it first to lose nothing.
snapshot:
	@newest=$$(ls $(TRAIN_WORK)/checkpoints/ckpt-*.chk 2>/dev/null | sort | tail -1); \
	if [ -z "$$newest" ]; then echo "no checkpoint in $(TRAIN_WORK)/checkpoints"; exit 1; fi; \
	name=$$(basename "$$newest"); \
	rm -rf $(RESUME_DIR)/.tmp && mkdir -p $(RESUME_DIR)/.tmp && \
	zstd -q -6 -T0 -c "$$newest" | split -b 60M - $(RESUME_DIR)/.tmp/$$name.zst.part- && \
	rm -rf $(RESUME_DIR)/checkpoints && mv $(RESUME_DIR)/.tmp $(RESUME_DIR)/checkpoints && \
	cp $(TRAIN_WORK)/train.csv $(RESUME_DIR)/train.csv && \
	rm -rf $(RESUME_DIR)/tokenizer && cp -r $(TRAIN_WORK)/tokenizer $(RESUME_DIR)/tokenizer && \
	echo "$(RESUME_DIR) now holds $$name ($$(ls $(RESUME_DIR)/checkpoints | wc -l) parts)"

# embed makes a training run's variant the embedded default model: copies it into
# asr/defaultmodel/chorus-micro, scores it on the three development splits into its card
# (chorus eval --card; dev also in timestamp mode, what chorus transcribe and the server decode
# in, as dev-timestamps) and rebuilds the binary around it. Run it on its own, then
# `make moe flagship`, which read the new default from asr/defaultmodel (not from a binary).
EMBED_FROM ?= $(TRAIN_WORK)/variant
EVAL_LIMIT ?= 150
embed: build corpus-v2
	@test -f $(EMBED_FROM)/config.json || { echo "no variant in $(EMBED_FROM): a training run writes one when it ends or is stopped"; exit 1; }
	rm -rf asr/defaultmodel/chorus-micro && cp -r $(EMBED_FROM) asr/defaultmodel/chorus-micro
	$(MAKE) lm LM_DIR=asr/defaultmodel/chorus-micro
	for s in dev dev-voices real-dev; do \
		./$(BIN) eval --model asr/defaultmodel/chorus-micro --manifest corpus/v1/$$s.jsonl --limit $(EVAL_LIMIT) --card || exit 1; \
	done
	./$(BIN) eval --model asr/defaultmodel/chorus-micro --manifest corpus/v1/dev.jsonl --limit $(EVAL_LIMIT) --card --timestamps --key dev-timestamps
	$(GO) build -o $(BIN) ./cmd/chorus

# lm builds a variant folder's token 8-gram language model (lm.arpa.zst, interpolated
# Kneser-Ney, n-grams of order 3+ seen fewer than 3 times pruned) from the training text, for
# shallow fusion in beam search (`chorus lm build`; decode.Options.LMWeight). LM_DIR=… picks the
# variant (default: the embedded default model; the flagship shares its tokenizer).
LM_DIR ?= asr/defaultmodel/chorus-micro
LM_FLAGS = --manifest corpus/v2/train.jsonl --manifest corpus/v2/real-train.jsonl --order 8 --min-count 3
lm: build corpus-v2
	./$(BIN) lm build --model $(LM_DIR) $(LM_FLAGS) --out $(LM_DIR)/lm.arpa.zst

# moe builds chorus-micro-moe, the MoE default the binary embeds: the embedded default split
# into 64 experts per layer (co-activation, MLP routers 128 wide trained on 60,000 tokens per
# layer: runs/chorus-micro-moe64), then fine-tuned for 1500 steps under its routers at
# k/E = 1/4 in the encoder with logit distillation from the dense default
# (recipes/chorus-micro-moe64-routed-kd.json) — a full variant folder, its weights its own,
# serving mlp:0.25/enc unless a request names another router. Rerun after the default model is
# regenerated: runs of an older default (its weights' checksum in default.sha256, a run
# without that record counting as older) are discarded, an interrupted fine-tune resumes. (16 experts over the unchanged default's
# weights, as an overlay, is `chorus moe $(MOE_FLAGS) --overlay DIR`.)
MOE_CLIPS ?= 200
MOE_FLAGS = --model asr/defaultmodel/chorus-micro --out runs/chorus-micro-moe --experts 16 --method coact --router-hidden 64 \
	--manifest corpus/v1/train.jsonl --limit $(MOE_CLIPS) --max-tokens 12000 --epochs 20 --seed 1
MOE_WORK := runs/chorus-micro-moe64-routed-kd
moe: build corpus-v2
	@sum=$$(sha256sum asr/defaultmodel/chorus-micro/model.safetensors.zst | cut -d' ' -f1); \
	if [ -d runs/chorus-micro-moe64 ] && [ "$$(cat runs/chorus-micro-moe64/default.sha256 2>/dev/null)" != "$$sum" ]; then \
		echo "discarding runs/chorus-micro-moe64 and $(MOE_WORK): made from another default model (or one not recorded)"; rm -rf runs/chorus-micro-moe64 $(MOE_WORK); \
	fi
	[ -f runs/chorus-micro-moe64/config.json ] || nice -n 10 ./$(BIN) moe $(MOE64_FLAGS)
	sha256sum asr/defaultmodel/chorus-micro/model.safetensors.zst | cut -d' ' -f1 > runs/chorus-micro-moe64/default.sha256
	nice -n 10 ./$(BIN) train --recipe recipes/chorus-micro-moe64-routed-kd.json --work $(MOE_WORK) --resume --matmul auto
	rm -rf asr/defaultmodel/chorus-micro-moe && cp -r $(MOE_WORK)/variant asr/defaultmodel/chorus-micro-moe
	./$(BIN) eval --model asr/defaultmodel/chorus-micro-moe --manifest corpus/v1/dev.jsonl --limit $(EVAL_LIMIT) --card
	$(GO) build -o $(BIN) ./cmd/chorus

# moe-routed fine-tunes the MoE-fied default's experts under their MLP routers at k/E = 1/4
# (600 steps on corpus/v1: routed, routed with distillation from the dense parent, encoder
# only; and routed with distillation on corpus/v2), with the dense control (the same fine-tune
# of the dense default) to compare with:
# `chorus ab --model runs/chorus-micro-moe-routed/variant --arms dense,mlp:0.25 …`. It MoE-fies
# into runs/chorus-micro-moe when that is missing, leaving the embedded overlay alone.
# The 64-expert split (16-unit experts, routers 128 wide trained on 60,000 tokens per layer)
# holds the default model's sparsity far better at k/E = 1/4 than 16 experts do;
# recipes/chorus-micro-moe64-routed-kd.json fine-tunes it under mlp:0.25/enc.
MOE64_FLAGS = --model asr/defaultmodel/chorus-micro --out runs/chorus-micro-moe64 --experts 64 --method coact --router-hidden 128 \
	--manifest corpus/v1/train.jsonl --limit 400 --max-tokens 60000 --epochs 20 --seed 1
moe-routed: build corpus-v2
	[ -f runs/chorus-micro-moe/config.json ] || nice -n 10 ./$(BIN) moe $(MOE_FLAGS)
	[ -f runs/chorus-micro-moe64/config.json ] || nice -n 10 ./$(BIN) moe $(MOE64_FLAGS)
	for r in moe-routed moe-routed-kd moe-routed-enc moe-routed-kd-v2 dense-control moe64-routed-kd; do \
		nice -n 10 ./$(BIN) train --recipe recipes/chorus-micro-$$r.json --work runs/chorus-micro-$$r --resume --matmul auto || exit 1; \
	done

# flagship prunes the embedded default model to half its encoder and decoder parameters
# (CoFi with distillation from it, 1500 steps, FFN widths kept multiples of 16:
# recipes/chorus-micro-flagship.json), fine-tunes the materialised model for 2000 steps with
# logit distillation from the default (recipes/chorus-micro-flagship-ft.json: CoFi's second
# phase, the masks fixed; the pruned model is dense and small, so these steps are cheap), then
# MoE-fies it into 16 experts per layer (a block CoFi emptied becomes an empty block, no
# experts and no router), its MLP routers there for any request that names them
# (`--router mlp:0.5/enc`); by default it runs its pruned blocks dense, because on the pruned
# model routing at k/E = 1/4 cost 25–29 WER points for no gain in speed (docs/BENCHMARKS.md,
# session 8): the variant the binary embeds as chorus-micro-flagship. Rerun after the default
# model is regenerated: runs of an older default (its weights' checksum in teacher.sha256) are
# discarded, an interrupted one resumes.
FLAGSHIP_WORK := runs/chorus-micro-flagship-pruned
FLAGSHIP_FT := runs/chorus-micro-flagship-ft
flagship: build
	@sum=$$(sha256sum asr/defaultmodel/chorus-micro/model.safetensors.zst | cut -d' ' -f1); \
	if [ -f $(FLAGSHIP_WORK)/teacher.sha256 ] && [ "$$(cat $(FLAGSHIP_WORK)/teacher.sha256)" != "$$sum" ]; then \
		echo "discarding $(FLAGSHIP_WORK) and $(FLAGSHIP_FT): pruned from another default model"; rm -rf $(FLAGSHIP_WORK) $(FLAGSHIP_FT); \
	fi; mkdir -p $(FLAGSHIP_WORK) && echo $$sum > $(FLAGSHIP_WORK)/teacher.sha256
	nice -n 10 ./$(BIN) train --recipe recipes/chorus-micro-flagship.json --work $(FLAGSHIP_WORK) --resume --matmul auto
	nice -n 10 ./$(BIN) train --recipe recipes/chorus-micro-flagship-ft.json --work $(FLAGSHIP_FT) --resume --matmul auto
	nice -n 10 ./$(BIN) moe --model $(FLAGSHIP_FT)/variant --out runs/chorus-micro-flagship --experts 16 --method coact \
		--router-hidden 64 --manifest corpus/v1/train.jsonl --limit $(MOE_CLIPS) --max-tokens 12000 --epochs 20 --seed 1
	rm -rf asr/defaultmodel/chorus-micro-flagship && cp -r runs/chorus-micro-flagship asr/defaultmodel/chorus-micro-flagship

build: deps
	$(GO) build -o $(BIN) ./cmd/chorus

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 30m $(PKGS)
	CGO_ENABLED=0 $(GO) build ./...

run: build
	./$(BIN) serve

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./tensor/ ./asr/...
	./$(BIN) bench --dims tiny --threads 2

proto: deps
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/chorus/v1/*.proto

# fuzz runs every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz: deps
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin .deps-stamp
