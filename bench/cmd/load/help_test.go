package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZero: -h lists the flags, each with its variable, and is a successful run.
func TestHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out); err != nil {
		t.Fatalf("load -h = %v, want nil (exit 0)", err)
	}
	if !strings.Contains(out.String(), "(env FLASHEDGE_") {
		t.Errorf("load -h names no variable:\n%s", out.String())
	}
}
