package flashsale

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchEnv is a store with one big live sale for the admission and worker benchmarks.
func benchEnv(b *testing.B) (*env, *Sale) {
	e := newEnv(b, Options{MaxBacklog: 1 << 30, Difficulty: -1})
	e.createSale(saleSpec{id: "bench", stock: MaxStock, shards: 8})
	sl, err := e.svc.loadSale(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return e, sl
}

// BenchmarkAttempt measures the order service's side of one admitted attempt: the gate script
// and the XADD, against a local redis-server (the challenge is minted as the edge does).
func BenchmarkAttempt(b *testing.B) {
	e, _ := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		user := fmt.Sprintf("b%d", i)
		ch, err := e.svc.mintChallenge(ctx, user, "bench", 0)
		if err != nil {
			b.Fatal(err)
		}
		ans, err := e.svc.Attempt(ctx, AttemptInput{User: user, SaleID: "bench", ChallengeID: ch.ID, IdempotencyKey: "k"})
		if err != nil || ans.Outcome != OutcomeAdmitted {
			b.Fatalf("attempt = %+v, %v", ans, err)
		}
	}
}

// BenchmarkDecide measures the worker's decision of one admitted ticket (begin, claim, win).
func BenchmarkDecide(b *testing.B) {
	e, sl := benchEnv(b)
	ctx := context.Background()
	tickets := make([]string, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if len(tickets) == 0 { // admit a batch outside the timed part
			b.StopTimer()
			for j := range cap(tickets) {
				user := fmt.Sprintf("d%d-%d", i, j)
				ch, _ := e.svc.mintChallenge(ctx, user, "bench", 0)
				ans, err := e.svc.Attempt(ctx, AttemptInput{User: user, SaleID: "bench", ChallengeID: ch.ID, IdempotencyKey: "k"})
				if err != nil {
					b.Fatal(err)
				}
				tickets = append(tickets, ans.Ticket)
			}
			b.StartTimer()
		}
		t := tickets[len(tickets)-1]
		tickets = tickets[:len(tickets)-1]
		if _, err := e.svc.decide(ctx, sl, t, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAnswerAllocs pins the order service's answer on the rush path to no allocation of its
// own: the 202 of an admitted attempt is rendered into the response without reflection, and
// matches what encoding/json rendered before byte for byte.
func TestAnswerAllocs(t *testing.T) {
	h := &Handler{s: &Service{o: Options{PollAfter: time.Second}}}
	ans := AttemptAnswer{Outcome: OutcomeAdmitted, Ticket: newID()}
	var ctx fasthttp.RequestCtx
	for _, tt := range []struct {
		name   string
		render func()
		want   any
		status int
	}{
		{"admitted", func() { h.writeAttempt(&ctx, ans) }, struct {
			Ticket      string `json:"ticket"`
			Status      string `json:"status"`
			PollAfterMS int64  `json:"poll_after_ms"`
		}{ans.Ticket, StatusQueued, 1000}, 202},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx.Response.Reset()
			tt.render()
			want, _ := json.Marshal(tt.want)
			if got := ctx.Response.Body(); string(got) != string(want)+"\n" || ctx.Response.StatusCode() != tt.status {
				t.Errorf("answer %d %s, want %d %s", ctx.Response.StatusCode(), got, tt.status, want)
			}
			if testing.Short() || raceEnabled {
				return
			}
			if n := testing.AllocsPerRun(100, func() { ctx.Response.Reset(); tt.render() }); n != 0 {
				t.Errorf("%s answer allocates %.1f times, want 0", tt.name, n)
			}
		})
	}
}
