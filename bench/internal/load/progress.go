package load

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress modes.
const (
	ProgressAuto  = "auto"  // a bar on a terminal, lines otherwise
	ProgressBar   = "bar"   // a bar redrawn in place
	ProgressLines = "lines" // one line every few seconds
	ProgressOff   = "off"
)

// Progress shows how far a phase has come: a bar redrawn in place on a terminal, otherwise one
// line every Every. The zero value with a nil writer shows nothing.
type Progress struct {
	W     io.Writer
	Mode  string
	Every time.Duration // for lines; zero means 5s
}

// IsTerminal reports whether w is a character device (a terminal), without any dependency.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *Progress) mode() string {
	if p == nil || p.W == nil {
		return ProgressOff
	}
	switch p.Mode {
	case "", ProgressAuto:
		if IsTerminal(p.W) {
			return ProgressBar
		}
		return ProgressLines
	}
	return p.Mode
}

// Start shows the progress of phase name: total operations (0: unknown) and limit (0: none)
// bound it; done counts finished operations and failed (may be nil) the failures so far.
// The returned stop function ends the display and waits for it; call it once.
func (p *Progress) Start(name string, total int64, limit time.Duration, done *atomic.Int64, failed func() int64) (stop func()) {
	mode := p.mode()
	if mode == ProgressOff {
		return func() {}
	}
	every := 250 * time.Millisecond
	if mode == ProgressLines {
		every = p.Every
		if every <= 0 {
			every = 5 * time.Second
		}
	}
	start := time.Now()
	line := func() string {
		el := time.Since(start)
		n := done.Load()
		frac := 0.0
		if total > 0 {
			frac = float64(n) / float64(total)
		}
		if limit > 0 {
			frac = max(frac, el.Seconds()/limit.Seconds())
		}
		frac = min(frac, 1)
		var f int64
		if failed != nil {
			f = failed()
		}
		of := ""
		if total > 0 {
			of = fmt.Sprintf("/%d", total)
		}
		stats := fmt.Sprintf("%d%s ops  %.1fs  %.0f ops/s  %d failed", n, of, el.Seconds(), float64(n)/max(el.Seconds(), 1e-9), f)
		if mode == ProgressLines {
			return fmt.Sprintf("%s: %3.0f%%  %s", name, frac*100, stats)
		}
		const width = 30
		fill := int(frac * width)
		return fmt.Sprintf("%-18s [%s%s] %3.0f%%  %s", name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, stats)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				if mode == ProgressBar {
					fmt.Fprintf(p.W, "\r\033[K%s\n", line())
				} else {
					fmt.Fprintln(p.W, line()+"  (done)")
				}
				return
			case <-t.C:
				if mode == ProgressBar {
					fmt.Fprintf(p.W, "\r\033[K%s", line())
				} else {
					fmt.Fprintln(p.W, line())
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
		})
	}
}
