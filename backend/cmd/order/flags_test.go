package main

import (
	"context"
	"io"
	"testing"

	"flashedge/shared/flagenv"
	"flashedge/shared/flagenv/flagenvtest"
)

// TestServiceFlags: the settings every service shares are read under the shared flag and
// variable names (flagenvtest runs the same checks on every service binary), and -h exits 0.
func TestServiceFlags(t *testing.T) {
	base := map[string]string{}
	flagenvtest.CheckService(t, "order", base, func(args []string, getenv func(string) string, out io.Writer) (flagenv.Service, error) {
		c, err := loadConfig(args, getenv, out)
		return c.Service, err
	})
	if err := run(context.Background(), []string{"-h"}, func(k string) string { return base[k] }, io.Discard); err != nil {
		t.Fatalf("run -h = %v, want nil (exit 0)", err)
	}
}
