package data

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// This file holds the pure parsers for each text source; text.go finds the
// files and applies DATA.md's cut points.

// parseBrownLine turns one line of the Brown corpus's tagged text
// ("\tThe/at jury/nn said/vbd ./.") into plain text ("The jury said.").
// The tag is everything after the last '/' of a token; tokens without one
// are kept whole. Tokenised punctuation is re-attached: closing marks join
// the word before them and opening quotes the word after, and the corpus's
// quotes (two backticks to open, two apostrophes to close) become plain
// double quotes.
func parseBrownLine(line string) string {
	var b strings.Builder
	glueNext := true // no space before the first word
	prev := ""
	for _, tok := range strings.Fields(line) {
		w := tok
		if k := strings.LastIndexByte(tok, '/'); k > 0 {
			w = tok[:k]
		}
		// The corpus doubles the semicolon that ends a clause it splits
		// off as a sentence (";/. ;/."); one is enough.
		if w == "" || (w == prev && isClosingPunct(w)) {
			continue
		}
		prev = w
		switch w {
		case "``", "`":
			if !glueNext {
				b.WriteByte(' ')
			}
			b.WriteString(`"`)
			glueNext = true
			continue
		case "''", "'":
			b.WriteString(`"`)
			glueNext = false
			continue
		case "(", "[":
			if !glueNext {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			glueNext = true
			continue
		}
		if !glueNext && !isClosingPunct(w) {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		glueNext = false
	}
	return b.String()
}

func isClosingPunct(w string) bool {
	switch w {
	case ".", ",", ";", ":", "?", "!", ")", "]", "'s", "n't":
		return true
	}
	return false
}

// splitCookies splits a fortune file into cookies: runs of lines separated
// by lines holding only '%'. Runs that are empty or only whitespace are not
// cookies (a file may begin with '%' or end without one).
func splitCookies(r io.Reader) ([]string, error) {
	var cookies []string
	var cur strings.Builder
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			cookies = append(cookies, cur.String())
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "%" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("split cookies: %w", err)
	}
	flush()
	return cookies, nil
}

// cookieText drops attribution lines ("\t\t-- Mark Twain") from a cookie and
// joins the rest into running text for SplitSentences.
func cookieText(cookie string) string {
	var parts []string
	for _, line := range strings.Split(cookie, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") || strings.HasPrefix(t, "- ") {
			continue
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// wordnetStop is the noun synset that ends the allowed half of WordNet
// (DATA.md).
const wordnetStop = "06871127"

var quoted = regexp.MustCompile(`"([^"]*)"`)

// parseWordNetLine parses one line of a WordNet 3.0 data file. It returns
// the synset offset and the quoted usage examples of its gloss (the text
// after " | "). License header lines (starting with two spaces) return ok
// false, as do lines too malformed to carry an offset.
func parseWordNetLine(line string) (offset string, examples []string, ok bool) {
	if strings.HasPrefix(line, "  ") || len(line) < 9 || line[8] != ' ' {
		return "", nil, false
	}
	offset = line[:8]
	for i := 0; i < 8; i++ {
		if offset[i] < '0' || offset[i] > '9' {
			return "", nil, false
		}
	}
	k := strings.Index(line, " | ")
	if k < 0 {
		return offset, nil, true
	}
	for _, m := range quoted.FindAllStringSubmatch(line[k+3:], -1) {
		if ex := strings.TrimSpace(m[1]); ex != "" {
			examples = append(examples, ex)
		}
	}
	return offset, examples, true
}

// scanLines calls fn for each line of data (without the line ending) until
// fn returns false.
func scanLines(data []byte, fn func(line string) bool) {
	for len(data) > 0 {
		line := data
		if k := bytes.IndexByte(data, '\n'); k >= 0 {
			line, data = data[:k], data[k+1:]
		} else {
			data = nil
		}
		if !fn(strings.TrimRight(string(line), "\r")) {
			return
		}
	}
}
