package httpapi

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A storm of 503s writes at most ErrorLinesPerSecond lines a second, then one line saying how
// many were left out.
func TestAccessLogErrorBudget(t *testing.T) {
	var buf bytes.Buffer
	a := NewAccessLogger(slog.New(slog.NewTextHandler(&buf, nil)), 1000, "")
	allowed := 0
	for range ErrorLinesPerSecond + 50 {
		if a.errorBudget(100) {
			allowed++
		}
	}
	if allowed != ErrorLinesPerSecond {
		t.Fatalf("%d error lines allowed in one second, want %d", allowed, ErrorLinesPerSecond)
	}
	buf.Reset()
	if !a.errorBudget(101) {
		t.Fatal("the first error of the next second was refused")
	}
	if out := buf.String(); !strings.Contains(out, "error lines left out") || !strings.Contains(out, "count=50") {
		t.Fatalf("no line counting the left-out errors: %q", out)
	}
}
