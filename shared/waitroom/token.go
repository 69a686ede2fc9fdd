package waitroom

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"flashedge/shared/httpapi"
)

// Ticket is what a signed queue token carries: whose place it is and what the edge last told
// them, so any edge can answer the next poll without asking the store.
type Ticket struct {
	Sale string
	User string
	// Position is the place in the queue; 0 while unknown (a pre-queue joiner before the shuffle).
	Position int64
	// LastPoll is when the holder last asked (the place is lost HoldSeconds after it).
	LastPoll time.Time
	// PassExpires is when the holder's admission pass expires; zero before admission.
	PassExpires time.Time
}

// Pass is an admission: the holder may attempt the sale until Expires.
type Pass struct {
	Sale     string
	User     string
	Position int64
	Expires  time.Time
}

// Errors of Open.
var (
	ErrMalformed = errors.New("waitroom: malformed token")
	ErrForged    = errors.New("waitroom: token signature does not verify")
	ErrExpired   = errors.New("waitroom: pass expired")
)

// MaxTokenLen bounds the tokens Open looks at.
const MaxTokenLen = 512

// Sealer signs and verifies queue tokens and passes with HMAC-SHA256. Every edge holding the
// same keys verifies what any of them signed, with no store trip. Safe for concurrent use; its
// keys never change after NewSealer.
type Sealer struct {
	keys    map[string][]byte
	current string
}

// NewSealer returns a Sealer signing with keys[current]; the other keys still verify (rotation).
// Each secret is derived from the given one with HMAC("flashedge waitroom v1"), so a secret
// shared with another use (the session keys) never signs the same bytes for both.
func NewSealer(keys map[string][]byte, current string) (*Sealer, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("waitroom: current key id %q is not among the keys", current)
	}
	s := &Sealer{keys: make(map[string][]byte, len(keys)), current: current}
	for kid, secret := range keys {
		if len(secret) < 16 || strings.ContainsAny(kid, "|.") || kid == "" {
			return nil, fmt.Errorf("waitroom: key %q: a secret of at least 16 bytes and a kid without '|' or '.' are required", kid)
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("flashedge waitroom v1"))
		s.keys[kid] = m.Sum(nil)
	}
	return s, nil
}

var b64 = base64.RawURLEncoding.Strict()

func (s *Sealer) seal(fields ...string) string {
	payload := s.current + "|" + strings.Join(fields, "|")
	m := hmac.New(sha256.New, s.keys[s.current])
	m.Write([]byte(payload))
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(m.Sum(nil))
}

func (s *Sealer) open(tok string, kind string, n int) ([]string, error) {
	if len(tok) == 0 || len(tok) > MaxTokenLen {
		return nil, ErrMalformed
	}
	p, mac, ok := strings.Cut(tok, ".")
	if !ok || !httpapi.Base64URL(p) || !httpapi.Base64URL(mac) {
		return nil, ErrMalformed
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(mac)
	if err1 != nil || err2 != nil {
		return nil, ErrMalformed
	}
	f := strings.Split(string(payload), "|")
	if len(f) != n+1 || f[1] != kind {
		return nil, ErrMalformed
	}
	key, ok := s.keys[f[0]]
	if !ok {
		return nil, ErrForged
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), sum) {
		return nil, ErrForged
	}
	return f[2:], nil
}

// SealTicket returns t as a queue token.
func (s *Sealer) SealTicket(t Ticket) string {
	var exp int64
	if !t.PassExpires.IsZero() {
		exp = t.PassExpires.UnixMilli()
	}
	return s.seal("q", t.Sale, t.User, strconv.FormatInt(t.Position, 10), strconv.FormatInt(t.LastPoll.UnixMilli(), 10),
		strconv.FormatInt(exp, 10))
}

// OpenTicket verifies a queue token and returns what it carries.
func (s *Sealer) OpenTicket(tok string) (Ticket, error) {
	f, err := s.open(tok, "q", 6)
	if err != nil {
		return Ticket{}, err
	}
	pos, e1 := strconv.ParseInt(f[2], 10, 64)
	last, e2 := strconv.ParseInt(f[3], 10, 64)
	exp, e3 := strconv.ParseInt(f[4], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil || pos < 0 || exp < 0 {
		return Ticket{}, ErrMalformed
	}
	t := Ticket{Sale: f[0], User: f[1], Position: pos, LastPoll: time.UnixMilli(last)}
	if exp > 0 {
		t.PassExpires = time.UnixMilli(exp)
	}
	return t, nil
}

// SealPass returns p as a pass token.
func (s *Sealer) SealPass(p Pass) string {
	return s.seal("p", p.Sale, p.User, strconv.FormatInt(p.Position, 10), strconv.FormatInt(p.Expires.UnixMilli(), 10))
}

// OpenPass verifies a pass for sale and user at now: ErrForged for a bad signature or one issued
// for another sale or user, ErrExpired past its expiry.
func (s *Sealer) OpenPass(tok, sale, user string, now time.Time) (Pass, error) {
	f, err := s.open(tok, "p", 5)
	if err != nil {
		return Pass{}, err
	}
	pos, e1 := strconv.ParseInt(f[2], 10, 64)
	exp, e2 := strconv.ParseInt(f[3], 10, 64)
	if e1 != nil || e2 != nil || pos < 1 {
		return Pass{}, ErrMalformed
	}
	p := Pass{Sale: f[0], User: f[1], Position: pos, Expires: time.UnixMilli(exp)}
	if p.Sale != sale || p.User != user {
		return Pass{}, ErrForged
	}
	if !now.Before(p.Expires) {
		return Pass{}, ErrExpired
	}
	return p, nil
}
