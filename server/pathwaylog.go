package server

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chorus-asr/chorus/experts"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
)

// pathwayLog exports every final's activation pathway as zstd-compressed JSON lines
// (experts.Pathway.WriteJSONL's format, one line per layer, tagged with the stream's model,
// variant, router, arm and time), so pathways can be studied over time with `chorus
// pathways`. A single goroutine writes; streams hand records over a bounded channel and
// never wait: when the writer falls behind, records are dropped and counted. Files rotate
// by size and age and are named by their start time, pathways-20261128T081500Z.jsonl.zst.
type pathwayLog struct {
	dir string
	log *slog.Logger
	in  chan *experts.Pathway
	wg  sync.WaitGroup

	mu     sync.RWMutex // guards closed against add racing close
	closed bool

	written, dropped prometheus.Counter
}

// Rotation limits of the pathway export.
const (
	pathwayFileBytes = 64 << 20 // compressed bytes per file
	pathwayFileAge   = time.Hour
	pathwayQueue     = 256
)

func newPathwayLog(dir string, log *slog.Logger, reg prometheus.Registerer) (*pathwayLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pathway log: %w", err)
	}
	p := &pathwayLog{
		dir: dir, log: log, in: make(chan *experts.Pathway, pathwayQueue),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "chorus_pathways_exported_total", Help: "Activation pathways (one per final of a routed stream) written to the pathway export."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "chorus_pathways_dropped_total", Help: "Activation pathways dropped because the export writer fell behind."}),
	}
	reg.MustRegister(p.written, p.dropped)
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// add queues a pathway for export without blocking; after close it drops it.
func (p *pathwayLog) add(pw *experts.Pathway) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.dropped.Inc()
		return
	}
	select {
	case p.in <- pw:
	default:
		p.dropped.Inc()
	}
}

// close flushes and closes the current file once every queued pathway is written.
func (p *pathwayLog) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.in)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// file is one open export file.
type pathwayFile struct {
	f       *os.File
	counter *countWriter
	zw      *zstd.Encoder
	bw      *bufio.Writer
	opened  time.Time
}

type countWriter struct {
	f *os.File
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.f.Write(b)
	c.n += int64(n)
	return n, err
}

func (p *pathwayLog) open() (*pathwayFile, error) {
	now := time.Now().UTC()
	name := filepath.Join(p.dir, "pathways-"+now.Format("20060102T150405Z")+".jsonl.zst")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cw := &countWriter{f: f}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &pathwayFile{f: f, counter: cw, zw: zw, bw: bufio.NewWriterSize(zw, 64<<10), opened: now}, nil
}

func (pf *pathwayFile) close() error {
	return errors.Join(pf.bw.Flush(), pf.zw.Close(), pf.f.Sync(), pf.f.Close())
}

func (p *pathwayLog) run() {
	defer p.wg.Done()
	var cur *pathwayFile
	flush := time.NewTicker(10 * time.Second) // a crash loses at most this much
	defer flush.Stop()
	finish := func() {
		if cur != nil {
			if err := cur.close(); err != nil {
				p.log.Warn("pathway export: close", "err", err)
			}
			cur = nil
		}
	}
	defer finish()
	for {
		select {
		case pw, ok := <-p.in:
			if !ok {
				return
			}
			if cur != nil && (cur.counter.n > pathwayFileBytes || time.Since(cur.opened) > pathwayFileAge) {
				finish()
			}
			if cur == nil {
				var err error
				if cur, err = p.open(); err != nil {
					p.log.Warn("pathway export: open", "err", err)
					p.dropped.Inc()
					continue
				}
			}
			if err := pw.WriteJSONL(cur.bw); err != nil {
				p.log.Warn("pathway export: write", "err", err)
				p.dropped.Inc()
				continue
			}
			p.written.Inc()
		case <-flush.C:
			if cur != nil {
				if err := errors.Join(cur.bw.Flush(), cur.zw.Flush()); err != nil {
					p.log.Warn("pathway export: flush", "err", err)
				}
			}
		}
	}
}
