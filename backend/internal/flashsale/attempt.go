package flashsale

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	"flashedge/shared/sale"
)

// Attempt outcomes (AttemptAnswer.Outcome), also the reasons counted in the ledger's
// rejected_by_reason.
const (
	OutcomeAdmitted       = "admitted"
	OutcomeSoldOut        = "sold_out"
	OutcomeLimitReached   = "limit_reached"   // the user holds per_user_limit units
	OutcomeAttemptPending = "attempt_pending" // held + undecided attempts reach the limit
	OutcomeBusyBacklog    = "busy_backlog"    // the sale's undecided backlog is full
	OutcomeBusyAdmission  = "busy_admission"  // k x supply attempts were admitted already
	// OutcomeStranded is the lost reason of a ticket no worker decided within its requeues.
	OutcomeStranded = "stranded"
)

// AttemptInput is one attempt: who, which sale, the answered challenge and the client's
// Idempotency-Key (1 to 128 of A-Z a-z 0-9 _ - .).
type AttemptInput struct {
	User           string
	SaleID         string
	ChallengeID    string
	Answer         string
	IdempotencyKey string
}

// AttemptAnswer is the answer to an attempt that passed the challenge. The first answer for an
// Idempotency-Key is stored and a repeat gets exactly the same one back (Replay set).
type AttemptAnswer struct {
	Outcome    string
	Ticket     string // set when admitted
	RetryAfter int    // seconds, set for the busy outcomes
	Replay     bool
}

// SpentMarkSkew is how much longer than its id a spent challenge's mark is kept: the largest
// clock difference between order replicas (and the edges that mint) that cannot reopen a spent id.
const SpentMarkSkew = 30 * time.Second

// Attempt runs admission for one attempt: one script in the sale's slot checks the sale window,
// checks and spends the challenge (before any stock is looked at), the sold-out flag, the
// per-user limit, the backlog and the admitted count, and records the answer; an admitted attempt
// is then appended to the attempt stream. Errors: ErrInvalid, ErrNotFound, ErrNotStarted,
// ErrEnded, ErrBadChallenge, ErrReusedKey, or a store error.
//
// If the XADD fails after the ticket was admitted, the answer is still "admitted": the ticket is
// in the sale's queue and the worker's maintenance requeues it (see the package comment).
func (s *Service) Attempt(ctx context.Context, in AttemptInput) (AttemptAnswer, error) {
	switch {
	case !httpapi.ValidUserID([]byte(in.User)):
		return AttemptAnswer{}, invalid("user id is not acceptable")
	case !product.ValidID([]byte(in.SaleID)):
		return AttemptAnswer{}, ErrNotFound
	case !httpapi.ValidIdempotencyKey([]byte(in.IdempotencyKey)):
		return AttemptAnswer{}, invalid("the Idempotency-Key header is required: %s", httpapi.IdempotencyKeyRule)
	case len(in.Answer) > challenge.MaxAnswerLen:
		return AttemptAnswer{}, invalid("answer must be at most %d bytes", challenge.MaxAnswerLen)
	case len(in.ChallengeID) == 0 || len(in.ChallengeID) > challenge.MaxIDLen:
		s.o.Metrics.BadChallenge.Inc()
		return AttemptAnswer{}, ErrBadChallenge
	}
	sale, now := in.SaleID, s.now()
	// The challenge is checked here (MAC, binding, expiry, work) and spent by the script, which
	// refuses a bad one only after the replay and window checks, as it always did: a retry of an
	// answered attempt gets its answer back even when its challenge has expired since.
	verified, life := "0", "0"
	if ch, err := s.o.Challenges.Verify(in.ChallengeID, sale, in.User, now); err == nil &&
		challenge.LeadingZeroBits(in.ChallengeID, in.Answer) >= ch.Difficulty {
		// The mark outlives the id by SpentMarkSkew: another replica whose clock runs behind this
		// one still accepts the id after it expired here, and must still find it spent.
		verified, life = "1", strconv.FormatInt(max(ch.ExpiresAt.UnixMilli()-now.UnixMilli(), 1)+SpentMarkSkew.Milliseconds(), 10)
	}
	ticket := newID()
	keys := []string{
		keyspace.SaleChallenge(sale, in.ChallengeID),
		keyspace.Sale(sale),
		keyspace.SoldOut(sale),
		keyspace.SaleStats(sale),
		keyspace.SaleUsers(sale),
		keyspace.SaleInflight(sale),
		keyspace.SaleQueue(sale),
		keyspace.SaleIdempotency(sale, in.User, in.IdempotencyKey),
		keyspace.SaleResult(sale, ticket),
	}
	args := []string{
		in.User, ticket, ms(now), s.gateArgs[0], s.gateArgs[1], s.gateArgs[2], s.gateArgs[3],
		in.ChallengeID, verified, life,
	}
	rep, err := strs(s.lua.gate.Exec(ctx, s.c, keys, args))
	if err != nil {
		return AttemptAnswer{}, fmt.Errorf("flashsale: admission: %w", err)
	}
	if len(rep) < 4 {
		return AttemptAnswer{}, fmt.Errorf("flashsale: admission: short reply %q", rep)
	}
	origin, outcome := rep[0], rep[1]
	switch outcome {
	case "no_sale":
		return AttemptAnswer{}, ErrNotFound
	case "not_started":
		s.o.Metrics.NotStarted.Inc()
		return AttemptAnswer{}, ErrNotStarted
	case "ended":
		s.o.Metrics.Ended.Inc()
		return AttemptAnswer{}, ErrEnded
	case "bad_challenge":
		s.o.Metrics.BadChallenge.Inc()
		return AttemptAnswer{}, ErrBadChallenge
	case "reused_key":
		return AttemptAnswer{}, ErrReusedKey
	}
	ans := AttemptAnswer{Outcome: outcome, Ticket: rep[2], Replay: origin == "dup"}
	if rep[3] != "" {
		ans.RetryAfter, _ = strconv.Atoi(rep[3])
	}
	if !ans.Replay {
		s.o.Metrics.admission(outcome).Inc()
	}
	if outcome == OutcomeAdmitted && !ans.Replay {
		// The message carries the user and the return epoch read by the gate, so the worker can
		// claim at once (Worker.process); a message without them goes through worker_begin.lua.
		epoch := "0"
		if len(rep) > 4 {
			epoch = rep[4]
		}
		err := s.c.Do(ctx, s.c.B().Xadd().Key(keyspace.AttemptStream()).Id("*").FieldValue().
			FieldValue("sale", sale).FieldValue("ticket", ticket).FieldValue("user", in.User).
			FieldValue("epoch", epoch).Build()).Error()
		if err != nil {
			s.o.Log.Warn("flash-sale attempt admitted but not enqueued; maintenance will requeue it",
				"sale", sale, "ticket", ticket, "err", err)
		}
	}
	return ans, nil
}

// Result statuses of a ticket (shared/sale).
const (
	StatusQueued  = sale.StatusQueued
	StatusWon     = sale.StatusWon
	StatusLost    = sale.StatusLost
	StatusSoldOut = sale.StatusSoldOut
)

// Result is a ticket's result: the record keyspace.SaleResult, a hash the edge reads directly
// (shared/sale names its fields and renders it).
type Result = sale.Ticket

// GetResult returns user's ticket in a sale. A ticket of another user, or unknown, is
// ErrTicketUnknown.
func (s *Service) GetResult(ctx context.Context, user, saleID, ticket string) (Result, error) {
	if !sale.ValidTicketID(ticket) || !product.ValidID([]byte(saleID)) {
		return Result{}, ErrTicketUnknown
	}
	m, err := s.c.Do(ctx, s.c.B().Hgetall().Key(keyspace.SaleResult(saleID, ticket)).Build()).AsStrMap()
	if err != nil {
		return Result{}, fmt.Errorf("flashsale: read result: %w", err)
	}
	r, ok := sale.TicketFromHash(m, user)
	if !ok {
		return Result{}, ErrTicketUnknown
	}
	return r, nil
}
