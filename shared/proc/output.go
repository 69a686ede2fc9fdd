package proc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// maxLine bounds one output line. A child that writes more without a newline has its output
// cut into lines of this size, so one runaway process cannot grow the launcher's memory.
const maxLine = 64 << 10

// colors are ANSI foreground colours handed to processes in start order.
var colors = [...]string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94", "31"}

// sink serialises whole lines onto one writer: every line is one Write call made under the
// lock, so lines of different processes interleave but are never torn.
type sink struct {
	mu  sync.Mutex
	out io.Writer
	buf []byte
	raw []byte
}

func (s *sink) writeLine(prefix string, line []byte, suffix string, copyTo io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf[:0], prefix...)
	s.buf = append(s.buf, line...)
	s.buf = append(s.buf, suffix...)
	s.buf = append(s.buf, '\n')
	_, _ = s.out.Write(s.buf)
	if copyTo != nil {
		s.raw = append(append(s.raw[:0], line...), '\n')
		_, _ = copyTo.Write(s.raw)
	}
}

// tagger renders a process's fixed-width, optionally coloured name tag.
type tagger struct {
	prefix string // "name   | " possibly with colour codes
	suffix string // colour reset, if any
}

func newTagger(name string, width int, color string) tagger {
	pad := name
	if n := width - len(name); n > 0 {
		pad += strings.Repeat(" ", n)
	}
	if color == "" {
		return tagger{prefix: pad + " | "}
	}
	return tagger{prefix: fmt.Sprintf("\x1b[%sm%s |\x1b[0m ", color, pad)}
}

// lineWriter is an io.Writer handed to a child as its stdout or stderr. It cuts what it gets
// into lines and sends each complete one to the sink with the process's tag. The exec package
// calls Write from one goroutine per stream; Flush is called after the child's Wait returns.
type lineWriter struct {
	sink   *sink
	tag    *tagger
	copyTo io.Writer // raw lines, without the tag; may be nil
	mu     sync.Mutex
	part   []byte // an incomplete line carried to the next Write
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.part = append(w.part, p...)
			for len(w.part) >= maxLine {
				w.emit(w.part[:maxLine])
				w.part = append(w.part[:0], w.part[maxLine:]...)
			}
			break
		}
		if len(w.part) > 0 {
			w.part = append(w.part, p[:i]...)
			w.emit(w.part)
			w.part = w.part[:0]
		} else {
			w.emit(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	for len(line) > maxLine {
		w.sink.writeLine(w.tag.prefix, line[:maxLine], w.tag.suffix, w.copyTo)
		line = line[maxLine:]
	}
	w.sink.writeLine(w.tag.prefix, line, w.tag.suffix, w.copyTo)
}

// Flush emits a trailing line the child left without a newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.part) > 0 {
		w.emit(w.part)
		w.part = w.part[:0]
	}
}
