package challenge_test

import (
	"strings"
	"testing"
	"time"

	"flashedge/shared/challenge"
	"flashedge/shared/signkey"
)

// TestRotationInTwoSteps follows the documented key rotation (README's FLASHEDGE_SESSION_SECRET
// row) through a rolling deploy: at every moment some processes run the previous list and some
// the next, and a challenge minted by any edge must verify at any order replica. Prepending the
// new key in one step would not do: an edge restarted with "new,old" signs with a key an order
// replica still on "old" does not know.
func TestRotationInTwoSteps(t *testing.T) {
	oldS, newS := strings.Repeat("o", 32), strings.Repeat("n", 32)
	keysOf := func(spec string) *challenge.Keys {
		m, kid, err := signkey.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		k, err := challenge.NewKeys(m, kid)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lists := []string{
		"old:" + oldS,                  // before
		"old:" + oldS + ",new:" + newS, // step 1: the new key verifies everywhere
		"new:" + newS + ",old:" + oldS, // step 2: the new key signs
	}
	now := time.Now()
	for step := 1; step < len(lists); step++ { // during a step, processes run lists[step-1] or lists[step]
		for _, edgeList := range lists[step-1 : step+1] {
			for _, orderList := range lists[step-1 : step+1] {
				ch, err := keysOf(edgeList).Issue("s1", "alice", 0, now.Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := keysOf(orderList).Verify(ch.ID, "s1", "alice", now); err != nil {
					t.Errorf("step %d: minted with %.3s..., verified with %.3s...: %v", step, edgeList, orderList, err)
				}
			}
		}
	}
	// The one-step prepend is what the two steps avoid.
	ch, err := keysOf(lists[2]).Issue("s1", "alice", 0, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keysOf(lists[0]).Verify(ch.ID, "s1", "alice", now); err == nil {
		t.Error("a key the verifier does not hold verified")
	}
}
