// Package session issues and verifies the edge's stateless session tokens.
//
// A token is
//
//	base64url(payload) "." base64url(mac)
//
// with unpadded URL-safe base64 (RFC 4648 §5) and
//
//	payload = "1" "." kid "." expiry "." userID
//	mac     = HMAC-SHA256(secret[kid], payload)
//
// "1" is the format version, kid names the secret that signed the token (1 to 16 of
// A-Z a-z 0-9 _ -), expiry is the end of validity in whole unix seconds (decimal, no sign) and
// userID is the user id (see httpapi.ValidUserID), last because it may itself contain dots. The MAC
// covers the decoded payload bytes, so nothing in it can change without the secret.
//
// Verification needs no store round trip: a Signer holds every accepted secret by kid. To rotate,
// deploy "new:<secret>,old:<secret>" (new one first: it signs), wait one token lifetime, then
// drop the old one. Tokens cannot be revoked one by one; keep the lifetime short.
package session

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"flashedge/shared/httpapi"
	"flashedge/shared/signkey"
)

// Errors returned by Verify. Callers answer all of them with 401; they differ for logs and tests.
var (
	// ErrMalformed: the token is not in the format above (bad base64, missing parts, too long)
	// or a correctly signed payload does not parse.
	ErrMalformed = errors.New("session: malformed token")
	// ErrUnknownKey: the token names a kid this Signer does not hold (a retired or foreign key).
	ErrUnknownKey = errors.New("session: token signed with an unknown key")
	// ErrBadSignature: the MAC does not match the payload (forged or tampered).
	ErrBadSignature = errors.New("session: bad token signature")
	// ErrExpired: the signature is good but the expiry has passed.
	ErrExpired = errors.New("session: token expired")
	// ErrNoToken: FromRequest found neither an Authorization bearer token nor the cookie.
	ErrNoToken = errors.New("session: no token")
)

// Limits of the format.
const (
	// MinSecretLen is the shortest secret accepted: 32 bytes, the HMAC-SHA256 output size.
	MinSecretLen = signkey.MinSecretLen
	// MaxKidLen is the longest key id.
	MaxKidLen = signkey.MaxKidLen
	// MaxUserIDLen is the longest user id a token can carry.
	MaxUserIDLen = httpapi.MaxUserIDLen
	// DefaultKid is the key id of a secret given without one.
	DefaultKid = signkey.DefaultKid

	version    = '1'
	macLen     = sha256.Size
	macB64Len  = (macLen*8 + 5) / 6 // 43 characters of unpadded base64
	maxPayload = 2 + MaxKidLen + 1 + 20 + 1 + MaxUserIDLen
	// MaxTokenLen bounds what Verify looks at; longer input is ErrMalformed without decoding.
	MaxTokenLen = (maxPayload*8+5)/6 + 1 + macB64Len
)

// Signer issues and verifies tokens. It is safe for concurrent use; its keys never change after
// NewSigner.
type Signer struct {
	keys    map[string]*key
	current *key
	ttl     time.Duration
	b64     *base64.Encoding
}

// key is one secret with a pool of keyed HMAC states, so Verify allocates nothing.
type key struct {
	kid    string
	secret []byte
	macs   sync.Pool // of *macState
}

type macState struct {
	h       hash.Hash
	payload [maxPayload]byte
	sum     [macLen]byte
}

func (k *key) get() *macState {
	if m, ok := k.macs.Get().(*macState); ok {
		return m
	}
	return &macState{h: hmac.New(sha256.New, k.secret)}
}

// NewSigner returns a Signer holding keys (kid -> secret) that signs with currentKid and issues
// tokens valid for ttl. Every kid must satisfy the kid rule of the package doc, every secret be at
// least MinSecretLen bytes, currentKid be among the keys and ttl be positive. The secrets are copied.
func NewSigner(keys map[string][]byte, currentKid string, ttl time.Duration) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no signing secret: set one of at least 32 bytes (for example from `openssl rand -base64 48`)")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("session: token lifetime %v must be positive", ttl)
	}
	s := &Signer{keys: make(map[string]*key, len(keys)), ttl: ttl, b64: base64.RawURLEncoding.Strict()}
	for kid, secret := range keys {
		if !validKid(kid) {
			return nil, fmt.Errorf("session: key id %q: want 1 to %d of A-Z a-z 0-9 _ -", kid, MaxKidLen)
		}
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("session: secret of key %q is %d bytes; it must be at least %d (for example from `openssl rand -base64 48`)", kid, len(secret), MinSecretLen)
		}
		s.keys[kid] = &key{kid: kid, secret: bytes.Clone(secret)}
	}
	s.current = s.keys[currentKid]
	if s.current == nil {
		return nil, fmt.Errorf("session: current key id %q is not among the keys", currentKid)
	}
	return s, nil
}

// ParseKeys reads secrets from configuration text (signkey.Parse, which documents the forms).
func ParseKeys(spec string) (keys map[string][]byte, currentKid string, err error) {
	keys, currentKid, err = signkey.Parse(spec)
	if err != nil {
		return nil, "", fmt.Errorf("session: %w", err)
	}
	return keys, currentKid, nil
}

// TTL is the lifetime of issued tokens.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issue signs a token for userID with the current key, valid until now+TTL (truncated to the
// second, which is the returned expiry). userID must satisfy httpapi.ValidUserID: Issue panics otherwise,
// because only code that has validated its input may mint identities.
func (s *Signer) Issue(userID string, now time.Time) (token string, expires time.Time) {
	if !httpapi.ValidUserID([]byte(userID)) {
		panic(fmt.Sprintf("session: Issue with invalid user id %q", userID))
	}
	exp := now.Add(s.ttl).Unix()
	payload := make([]byte, 0, maxPayload)
	payload = append(payload, version, '.')
	payload = append(payload, s.current.kid...)
	payload = append(payload, '.')
	payload = strconv.AppendInt(payload, exp, 10)
	payload = append(payload, '.')
	payload = append(payload, userID...)

	m := s.current.get()
	m.h.Reset()
	m.h.Write(payload)
	mac := m.h.Sum(m.sum[:0])
	out := make([]byte, 0, s.b64.EncodedLen(len(payload))+1+macB64Len)
	out = s.b64.AppendEncode(out, payload)
	out = append(out, '.')
	out = s.b64.AppendEncode(out, mac)
	s.current.macs.Put(m)
	return string(out), time.Unix(exp, 0)
}

// Verify checks token at time now and returns its user id. The MAC is compared in constant time
// and checked before anything else in the payload is trusted. It allocates only the returned
// string; AppendVerify allocates nothing.
func (s *Signer) Verify(token []byte, now time.Time) (string, error) {
	var buf [MaxUserIDLen]byte
	uid, err := s.AppendVerify(buf[:0], token, now)
	if err != nil {
		return "", err
	}
	return string(uid), nil
}

// AppendVerify is Verify that appends the user id to dst and returns the extended slice (dst
// unchanged on error). With room in dst it allocates nothing. token is only read.
func (s *Signer) AppendVerify(dst, token []byte, now time.Time) ([]byte, error) {
	if len(token) > MaxTokenLen {
		return dst, ErrMalformed
	}
	dot := bytes.IndexByte(token, '.')
	if dot < 0 {
		return dst, ErrMalformed
	}
	p64, m64 := token[:dot], token[dot+1:]
	if len(m64) != macB64Len || len(p64) == 0 || !httpapi.Base64URL(p64) || !httpapi.Base64URL(m64) {
		return dst, ErrMalformed
	}
	var mac [macLen]byte
	if n, err := s.b64.Decode(mac[:], m64); err != nil || n != macLen {
		return dst, ErrMalformed
	}

	// The kid decides which key checks the MAC, so it is read before the MAC is known good; it
	// only selects a key and is covered by the MAC itself.
	var scratch [maxPayload]byte
	if s.b64.DecodedLen(len(p64)) > len(scratch) {
		return dst, ErrMalformed
	}
	n, err := s.b64.Decode(scratch[:], p64)
	if err != nil {
		return dst, ErrMalformed
	}
	payload := scratch[:n]
	if len(payload) < 2 || payload[0] != version || payload[1] != '.' {
		return dst, ErrMalformed
	}
	rest := payload[2:]
	dot = bytes.IndexByte(rest, '.')
	if dot < 0 {
		return dst, ErrMalformed
	}
	k := s.keys[string(rest[:dot])] // no allocation: the compiler looks up by the bytes
	if k == nil {
		return dst, ErrUnknownKey
	}
	rest = rest[dot+1:]

	m := k.get()
	copy(m.payload[:], payload) // the hash.Hash interface would make a stack buffer escape
	m.h.Reset()
	m.h.Write(m.payload[:len(payload)])
	good := hmac.Equal(m.h.Sum(m.sum[:0]), mac[:])
	k.macs.Put(m)
	if !good {
		return dst, ErrBadSignature
	}

	dot = bytes.IndexByte(rest, '.')
	if dot < 0 {
		return dst, ErrMalformed
	}
	exp, ok := parseUnix(rest[:dot])
	uid := rest[dot+1:]
	if !ok || !httpapi.ValidUserID(uid) {
		return dst, ErrMalformed
	}
	if now.Unix() >= exp {
		return dst, ErrExpired
	}
	return append(dst, uid...), nil
}

// parseUnix parses 1 to 19 decimal digits without allocating.
func parseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func validKid(kid string) bool { return signkey.ValidKid(kid) }
