package obs

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// ProblemLinesPerSecond is how many warn and error lines a logger from NewLogger writes in one
// second by default. Many of them follow a client's request (a store that does not answer, a
// client refused and banned): without a budget an outage or a flood would make every request
// also cost a log line, and the edge would spend its CPU and disk on the log while it should be
// refusing cheaply.
const ProblemLinesPerSecond = 100

// budgetHandler passes every record below warn through, and at most perSecond warn and error
// records a second; the number left out is reported with the first one written in a later second.
type budgetHandler struct {
	slog.Handler
	perSecond int64
	b         *lineBudget // shared by the handlers WithAttrs and WithGroup derive
}

type lineBudget struct {
	second, logged, skipped atomic.Int64
}

// withLineBudget wraps h with the budget; perSecond <= 0 returns h unchanged.
func withLineBudget(h slog.Handler, perSecond int) slog.Handler {
	if perSecond <= 0 {
		return h
	}
	return budgetHandler{Handler: h, perSecond: int64(perSecond), b: &lineBudget{}}
}

func (h budgetHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	now := t.Unix()
	if prev := h.b.second.Load(); prev != now && h.b.second.CompareAndSwap(prev, now) {
		h.b.logged.Store(0)
		if n := h.b.skipped.Swap(0); n > 0 {
			s := slog.NewRecord(t, slog.LevelWarn, "log: warning and error lines left out", 0)
			s.AddAttrs(slog.Int64("count", n), slog.Int64("limit_per_second", h.perSecond))
			h.b.logged.Add(1)
			if err := h.Handler.Handle(ctx, s); err != nil {
				return err
			}
		}
	}
	if h.b.logged.Add(1) > h.perSecond {
		h.b.skipped.Add(1)
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h budgetHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return budgetHandler{Handler: h.Handler.WithAttrs(attrs), perSecond: h.perSecond, b: h.b}
}

func (h budgetHandler) WithGroup(name string) slog.Handler {
	return budgetHandler{Handler: h.Handler.WithGroup(name), perSecond: h.perSecond, b: h.b}
}
