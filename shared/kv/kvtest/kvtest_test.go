package kvtest_test

import (
	"context"
	"testing"

	"flashedge/shared/kv/kvtest"
)

func TestStartPingRestart(t *testing.T) {
	srv := kvtest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	before := srv.CommandCalls(t, c, "set")
	if before != 1 {
		t.Fatalf("commandstats set calls = %d, want 1", before)
	}
	srv.Restart()
	c2 := srv.Client(t)
	got, err := c2.Do(ctx, c2.B().Get().Key("k").Build()).ToString()
	if err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v; want v (append-only file replayed)", got, err)
	}
}
