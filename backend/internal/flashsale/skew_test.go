package flashsale

import (
	"context"
	"errors"
	"testing"
	"time"

	"flashedge/shared/challenge"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
)

// TestSpentMarkOutlivesClockSkew: two order replicas share the store and the challenge keys;
// replica A's clock runs 2 s ahead of replica B's (NTP skew). A challenge spent through A gets
// a spent mark that lives exp - nowA, i.e. it vanishes 2 s before B stops accepting the id,
// and B then admits the same challenge a second time (another Idempotency-Key): one proof of
// work, two admissions.
func TestSpentMarkOutlivesClockSkew(t *testing.T) {
	srv := kvtest.Start(t)
	keys := challenge.RandomKeys()
	const skew = 2 * time.Second
	a := newEnvOn(t, srv.Client(t), Options{Challenges: keys, Now: func() time.Time { return time.Now().Add(skew) }})
	b := newEnvOn(t, srv.Client(t), Options{Challenges: keys, Now: time.Now})
	b.createSale(saleSpec{id: "skew", stock: 10, shards: 1, limit: 5, difficulty: 0})
	ctx := context.Background()

	// Minted (at an edge whose clock agrees with B) to expire 400 ms after A's clock reads now.
	ch, err := keys.Issue("skew", "mallory", 0, time.Now().Add(skew+400*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.svc.Attempt(ctx, AttemptInput{User: "mallory", SaleID: "skew", ChallengeID: ch.ID, Answer: "0", IdempotencyKey: "k-1"})
	if err != nil || first.Outcome != OutcomeAdmitted {
		t.Fatalf("first use through A: %+v, %v", first, err)
	}
	// Wait until A's clock is 100 ms past the id's expiry: the mark A set (life = exp - nowA)
	// is gone by then unless it is kept longer than the id's life at A.
	waitFor(t, 5*time.Second, "replica A's clock past the expiry", func() bool {
		return time.Now().Add(skew).After(ch.ExpiresAt.Add(100 * time.Millisecond))
	})
	n, err := srv.Client(t).Do(ctx, srv.Client(t).B().Exists().Key(keyspace.SaleChallenge("skew", ch.ID)).Build()).AsInt64()
	t.Logf("spent mark present: %d (%v)", n, err)
	if time.Now().After(ch.ExpiresAt) {
		t.Skip("machine too slow: the id expired for B too before the check")
	}
	second, err := b.svc.Attempt(ctx, AttemptInput{User: "mallory", SaleID: "skew", ChallengeID: ch.ID, Answer: "0", IdempotencyKey: "k-2"})
	if !errors.Is(err, ErrBadChallenge) {
		t.Fatalf("replay of a spent challenge through replica B (%v before its expiry): %+v, %v; want ErrBadChallenge",
			time.Until(ch.ExpiresAt).Round(time.Millisecond), second, err)
	}
}
