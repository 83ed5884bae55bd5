package lm

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// The ARPA back-off format (as SRILM and KenLM write it): a \data\ header with the number of
// n-grams of each order, then one section per order of lines "log10 p <tab> w1 … wn [<tab>
// log10 back-off]", then \end\. Tokens are written as their decimal ids, BOS and EOS as <s> and
// </s>, and the probability of a token the model never saw as the unigram <unk>.

const ln10 = math.Ln10

// WriteARPA writes m in the ARPA format, n-grams sorted by their ids.
func (m *NGram) WriteARPA(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "\\data\\\n")
	for n := 1; n <= m.order; n++ {
		c := len(m.grams[n-1])
		if n == 1 {
			c++ // <unk>
		}
		fmt.Fprintf(bw, "ngram %d=%d\n", n, c)
	}
	for n := 1; n <= m.order; n++ {
		fmt.Fprintf(bw, "\n\\%d-grams:\n", n)
		if n == 1 {
			fmt.Fprintf(bw, "%.6f\t<unk>\n", m.floor/ln10)
		}
		keys := make([]string, 0, len(m.grams[n-1]))
		for k := range m.grams[n-1] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := m.grams[n-1][k]
			fmt.Fprintf(bw, "%.6f\t%s", float64(e.logp)/ln10, m.words(k))
			if e.backoff != 0 {
				fmt.Fprintf(bw, "\t%.6f", float64(e.backoff)/ln10)
			}
			bw.WriteByte('\n')
		}
	}
	fmt.Fprintf(bw, "\n\\end\\\n")
	return bw.Flush()
}

// words renders a packed key as ARPA words.
func (m *NGram) words(k string) string {
	var sb strings.Builder
	for i := 0; i < len(k); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		switch id := int(binary.BigEndian.Uint16([]byte(k[i : i+2]))); id {
		case m.bos:
			sb.WriteString("<s>")
		case m.eos:
			sb.WriteString("</s>")
		default:
			sb.WriteString(strconv.Itoa(id))
		}
	}
	return sb.String()
}

// maxARPAOrder bounds the order a file may declare.
const maxARPAOrder = 12

// ReadARPA reads a model written by WriteARPA (or any ARPA file whose words are decimal token
// ids below vocab, <s>, </s> and <unk>); bos and eos are the ids <s> and </s> stand for. Lines
// before \data\ are ignored. It checks the declared counts and that every n-gram's context
// is itself stored, so that LogProb's back-off walk is well defined.
func ReadARPA(r io.Reader, bos, eos, vocab int) (*NGram, error) {
	if vocab <= 0 || vocab > 65536 || bos < 0 || bos >= vocab || eos < 0 || eos >= vocab || bos == eos {
		return nil, fmt.Errorf("arpa: vocabulary %d with BOS %d and EOS %d", vocab, bos, eos)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	next := func() (string, bool) {
		for sc.Scan() {
			line++
			if s := strings.TrimSpace(sc.Text()); s != "" {
				return s, true
			}
		}
		return "", false
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("arpa: line %d: %s", line, fmt.Sprintf(format, a...))
	}
	// Header.
	for {
		s, ok := next()
		if !ok {
			return nil, fmt.Errorf("arpa: no \\data\\ section")
		}
		if s == "\\data\\" {
			break
		}
	}
	var counts []int
	var s string
	for {
		var ok bool
		if s, ok = next(); !ok {
			return nil, fail("unexpected end of the header")
		}
		rest, found := strings.CutPrefix(s, "ngram ")
		if !found {
			break
		}
		ns, cs, ok := strings.Cut(rest, "=")
		n, err1 := strconv.Atoi(strings.TrimSpace(ns))
		c, err2 := strconv.Atoi(strings.TrimSpace(cs))
		if !ok || err1 != nil || err2 != nil || n != len(counts)+1 || c < 0 || c > 1<<28 {
			return nil, fail("bad count line %q", s)
		}
		if n > maxARPAOrder {
			return nil, fail("order %d above %d", n, maxARPAOrder)
		}
		counts = append(counts, c)
	}
	if len(counts) == 0 {
		return nil, fail("no ngram counts")
	}
	m := &NGram{order: len(counts), bos: bos, eos: eos, vocab: vocab, grams: make([]map[string]entry, len(counts)), floor: math.Inf(-1)}
	for n := 1; n <= m.order; n++ {
		if s != fmt.Sprintf("\\%d-grams:", n) {
			return nil, fail("want \\%d-grams:, got %q", n, s)
		}
		g := make(map[string]entry, min(counts[n-1], 1<<20))
		m.grams[n-1] = g
		read := 0
		for {
			var ok bool
			if s, ok = next(); !ok {
				return nil, fail("unexpected end in the %d-grams", n)
			}
			if strings.HasPrefix(s, "\\") {
				break
			}
			f := strings.Fields(s)
			if len(f) != n+1 && len(f) != n+2 {
				return nil, fail("%d-gram line with %d fields", n, len(f))
			}
			lp, err := strconv.ParseFloat(f[0], 64)
			if err != nil || math.IsNaN(lp) || lp > 0 {
				return nil, fail("bad log-probability %q", f[0])
			}
			var bo float64
			if len(f) == n+2 {
				if bo, err = strconv.ParseFloat(f[n+1], 64); err != nil || math.IsNaN(bo) || math.IsInf(bo, 0) {
					return nil, fail("bad back-off %q", f[n+1])
				}
			}
			read++
			if n == 1 && f[1] == "<unk>" {
				m.floor = lp * ln10
				continue
			}
			ids := make([]int, n)
			for i, w := range f[1 : n+1] {
				switch w {
				case "<s>":
					ids[i] = bos
				case "</s>":
					ids[i] = eos
				default:
					id, err := strconv.Atoi(w)
					if err != nil || id < 0 || id >= vocab {
						return nil, fail("bad token %q (ids below %d, <s>, </s>, <unk>)", w, vocab)
					}
					ids[i] = id
				}
			}
			k := key(ids)
			if _, dup := g[k]; dup {
				return nil, fail("%d-gram %q twice", n, strings.Join(f[1:n+1], " "))
			}
			g[k] = entry{logp: float32(lp * ln10), backoff: float32(bo * ln10)}
		}
		if read != counts[n-1] {
			return nil, fmt.Errorf("arpa: %d %d-grams, the header says %d", read, n, counts[n-1])
		}
	}
	if s != "\\end\\" {
		return nil, fail("want \\end\\, got %q", s)
	}
	if math.IsInf(m.floor, -1) {
		return nil, fmt.Errorf("arpa: no <unk> unigram (the probability of unseen tokens)")
	}
	for n := 2; n <= m.order; n++ {
		for k := range m.grams[n-1] {
			if _, ok := m.grams[n-2][k[:len(k)-2]]; !ok {
				return nil, fmt.Errorf("arpa: %d-gram %s has no stored context", n, m.words(k))
			}
		}
	}
	m.index()
	return m, nil
}

// zstdMagic starts every zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Load is ReadARPA of r, decompressing it first when it is zstd-compressed (a variant's
// lm.arpa.zst).
func Load(r io.Reader, bos, eos, vocab int) (*NGram, error) {
	br := bufio.NewReader(r)
	if head, err := br.Peek(4); err == nil && string(head) == string(zstdMagic) {
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, fmt.Errorf("arpa: %w", err)
		}
		defer zr.Close()
		return ReadARPA(zr, bos, eos, vocab)
	}
	return ReadARPA(br, bos, eos, vocab)
}

// SaveZstd writes m in the ARPA format, zstd-compressed.
func (m *NGram) SaveZstd(w io.Writer) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return err
	}
	if err := m.WriteARPA(zw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}
