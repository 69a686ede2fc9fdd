package flashgate

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"flashedge/edge/internal/guard"
	"flashedge/shared/keyspace"
)

// TestChallengeMintingLimited: minting costs no store call, but it is still charged to the
// user's budget (issue 15 item 1): a user at 1/s with a burst of 3 gets 3 challenges, then 429s;
// an ended or unknown sale is refused before any minting.
func TestChallengeMintingLimited(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: 1, UserBurst: 3, AbuseBurst: 1000})
	now := f.clock()
	f.putSale(t, "live", now.Add(-time.Minute), now.Add(time.Hour), false)
	f.putSale(t, "over", now.Add(-2*time.Hour), now.Add(-time.Hour), false)
	tok := f.token("u-mallory")
	codes := map[int]int{}
	for range 10 {
		codes[f.do("POST", "/api/v1/flash-sales/live/challenge", tok).StatusCode()]++
	}
	if codes[200] != 3 || codes[429] != 7 {
		t.Fatalf("10 challenge requests at a fixed clock: %v, want 3 x 200 and 7 x 429", codes)
	}
	for sale, want := range map[string]int{"over": 410, "nope": 404} {
		if got := f.do("POST", "/api/v1/flash-sales/"+sale+"/challenge", f.token("u-other")).StatusCode(); got != want {
			t.Errorf("challenge for %s: %d, want %d", sale, got, want)
		}
	}
}

// TestChallengeDifficultyFollowsTheStore: a sale whose difficulty is raised in the store
// (no admin route edits a sale; a direct edit) is minted at the new difficulty once the store's
// invalidation reaches the edge, not from the cached state for the client-cache TTL.
func TestChallengeDifficultyFollowsTheStore(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "hard", now.Add(-time.Minute), now.Add(time.Hour), false)
	tok := f.token("u-alice")
	mint := func() int {
		r := f.do("POST", "/api/v1/flash-sales/hard/challenge", tok)
		var got struct {
			Payload struct {
				Difficulty int `json:"difficulty"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(r.Body(), &got); err != nil || r.StatusCode() != 200 {
			t.Fatalf("challenge: %d %s (%v)", r.StatusCode(), r.Body(), err)
		}
		return got.Payload.Difficulty
	}
	if d := mint(); d != 0 {
		t.Fatalf("difficulty %d, want 0", d)
	}
	if err := f.writer.Do(context.Background(), f.writer.B().Hset().Key(keyspace.Sale("hard")).FieldValue().
		FieldValue("difficulty", "20").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for mint() != 20 {
		if time.Now().After(deadline) {
			t.Fatal("the edge still mints difficulty 0 challenges 10 s after the sale was raised to 20")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChallengeUnavailableHasRetryAfter: the contract (shared/openapi: 503 "refused; retry
// after Retry-After seconds", with the Retry-After header) holds for the edge's own 503 on the
// challenge route too (a sale whose stored difficulty no id can carry).
func TestChallengeUnavailableHasRetryAfter(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "odd", now.Add(-time.Minute), now.Add(time.Hour), false)
	if err := f.writer.Do(context.Background(), f.writer.B().Hset().Key(keyspace.Sale("odd")).FieldValue().
		FieldValue("difficulty", "65").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	r := f.do("POST", "/api/v1/flash-sales/odd/challenge", f.token("u-alice"))
	if r.StatusCode() != 503 || len(r.Header.Peek("Retry-After")) == 0 {
		t.Fatalf("challenge for a sale of difficulty 65: %d %s, Retry-After %q; want 503 with Retry-After",
			r.StatusCode(), r.Body(), r.Header.Peek("Retry-After"))
	}
}
