package flashsale

import (
	"fmt"
	"strconv"
	"time"
)

// OptionsFromEnv reads the flash-sale settings the order service and the worker must share, so
// both binaries configure them in one line:
//
//	FLASHEDGE_FLASHSALE_K                 admission factor k (admitted <= k x supply), default 2
//	FLASHEDGE_FLASHSALE_MAX_BACKLOG       undecided attempts per sale before 429, default 5000
//	FLASHEDGE_FLASHSALE_DIFFICULTY        proof-of-work bits for sales without their own, default 12 (0: none)
//	FLASHEDGE_FLASHSALE_CHALLENGE_TTL     how long a challenge can be answered, default 60s
//	FLASHEDGE_FLASHSALE_RESERVATION       how long a winner may check out, default 5m
//	FLASHEDGE_FLASHSALE_POLL_AFTER        the poll_after_ms hint, default 1s
//	FLASHEDGE_FLASHSALE_BUSY_RETRY_AFTER  Retry-After of a busy answer, default 2s
//	FLASHEDGE_FLASHSALE_REQUEUE_AFTER     when an undecided ticket is enqueued again, default 30s
//	FLASHEDGE_FLASHSALE_MAX_REQUEUES      requeues of one ticket before it ends lost "stranded", default 5
//
// Unset variables leave the zero value (the default). Now and Log are left for the caller.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	var o Options
	float := func(name string, dst *float64) error {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 1 {
				return fmt.Errorf("%s=%q: want a number >= 1", name, v)
			}
			*dst = f
		}
		return nil
	}
	integer := func(name string, dst *int, lo, hi int) error {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
			}
			*dst = n
		}
		return nil
	}
	duration := func(name string, dst *time.Duration) error {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s=%q: want a positive duration such as 30s or 5m", name, v)
			}
			*dst = d
		}
		return nil
	}
	var difficulty = -2
	errs := []error{
		float("FLASHEDGE_FLASHSALE_K", &o.K),
		integer("FLASHEDGE_FLASHSALE_MAX_BACKLOG", &o.MaxBacklog, 1, 10_000_000),
		integer("FLASHEDGE_FLASHSALE_DIFFICULTY", &difficulty, 0, MaxDifficulty),
		duration("FLASHEDGE_FLASHSALE_CHALLENGE_TTL", &o.ChallengeTTL),
		duration("FLASHEDGE_FLASHSALE_RESERVATION", &o.Reservation),
		duration("FLASHEDGE_FLASHSALE_POLL_AFTER", &o.PollAfter),
		duration("FLASHEDGE_FLASHSALE_BUSY_RETRY_AFTER", &o.BusyRetryAfter),
		duration("FLASHEDGE_FLASHSALE_REQUEUE_AFTER", &o.RequeueAfter),
		integer("FLASHEDGE_FLASHSALE_MAX_REQUEUES", &o.MaxRequeues, 1, 1000),
	}
	for _, err := range errs {
		if err != nil {
			return Options{}, err
		}
	}
	switch difficulty {
	case -2: // unset: the default
	case 0:
		o.Difficulty = -1 // Options' spelling of "no work"
	default:
		o.Difficulty = difficulty
	}
	return o, nil
}
