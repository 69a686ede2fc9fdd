package waitroom

import "time"

// Poll interval bounds.
const (
	MinPollAfter = time.Second
	MaxPollAfter = 30 * time.Second
)

// Ahead is how many places before position are not admitted yet when every position <= serving
// is; 0 once position is admitted.
func Ahead(position, serving int64) int64 { return max(0, position-serving-1) }

// Wait estimates the time until position is admitted at admitPerSecond with serving admitted now
// (batches land once a second, so a whole number of seconds). Zero once admitted.
func Wait(position, serving, admitPerSecond int64) time.Duration {
	if position <= serving || admitPerSecond <= 0 {
		return 0
	}
	batches := (position - serving + admitPerSecond - 1) / admitPerSecond
	return time.Duration(batches) * time.Second
}

// PollAfter says when a waiting shopper should ask again: about a fifth of the expected wait,
// so shoppers far back poll rarely and those near the front every second, never less than
// MinPollAfter and never more than a third of hold (a shopper who follows it never loses the
// place) or MaxPollAfter.
func PollAfter(wait, hold time.Duration) time.Duration {
	d := max(MinPollAfter, wait/5)
	return min(d, MaxPollAfter, max(MinPollAfter, hold/3))
}

// Spread shortens a poll interval d by up to a fifth, by h (any hash of the shopper and the
// moment): shoppers told the same interval at the same moment (a herd, such as everyone's first
// poll after the opening) come back spread over that fifth instead of together again, and each
// round spreads them further. Never below MinPollAfter; a shopper who follows it polls a little
// more often than d, never less.
func Spread(d time.Duration, h uint32) time.Duration {
	if d <= MinPollAfter {
		return d
	}
	return max(MinPollAfter, d-time.Duration(uint64(d/5)*uint64(h%1024)/1024))
}
