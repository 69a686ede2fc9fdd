// Package waitroom holds the pure parts of a flash sale's waiting room that the order service,
// the admitter and the edge all rely on: the "waiting_room" settings and their validation, how
// they are stored in the sale hash, the opening shuffle (a pure function of a revealed seed and
// the user ids), the signed queue tokens and admission passes, and the pacing arithmetic
// (position, estimated wait, when to poll next). Nothing here talks to the store or the network;
// every function is safe for concurrent use.
//
// # The queue
//
// Shoppers who join between OpensAt and the sale's start form the pre-queue. At the start the
// pre-queue is frozen and ordered by Order(seed, users): ascending HMAC-SHA256(seed, user_id),
// the seed being the 32 random bytes whose hex SHA-256 (Commitment) was published when the
// pre-queue opened. Positions are 1-based. Later joiners get the next positions in join order.
// A per-sale serving counter S in the store admits every position <= S; it moves by
// AdmitPerSecond once a second while the sale is live and not sold out.
package waitroom

import (
	"fmt"
	"strconv"
	"time"
)

// Limits of the settings.
const (
	MaxAdmitPerSecond = 1_000_000
	MaxPassSeconds    = 3600
	MaxHoldSeconds    = 3600
	// MaxOpenBefore bounds how long before the start a pre-queue may open.
	MaxOpenBefore = 7 * 24 * time.Hour
)

// Input is the admin body's "waiting_room" object. Pointer fields tell absent from zero.
type Input struct {
	// OpensAt is required: an RFC 3339 instant before the sale's starts_at.
	OpensAt string `json:"opens_at"`
	// AdmitPerSecond is required: shoppers admitted per second, 1 to MaxAdmitPerSecond.
	AdmitPerSecond *int64 `json:"admit_per_second"`
	// PassSeconds is optional: how long an admission pass is valid, 5 to MaxPassSeconds; absent means 120.
	PassSeconds *int64 `json:"pass_seconds"`
	// HoldSeconds is optional: a waiting place is lost after this long without a poll, 10 to
	// MaxHoldSeconds; absent means 60.
	HoldSeconds *int64 `json:"hold_seconds"`
}

// Config is a validated waiting room. The zero Config means "no waiting room".
type Config struct {
	OpensAt        time.Time
	AdmitPerSecond int64
	PassSeconds    int64
	HoldSeconds    int64
}

// Defaults of the optional settings.
const (
	DefaultPassSeconds = 120
	DefaultHoldSeconds = 60
)

func invalid(format string, a ...any) error { return fmt.Errorf(format, a...) }

// Validate checks in against the sale's start and returns the Config it describes, or an error
// whose message says how to fix the input. It is the one home of the waiting_room rules.
func (in Input) Validate(startsAt time.Time) (Config, error) {
	var c Config
	t, err := time.Parse(time.RFC3339, in.OpensAt)
	if err != nil {
		return c, invalid("waiting_room.opens_at is required: an RFC 3339 time before starts_at")
	}
	c.OpensAt = t.UTC().Truncate(time.Millisecond)
	if !c.OpensAt.Before(startsAt) {
		return c, invalid("waiting_room.opens_at must be before starts_at")
	}
	if startsAt.Sub(c.OpensAt) > MaxOpenBefore {
		return c, invalid("waiting_room.opens_at must be at most %v before starts_at", MaxOpenBefore)
	}
	if in.AdmitPerSecond == nil || *in.AdmitPerSecond < 1 || *in.AdmitPerSecond > MaxAdmitPerSecond {
		return c, invalid("waiting_room.admit_per_second is required: a whole number from 1 to %d", MaxAdmitPerSecond)
	}
	c.AdmitPerSecond = *in.AdmitPerSecond
	c.PassSeconds = DefaultPassSeconds
	if in.PassSeconds != nil {
		if *in.PassSeconds < 5 || *in.PassSeconds > MaxPassSeconds {
			return c, invalid("waiting_room.pass_seconds must be from 5 to %d", MaxPassSeconds)
		}
		c.PassSeconds = *in.PassSeconds
	}
	c.HoldSeconds = DefaultHoldSeconds
	if in.HoldSeconds != nil {
		if *in.HoldSeconds < 10 || *in.HoldSeconds > MaxHoldSeconds {
			return c, invalid("waiting_room.hold_seconds must be from 10 to %d", MaxHoldSeconds)
		}
		c.HoldSeconds = *in.HoldSeconds
	}
	return c, nil
}

// Enabled reports whether c is a waiting room (not the zero Config).
func (c Config) Enabled() bool { return c.AdmitPerSecond > 0 }

// Hash field names of a waiting room in the sale hash (keyspace.Sale).
const (
	FieldOpensAtMs = "wr_opens_at_ms"
	FieldAdmit     = "wr_admit_per_second"
	FieldPass      = "wr_pass_seconds"
	FieldHold      = "wr_hold_seconds"
)

// HashFields returns c as field/value pairs of the sale hash; none for a disabled Config.
func (c Config) HashFields() []string {
	if !c.Enabled() {
		return nil
	}
	return []string{
		FieldOpensAtMs, strconv.FormatInt(c.OpensAt.UnixMilli(), 10),
		FieldAdmit, strconv.FormatInt(c.AdmitPerSecond, 10),
		FieldPass, strconv.FormatInt(c.PassSeconds, 10),
		FieldHold, strconv.FormatInt(c.HoldSeconds, 10),
	}
}

// FromHash reads the waiting room from a sale hash; the zero Config when it has none or the
// fields are malformed.
func FromHash(m map[string]string) Config {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	c := Config{AdmitPerSecond: num(FieldAdmit), PassSeconds: num(FieldPass), HoldSeconds: num(FieldHold)}
	if c.AdmitPerSecond <= 0 || c.PassSeconds <= 0 || c.HoldSeconds <= 0 || m[FieldOpensAtMs] == "" {
		return Config{}
	}
	c.OpensAt = time.UnixMilli(num(FieldOpensAtMs)).UTC()
	return c
}

// Fingerprint is a short text of c for a sale's create fingerprint ("" when disabled).
func (c Config) Fingerprint() string {
	if !c.Enabled() {
		return ""
	}
	return fmt.Sprintf("wr:%d:%d:%d:%d", c.OpensAt.UnixMilli(), c.AdmitPerSecond, c.PassSeconds, c.HoldSeconds)
}

// The public rendering of a waiting room is part of the sale view (shared/sale.Render).
