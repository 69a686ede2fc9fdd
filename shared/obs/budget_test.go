package obs

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestProblemLinesAreBudgeted: a flood of warnings and errors in one second writes
// ProblemLinesPerSecond of them; the next second's first problem line is preceded by the count
// left out; info lines are never held back, and loggers derived with With share the budget.
func TestProblemLinesAreBudgeted(t *testing.T) {
	var out bytes.Buffer
	log, _, err := NewLogger(&out, LogOptions{Service: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	h := log.With("route", "x").Handler()
	at := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	emit := func(t time.Time, lvl slog.Level, msg string) {
		_ = h.Handle(context.Background(), slog.NewRecord(t, lvl, msg, 0))
	}
	for range 1000 {
		emit(at, slog.LevelError, "store down")
	}
	for range 50 {
		emit(at.Add(500*time.Millisecond), slog.LevelInfo, "request")
	}
	if n := strings.Count(out.String(), "store down"); n != ProblemLinesPerSecond {
		t.Fatalf("1,000 errors in one second wrote %d lines, want %d", n, ProblemLinesPerSecond)
	}
	if n := strings.Count(out.String(), "msg=request"); n != 50 {
		t.Fatalf("50 info lines wrote %d, want all", n)
	}
	out.Reset()
	emit(at.Add(time.Second), slog.LevelWarn, "again")
	got := out.String()
	if !strings.Contains(got, "left out") || !strings.Contains(got, "count=900") || !strings.Contains(got, "msg=again") ||
		!strings.Contains(got, "service=edge") {
		t.Fatalf("next second: %q, want the count left out (900) and the line", got)
	}

	unbounded, _, err := NewLogger(&out, LogOptions{ProblemLinesPerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	for range 300 {
		_ = unbounded.Handler().Handle(context.Background(), slog.NewRecord(at, slog.LevelError, "e", 0))
	}
	if n := strings.Count(out.String(), "msg=e"); n != 300 {
		t.Fatalf("without a budget: %d lines of 300", n)
	}
}
