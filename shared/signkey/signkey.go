// Package signkey reads the HMAC secrets of FLASHEDGE_SESSION_SECRET, the one secret list every
// flashedge process is given: the edge signs sessions with it, and the edge and the order service
// derive the waiting room's and the flash-sale challenges' keys from it. One parser, so every
// process reads the same list the same way.
package signkey

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of a secret list.
const (
	// MinSecretLen is the shortest secret accepted: 32 bytes, the HMAC-SHA256 output size.
	MinSecretLen = 32
	// MaxKidLen is the longest key id.
	MaxKidLen = 16
	// DefaultKid is the key id of a secret given without one.
	DefaultKid = "k1"
)

// Parse reads secrets from configuration text. Two forms are accepted:
//
//	"kid1:secret1,kid2:secret2"  several keys; the first one signs, all verify
//	"secret"                     one key with kid "k1" (the text has no ':' at all)
//
// Secrets are taken as the bytes written (not decoded) and may not contain ',' or, in the
// single form, ':'. It refuses empty, duplicate or invalid kids (ValidKid) and secrets shorter
// than MinSecretLen, with a message that says how to fix it.
func Parse(spec string) (keys map[string][]byte, currentKid string, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, "", errors.New("no signing secret configured: want \"secret\" or \"kid:secret[,kid:secret...]\" with secrets of at least 32 bytes")
	}
	if !strings.Contains(spec, ":") {
		if len(spec) < MinSecretLen {
			return nil, "", fmt.Errorf("the secret is %d bytes; it must be at least %d (for example from `openssl rand -base64 48`)", len(spec), MinSecretLen)
		}
		return map[string][]byte{DefaultKid: []byte(spec)}, DefaultKid, nil
	}
	keys = make(map[string][]byte)
	for i, part := range strings.Split(spec, ",") {
		kid, secret, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || !ValidKid(kid) {
			return nil, "", fmt.Errorf("entry %d of the secret list is not kid:secret with a kid of 1 to %d of A-Z a-z 0-9 _ -", i+1, MaxKidLen)
		}
		if _, dup := keys[kid]; dup {
			return nil, "", fmt.Errorf("key id %q appears twice in the secret list", kid)
		}
		if len(secret) < MinSecretLen {
			return nil, "", fmt.Errorf("secret of key %q is %d bytes; it must be at least %d (for example from `openssl rand -base64 48`)", kid, len(secret), MinSecretLen)
		}
		keys[kid] = []byte(secret)
		if i == 0 {
			currentKid = kid
		}
	}
	return keys, currentKid, nil
}

// ValidKid reports whether kid is 1 to MaxKidLen of A-Z a-z 0-9 _ -.
func ValidKid(kid string) bool {
	if len(kid) == 0 || len(kid) > MaxKidLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
