package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpus returns n deterministic English-like sentences built from small word lists with a
// fixed linear congruential generator (not math/rand, so the text can never change under a
// new Go release and invalidate goldens).
func corpus(n int) []string {
	subjects := []string{"the cat", "the old man", "a small dog", "my sister", "the teacher", "the radio",
		"our neighbour", "the children", "the train", "a stranger", "the weather", "the river"}
	verbs := []string{"walks", "sees", "likes", "carries", "finds", "watches", "remembers", "follows",
		"opens", "paints", "hears", "answers"}
	objects := []string{"the door", "a letter", "the garden", "the window", "a red apple", "the bridge",
		"the morning news", "a quiet song", "the station", "an empty box", "the long road", "the kitchen"}
	tails := []string{".", " today.", " again.", " in the evening.", " at nine o'clock.", " with care!",
		", doesn't it?", " twice.", " (quietly).", " near the sea."}
	state := uint64(0x2545F4914F6CDD1D)
	next := func(k int) int {
		state = state*6364136223846793005 + 1442695040888963407
		return int((state >> 33) % uint64(k))
	}
	out := make([]string, n)
	for i := range out {
		s := subjects[next(len(subjects))] + " " + verbs[next(len(verbs))] + " " + objects[next(len(objects))] + tails[next(len(tails))]
		if next(4) == 0 {
			s = strings.ToUpper(s[:1]) + s[1:]
		}
		if next(10) == 0 {
			s += fmt.Sprintf(" It was %d minutes past %d.", next(60), 1+next(12))
		}
		out[i] = s
	}
	return out
}

// zipfCorpus returns n sentences of 8–20 words drawn with a Zipf-like law from a lexicon of
// made-up words (syllable strings), some capitalised, with punctuation and numbers: a
// stand-in for real transcripts with their long tail of rare words, for the training
// benchmark.
func zipfCorpus(n, lexicon int) []string {
	state := uint64(88172645463325252)
	next := func(k int) int {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		return int(state % uint64(k))
	}
	syll := []string{"ka", "to", "ri", "men", "sa", "lo", "ve", "dan", "ith", "or", "pu", "el", "str", "ong", "ae", "qui", "th", "ble"}
	words := make([]string, lexicon)
	for i := range words {
		var b strings.Builder
		for range 1 + next(4) {
			b.WriteString(syll[next(len(syll))])
		}
		words[i] = b.String()
	}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for j := range 8 + next(13) {
			// rank r with probability ~ 1/r: the inverse of a uniform draw, truncated.
			r := lexicon * (1 + next(1000)) / (1 + next(1000)*next(1000)/10)
			w := words[min(r, lexicon-1)]
			if j == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			switch next(12) {
			case 0:
				b.WriteByte(',')
			case 1:
				fmt.Fprintf(&b, " %d", next(2000))
			}
		}
		b.WriteString([]string{".", "?", "!"}[next(3)])
		out[i] = b.String()
	}
	return out
}

// handVocab spells a vocabulary by hand: the 256 byte tokens (ids in byteOrder, as GPT-2's),
// then one token per merge rule whose result is new. Merges are given as raw text pairs.
func handVocab(merges [][2]string) (map[string]int, []string) {
	vocab := map[string]int{}
	for id, b := range byteOrder {
		vocab[bytesToSymbols([]byte{b})] = id
	}
	var lines []string
	for _, m := range merges {
		l, r := bytesToSymbols([]byte(m[0])), bytesToSymbols([]byte(m[1]))
		if _, ok := vocab[l+r]; !ok {
			vocab[l+r] = len(vocab)
		}
		lines = append(lines, l+" "+r)
	}
	return vocab, lines
}

// writeFolder writes a tokenizer folder: vocab.json, merges.txt (with a #version header), and
// the given extra files.
func writeFolder(t testing.TB, vocab map[string]int, merges []string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	vb, err := json.Marshal(vocab)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"vocab.json": string(vb),
		"merges.txt": "#version: 0.2\n" + strings.Join(merges, "\n") + "\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, data := range files {
		if data == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// addedTokensJSON lists Whisper's specials from first on, as added_tokens.json would.
func addedTokensJSON(first int, languages []string, withTimestamps bool, noSpeechName string) string {
	m := map[string]int{}
	names := layoutNames(languages)
	for i, n := range names {
		if !withTimestamps && i >= len(names)-NumTimestamps {
			continue
		}
		if n == NameNoSpeech {
			n = noSpeechName
		}
		m[n] = first + i
	}
	b, _ := marshalNoEscape(m)
	return string(b)
}

// naiveBPE is the reference merge loop: while any adjacent pair has a rule, merge the leftmost
// occurrence of the best-ranked one.
func naiveBPE(t *Tokenizer, piece string) []int {
	ids := make([]int32, len(piece))
	for i := range len(piece) {
		ids[i] = t.byteID[piece[i]]
	}
	for {
		best, at := int32(-1), -1
		for i := 0; i+1 < len(ids); i++ {
			if m, ok := t.merges[pairKey(ids[i], ids[i+1])]; ok && (at < 0 || m.rank < best) {
				best, at = m.rank, i
			}
		}
		if at < 0 {
			break
		}
		ids = slices.Replace(ids, at, at+2, t.merges[pairKey(ids[at], ids[at+1])].result)
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func naiveEncode(t *Tokenizer, text string) []int {
	var out []int
	for _, p := range piecesNaive(text) {
		out = append(out, naiveBPE(t, p)...)
	}
	return out
}
