package load

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"flashedge/shared/challenge"
)

// Bots: each bot address runs botWorkers workers, each sending a request every botEvery or as
// soon as the last is answered (up to 4,000 a second per address against the edge's default 50;
// its users up to 2,000 a second against the default 2). botUsersPerAddr users share one address.
const (
	botWorkers      = 8
	botUsersPerAddr = 2
	botEvery        = 2 * time.Millisecond
)

// BotReport is the bot-mix round's account of its bots and of the honest shoppers against a
// baseline round without bots.
type BotReport struct {
	Addresses int              `json:"addresses"`
	Users     int              `json:"users"`
	Requests  int64            `json:"requests"`
	Answers   map[string]int64 `json:"answers"`
	Admitted  int64            `json:"admitted"`
	Won       int64            `json:"won"`
	// WinBound is the most the bots can win: bot users x the per-user limit.
	WinBound int64 `json:"win_bound"`
	// BanFirstS and BanLastS are over bot addresses: seconds from an address's first request to
	// its first refusal (limitRefusal); Unrefused
	// counts addresses never refused (then BanLastS is -1).
	BanFirstS float64 `json:"ban_first_s"`
	BanLastS  float64 `json:"ban_last_s"`
	Unrefused int     `json:"unrefused_addresses"`
	// HonestSuccessPct and BaselineSuccessPct are the honest shoppers' attempts answered by the
	// sale (servedBySale: admitted, sold out, busy, limit reached) rather than refused by a limit
	// or left without an answer, in this round and in the round without bots.
	HonestSuccessPct   float64 `json:"honest_success_pct"`
	BaselineSuccessPct float64 `json:"baseline_success_pct"`
	HonestWon          int64   `json:"honest_won"`
	BaselineHonestWon  int64   `json:"baseline_honest_won"`
}

// botState is the bot accounting of one round.
type botState struct {
	addrs   int
	first   []atomic.Int64 // ns since the round's start + 1; 0: no request yet
	refused []atomic.Int64
	reqs    atomic.Int64
	adm     atomic.Int64
	won     atomic.Int64
	mu      sync.Mutex
	answers map[string]int64
	tickets map[string]bool
}

func newBotState(addrs int) *botState {
	return &botState{addrs: addrs, first: make([]atomic.Int64, addrs), refused: make([]atomic.Int64, addrs),
		answers: map[string]int64{}, tickets: map[string]bool{}}
}

// note records one bot request from address a sent at sent (ns since start) and its answer.
func (b *botState) note(a int, sent int64, what string, status int, code string, errKind string) {
	b.reqs.Add(1)
	b.first[a].CompareAndSwap(0, sent+1)
	key := fmt.Sprintf("%s %d %s", what, status, code)
	if errKind != "" {
		key = what + " " + errKind
	}
	if limitRefusal(status, code, errKind) {
		b.refused[a].CompareAndSwap(0, sent+1)
	}
	b.mu.Lock()
	b.answers[key]++
	b.mu.Unlock()
}

// newTicket reports whether t is a ticket not seen before (a replayed key answers the same one).
func (b *botState) newTicket(t string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tickets[t] {
		return false
	}
	b.tickets[t] = true
	return true
}

// banTimes returns the first and last address's seconds from first request to first refusal and
// how many addresses were never refused.
func (b *botState) banTimes() (first, last float64, unrefused int) {
	var ds []float64
	for a := range b.addrs {
		f, r := b.first[a].Load(), b.refused[a].Load()
		if f == 0 || r == 0 {
			unrefused++
			continue
		}
		ds = append(ds, round3(time.Duration(max(0, r-f)).Seconds()))
	}
	if len(ds) == 0 {
		return -1, -1, unrefused
	}
	slices.Sort(ds)
	last = ds[len(ds)-1]
	if unrefused > 0 {
		last = -1
	}
	return ds[0], last, unrefused
}

// bot is one bot worker: it fetches one challenge, solves it once and then posts attempts with
// it over and over, every other one replaying the same Idempotency-Key, until ctx ends.
func (r *rush) bot(ctx context.Context, a, w int) {
	u := r.users + a*botUsersPerAddr + w%botUsersPerAddr
	c := r.bots.Client(a)
	tok := r.tokens[u]
	key := fmt.Sprintf("%s-bot%d-%d", r.runID, a, w)
	var chID, answer string
	t := time.NewTicker(botEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := int64(time.Since(r.start))
		if chID == "" {
			var ch challenge.Body
			var code string
			res := c.Do(nil, Call{Method: "POST", Path: r.salePath("/challenge"), Bearer: tok}, func(s int, b []byte) {
				if s == 200 {
					_ = json.Unmarshal(b, &ch)
				} else {
					code = errCode(b)
				}
			})
			r.botSt.note(a, sent, "challenge", res.Status, code, res.ErrKind)
			if res.Status == 200 && ch.ChallengeID != "" {
				chID = ch.ChallengeID
				answer, _ = SolvePoW(ch.Payload.Prefix, ch.Payload.Difficulty)
			}
			continue
		}
		k := key
		if n%2 == 1 {
			k = key + "-" + strconv.Itoa(n)
		}
		body, _ := json.Marshal(map[string]string{"challenge_id": chID, "answer": answer})
		var code, ticket string
		res := c.Do(nil, Call{Method: "POST", Path: r.salePath("/attempts"), Bearer: tok, IdempotencyKey: k, Body: body}, func(s int, b []byte) {
			if s == 202 {
				var q struct {
					Ticket string `json:"ticket"`
				}
				_ = json.Unmarshal(b, &q)
				ticket = q.Ticket
			} else {
				code = errCode(b)
			}
		})
		r.botSt.note(a, sent, "attempt", res.Status, code, res.ErrKind)
		if res.Status == 202 && ticket != "" && r.botSt.newTicket(ticket) {
			r.admitted.Add(1)
			r.botSt.adm.Add(1)
			r.pollers.Add(1)
			go func() {
				defer r.pollers.Done()
				r.follow(r.pollCtx, u, ticket, time.Second, time.Now())
			}()
		}
	}
}

// runBots runs every bot worker until ctx ends.
func (r *rush) runBots(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for a := range r.botSt.addrs {
		for w := range botWorkers {
			wg.Add(1)
			go func() { defer wg.Done(); r.bot(ctx, a, w) }()
		}
	}
	return &wg
}

// limitRefusal reports whether an answer is the edge's limits refusing a client: 429
// rate_limited, 403 blacklisted, or the connection closed (the per-address connection cap).
func limitRefusal(status int, code, errKind string) bool {
	return status == 429 && code == "rate_limited" || status == 403 && code == "blacklisted" || errKind == ErrKindConn
}

// servedBySale reports whether an honest shopper's answer came from the sale (admitted, sold out,
// busy, limit reached, ...) rather than from a limit refusing the client, an error or no answer.
func servedBySale(status int, code string) bool {
	return status >= 200 && status < 500 && !limitRefusal(status, code, "")
}

func pct(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(of)*1000) / 10
}

// botReport fills the round's bot account (the baseline figures are set by the caller).
func (r *rush) botReport() *BotReport {
	b := r.botSt
	br := &BotReport{Addresses: b.addrs, Users: b.addrs * botUsersPerAddr, Requests: b.reqs.Load(),
		Admitted: b.adm.Load(), Won: b.won.Load(), WinBound: int64(b.addrs*botUsersPerAddr) * int64(r.cfg.Limit)}
	b.mu.Lock()
	br.Answers = maps.Clone(b.answers)
	b.mu.Unlock()
	br.BanFirstS, br.BanLastS, br.Unrefused = b.banTimes()
	return br
}
