package clientaddr

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzForwarded: whatever X-Forwarded-For and Forwarded a trusted peer relays, the client
// address is the peer's or an address written in the headers, never invalid; from an untrusted
// peer it is always the peer's.
func FuzzForwarded(f *testing.F) {
	f.Add("6.6.6.6, 198.51.100.7, 10.2.2.2", `for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"`)
	f.Add("", `for=_hidden, for=unknown`)
	f.Add("[2001:db8::1]:443,,", "")
	f.Add("nonsense", `For="1.2.3.4`)
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		for _, peer := range []string{"10.1.1.1", "203.0.113.9"} {
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(peer), Port: 1}, nil)
			if xff != "" {
				ctx.Request.Header.Set("X-Forwarded-For", xff)
			}
			if fwd != "" {
				ctx.Request.Header.Set("Forwarded", fwd)
			}
			got := r.Addr(&ctx)
			if !got.IsValid() {
				t.Fatalf("peer %s xff %q fwd %q: invalid address", peer, xff, fwd)
			}
			if peer == "203.0.113.9" && got.String() != peer {
				t.Fatalf("untrusted peer with xff %q fwd %q: %v, want the peer", xff, fwd, got)
			}
			if got.String() != peer && !bytes.Contains(ctx.Request.Header.RawHeaders(), []byte(got.String())) &&
				!bytes.Contains(ctx.Request.Header.RawHeaders(), []byte(got.StringExpanded())) && !containsParsed(xff+","+fwd, got) {
				t.Fatalf("peer %s xff %q fwd %q: %v is neither the peer nor in the headers", peer, xff, fwd, got)
			}
			if k := AppendKey(nil, got); len(k) != 4 && len(k) != 8 {
				t.Fatalf("key %x of %v", k, got)
			}
		}
	})
}

// containsParsed reports whether some comma-separated element of s parses (as either header's
// element) to a.
func containsParsed(s string, a netip.Addr) bool {
	for _, e := range bytes.Split([]byte(s), []byte(",")) {
		for _, fwd := range []bool{false, true} {
			if b, err := ParseForwardedFor(e, fwd); err == nil && b == a {
				return true
			}
		}
	}
	return false
}
