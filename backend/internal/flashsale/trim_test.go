package flashsale

import (
	"context"
	"fmt"
	"testing"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
)

// TestTrimStream: trimming never removes an entry a group has not acknowledged, pending or not
// yet delivered, whichever group lags.
func TestTrimStream(t *testing.T) {
	srv := kvtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	stream := keyspace.AttemptStream()
	if n, err := TrimStream(ctx, c); err != nil || n != 0 {
		t.Fatalf("trim of a missing stream = %d, %v", n, err)
	}
	do := func(cmd ...string) {
		t.Helper()
		if err := c.Do(ctx, c.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build()).Error(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	do("XGROUP", "CREATE", stream, "g1", "0", "MKSTREAM")
	do("XGROUP", "CREATE", stream, "g2", "0")
	for i := 1; i <= 10; i++ {
		do("XADD", stream, fmt.Sprintf("%d-1", i), "n", fmt.Sprint(i))
	}
	ids := func() []string {
		t.Helper()
		es, err := c.Do(ctx, c.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.ID
		}
		return out
	}
	trim := func(want int64, left string) {
		t.Helper()
		n, err := TrimStream(ctx, c)
		if err != nil || n != want {
			t.Fatalf("TrimStream = %d, %v; want %d", n, err, want)
		}
		if got := fmt.Sprint(ids()); got != left {
			t.Fatalf("after trim the stream holds %s, want %s", got, left)
		}
	}
	trim(0, "[1-1 2-1 3-1 4-1 5-1 6-1 7-1 8-1 9-1 10-1]") // nothing delivered yet

	do("XREADGROUP", "GROUP", "g1", "a", "COUNT", "6", "STREAMS", stream, ">") // g1: 1..6 pending
	do("XACK", stream, "g1", "1-1", "2-1", "3-1")                              // g1: 4..6 pending
	do("XREADGROUP", "GROUP", "g2", "b", "COUNT", "8", "STREAMS", stream, ">") // g2: 1..8 pending
	do("XACK", stream, "g2", "1-1", "2-1", "3-1", "4-1", "5-1", "6-1", "7-1", "8-1")
	trim(3, "[4-1 5-1 6-1 7-1 8-1 9-1 10-1]") // g1's oldest pending is 4-1

	do("XACK", stream, "g1", "4-1", "5-1", "6-1")
	do("XREADGROUP", "GROUP", "g1", "a", "COUNT", "4", "STREAMS", stream, ">") // g1: 7..10 pending
	do("XACK", stream, "g1", "7-1", "8-1")
	trim(4, "[8-1 9-1 10-1]") // g2 delivered up to 8-1 only; g1 still holds 9-1 and 10-1

	do("XACK", stream, "g1", "9-1", "10-1")
	do("XREADGROUP", "GROUP", "g2", "b", "COUNT", "4", "STREAMS", stream, ">")
	do("XACK", stream, "g2", "9-1")
	trim(2, "[10-1]") // g2 still holds 10-1; nothing else is needed
}
