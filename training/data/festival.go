package data

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// festivalPrelude defines chorus_t2w, the steps of text2wave's main (Debian
// festival's /usr/bin/text2wave: tts_file over the text file with a hook that
// appends each utterance's samples to the open RIFF file, then the header
// rewritten with the total sample count), as a function a long-lived festival
// runs once per utterance. setup is the form text2wave would get as -eval
// (the voice function, then any Duration_Stretch): each voice function sets
// Duration_Stretch itself, so nothing of one utterance's setup carries over to
// the next.
const festivalPrelude = `(gc-status nil)
(defvar chorus_fp nil)
(defvar chorus_total 0)
(defvar chorus_utt nil)
(defvar chorus_ok nil)
(define (chorus_save utt)
  (if (eq? chorus_total 0)
      (wave.save.header chorus_fp (utt.wave utt) 'riff nil (list (list "numsamples" 0))))
  (set! chorus_total (+ chorus_total (get_param 'num_samples (wave.info (utt.wave utt)) 0)))
  (wave.save.data.fp (utt.wave utt) chorus_fp 'riff nil)
  (set! chorus_utt utt))
(set! tts_hooks (list utt.synth chorus_save))
(define (chorus_t2w setup in out)
  (eval setup)
  (set! chorus_total 0)
  (set! chorus_utt nil)
  (set! chorus_fp (fopen out "wb"))
  (tts_file in (tts_find_text_mode in auto-text-mode-alist))
  (if (not chorus_utt) (error "no utterance in the text"))
  (fseek chorus_fp 0 0)
  (wave.save.header chorus_fp (utt.wave chorus_utt) 'riff nil (list (list "numsamples" chorus_total)))
  (fclose chorus_fp)
  (set! chorus_fp nil))
`

const (
	// festivalDone starts the line festival writes to stderr after each
	// utterance: stderr is unbuffered (stdout is not, on a pipe) and carries
	// festival's own error messages, which come before it.
	festivalDone = "chorus-done "
	// festivalMaxJobs restarts the process now and then, so that whatever
	// festival's heap gathers over thousands of utterances is let go.
	festivalMaxJobs = 2000
	// festivalTimeout bounds one utterance (a sentence takes well under a
	// second); a process that does not answer in time is killed.
	festivalTimeout = 2 * time.Minute
)

// festivalProc is one long-lived festival process that speaks utterances as
// text2wave would, byte for byte (TestFestivalMatchesText2wave). text2wave
// starts festival afresh for every utterance, and loading festival's init
// files and a voice costs ~0.2 s of CPU: more than a diphone voice spends on
// a sentence, and most of a corpus's synthesis time. Each synth worker owns
// one; it is not safe for concurrent use.
type festivalProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stderr, line by line; closed when the process exits
	jobs  int
}

// festivalSetup is the setup form for v and p: what text2wave gets as -eval.
func festivalSetup(v Voice, p VoiceParams) string {
	s := "(voice_" + v.Name + ")"
	if p.Stretch != 0 {
		s += " (Parameter.set 'Duration_Stretch " + strconv.FormatFloat(p.Stretch, 'f', 2, 64) + ")"
	}
	return "(begin " + s + ")"
}

// schemeString quotes s as a Scheme string literal.
func schemeString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// speak writes the WAV of textFile's text spoken by v with p to out. Any
// failure kills the process (the next call starts a new one): after an
// error festival's state, an open file say, is not worth trusting.
func (f *festivalProc) speak(ctx context.Context, v Voice, p VoiceParams, textFile, out string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.cmd != nil && f.jobs >= festivalMaxJobs {
		f.close()
	}
	if f.cmd == nil {
		if err := f.start(); err != nil {
			return err
		}
	}
	f.jobs++
	form := fmt.Sprintf("(begin (set! chorus_ok nil) (chorus_t2w '%s %s %s) (set! chorus_ok t))\n(format stderr \"%s%%s\\n\" (if chorus_ok \"ok\" \"failed\"))\n",
		festivalSetup(v, p), schemeString(textFile), schemeString(out), festivalDone)
	if _, err := io.WriteString(f.stdin, form); err != nil {
		f.close()
		return fmt.Errorf("festival: %w", err)
	}
	timer := time.NewTimer(festivalTimeout)
	defer timer.Stop()
	var msgs []string
	for {
		select {
		case <-ctx.Done():
			f.close()
			return ctx.Err()
		case <-timer.C:
			f.close()
			return fmt.Errorf("festival: no answer in %v", festivalTimeout)
		case line, ok := <-f.lines:
			if !ok { // it died (a crash on some texts); the exit status says how
				err := fmt.Errorf("festival exited (%v)", f.close())
				if len(msgs) > 0 {
					err = fmt.Errorf("%w: %s", err, tail([]byte(strings.Join(msgs, "; ")), 300))
				}
				return err
			}
			status, done := strings.CutPrefix(line, festivalDone)
			if !done {
				msgs = append(msgs, line)
				continue
			}
			if status == "ok" {
				return nil
			}
			f.close()
			if len(msgs) == 0 {
				return errors.New("festival: failed")
			}
			return fmt.Errorf("festival: %s", tail([]byte(strings.Join(msgs, "; ")), 300))
		}
	}
}

// start runs festival reading forms from stdin and loads the prelude.
func (f *festivalProc) start() error {
	cmd := exec.Command("festival", "--pipe")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("festival: %w", err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	f.cmd, f.stdin, f.lines, f.jobs = cmd, stdin, lines, 0
	if _, err := io.WriteString(stdin, festivalPrelude); err != nil {
		f.close()
		return fmt.Errorf("festival: %w", err)
	}
	return nil
}

// close ends the process, if any, and returns how it ended.
func (f *festivalProc) close() error {
	if f.cmd == nil {
		return nil
	}
	f.stdin.Close()
	f.cmd.Process.Kill()
	for range f.lines { // drain, so the reader goroutine ends
	}
	err := f.cmd.Wait()
	f.cmd, f.stdin, f.lines = nil, nil, nil
	return err
}
