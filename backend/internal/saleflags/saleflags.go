// Package saleflags defines the flash-sale flags the order service and the worker must agree
// on, so both binaries read them under the same names (-flashsale-k, FLASHEDGE_FLASHSALE_K, ...)
// and hand backend/internal/flashsale a plain Options.
package saleflags

import (
	"errors"
	"fmt"

	"flashedge/backend/internal/flashsale"
	"flashedge/shared/flagenv"
)

// Define adds the flash-sale flags to s (prefix "FLASHEDGE_", so -flashsale-k is also
// FLASHEDGE_FLASHSALE_K) and returns the Options that s.Parse fills. Now, Log and Metrics are
// left for the caller.
func Define(s *flagenv.Set) *flashsale.Options {
	o := &flashsale.Options{}
	difficulty := flashsale.DefaultDifficulty
	s.Float64(&o.K, "flashsale-k", flashsale.DefaultK, "admission factor k: attempts admitted per sale <= k x supply (>= 1)")
	s.Int(&o.MaxBacklog, "flashsale-max-backlog", flashsale.DefaultMaxBacklog, "undecided attempts per sale before 429")
	s.Int(&difficulty, "flashsale-difficulty", flashsale.DefaultDifficulty, fmt.Sprintf("proof-of-work bits for sales without their own, 0 to %d (0: none)", flashsale.MaxDifficulty))
	s.Duration(&o.Reservation, "flashsale-reservation", flashsale.DefaultReservation, "how long a winner may check out")
	s.Duration(&o.PollAfter, "flashsale-poll-after", flashsale.DefaultPollAfter, "the poll_after_ms hint of an admitted attempt")
	s.Duration(&o.BusyRetryAfter, "flashsale-busy-retry-after", flashsale.DefaultBusyRetryAfter, "Retry-After of a busy answer")
	s.Duration(&o.RequeueAfter, "flashsale-requeue-after", flashsale.DefaultRequeueAfter, "when an undecided ticket is enqueued again")
	s.Int(&o.MaxRequeues, "flashsale-max-requeues", flashsale.DefaultMaxRequeues, "requeues of one ticket before it ends lost \"stranded\" (1 to 1000)")
	s.After(func() error {
		switch {
		case o.K < 1:
			return fmt.Errorf("%s %v: want a number >= 1", s.Label("flashsale-k"), o.K)
		case o.MaxBacklog < 1 || o.MaxBacklog > 10_000_000:
			return fmt.Errorf("%s %d: want 1 to 10000000", s.Label("flashsale-max-backlog"), o.MaxBacklog)
		case difficulty < 0 || difficulty > flashsale.MaxDifficulty:
			return fmt.Errorf("%s %d: want 0 to %d", s.Label("flashsale-difficulty"), difficulty, flashsale.MaxDifficulty)
		case o.Reservation <= 0 || o.PollAfter <= 0 || o.BusyRetryAfter <= 0 || o.RequeueAfter <= 0:
			return errors.New("-flashsale-reservation, -flashsale-poll-after, -flashsale-busy-retry-after and -flashsale-requeue-after (FLASHEDGE_FLASHSALE_*) must be positive durations")
		case o.MaxRequeues < 1 || o.MaxRequeues > 1000:
			return fmt.Errorf("%s %d: want 1 to 1000", s.Label("flashsale-max-requeues"), o.MaxRequeues)
		}
		o.Difficulty = difficulty
		if difficulty == 0 {
			o.Difficulty = -1 // Options' spelling of "no work"
		}
		return nil
	})
	return o
}
