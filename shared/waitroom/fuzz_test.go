package waitroom

import (
	"strings"
	"testing"
	"time"
)

// FuzzOpenToken: a queue token or a pass opens only when it is exactly what the sealer would
// write for what it carries (no second spelling of a signed token verifies: a line break, a
// padding character or another encoding of a field), and nothing a client sends makes Open
// panic or accept a negative position.
func FuzzOpenToken(f *testing.F) {
	keys := map[string][]byte{"k1": []byte(strings.Repeat("w", 32)), "k0": []byte(strings.Repeat("o", 32))}
	s, err := NewSealer(keys, "k1")
	if err != nil {
		f.Fatal(err)
	}
	old, err := NewSealer(keys, "k0") // a key rotated out of signing, still verifying
	if err != nil {
		f.Fatal(err)
	}
	sealerOf := func(tok string) *Sealer { // the sealer whose key id tok's payload names
		p, _, _ := strings.Cut(tok, ".")
		if payload, err := b64.DecodeString(p); err == nil && strings.HasPrefix(string(payload), "k0|") {
			return old
		}
		return s
	}
	at := time.UnixMilli(1_764_000_000_000)
	ticket := s.SealTicket(Ticket{Sale: "fs-1", User: "u-1", Position: 7, LastPoll: at, PassExpires: at.Add(time.Minute)})
	pass := s.SealPass(Pass{Sale: "fs-1", User: "u-1", Position: 7, Expires: at.Add(time.Minute)})
	f.Add(ticket)
	f.Add(pass)
	f.Add(s.SealTicket(Ticket{Sale: "fs-1", User: "u-1", LastPoll: at}))
	f.Add(old.SealPass(Pass{Sale: "fs-1", User: "u-1", Position: 1, Expires: at.Add(time.Second)}))
	f.Add(ticket[:10] + "\n" + ticket[10:])
	f.Add(strings.Replace(pass, ".", "=.", 1))
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", MaxTokenLen+1))
	f.Fuzz(func(t *testing.T, tok string) {
		if tk, err := s.OpenTicket(tok); err == nil {
			if tk.Position < 0 {
				t.Fatalf("ticket %q opened with position %d", tok, tk.Position)
			}
			if again := sealerOf(tok).SealTicket(tk); again != tok {
				t.Fatalf("ticket %q opened, but its fields seal as %q", tok, again)
			}
		}
		if p, err := s.OpenPass(tok, "fs-1", "u-1", at); err == nil {
			if p.Position < 1 || p.Sale != "fs-1" || p.User != "u-1" || !at.Before(p.Expires) {
				t.Fatalf("pass %q opened as %+v", tok, p)
			}
			if again := sealerOf(tok).SealPass(p); again != tok {
				t.Fatalf("pass %q opened, but its fields seal as %q", tok, again)
			}
		}
	})
}
