package clientaddr

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAppendKey(t *testing.T) {
	tests := []struct {
		name, a, b string
		same       bool
	}{
		{"one IPv4", "192.0.2.1", "192.0.2.1", true},
		{"two IPv4", "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped is IPv4", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"other /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := AppendKey(nil, netip.MustParseAddr(tt.a))
			kb := AppendKey(nil, netip.MustParseAddr(tt.b))
			if (string(ka) == string(kb)) != tt.same {
				t.Fatalf("keys %x and %x: same=%v, want %v", ka, kb, string(ka) == string(kb), tt.same)
			}
			if len(ka) > KeyLen {
				t.Fatalf("key %x longer than KeyLen", ka)
			}
		})
	}
}

func TestResolver(t *testing.T) {
	trusted, err := ParseCIDRs("10.0.0.0/8, 192.168.7.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	r := New(trusted)
	tests := []struct {
		name    string
		peer    string
		headers [][2]string
		want    string
	}{
		{"untrusted peer's header ignored", "203.0.113.9", [][2]string{{"X-Forwarded-For", "1.2.3.4"}}, "203.0.113.9"},
		{"trusted peer without header", "10.1.1.1", nil, "10.1.1.1"},
		{"trusted peer, one hop", "10.1.1.1", [][2]string{{"X-Forwarded-For", "198.51.100.7"}}, "198.51.100.7"},
		{"client-written left part ignored", "10.1.1.1", [][2]string{{"X-Forwarded-For", "6.6.6.6, 198.51.100.7"}}, "198.51.100.7"},
		{"trusted hops skipped", "10.1.1.1", [][2]string{{"X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.2.2.2, 192.168.7.7"}}, "198.51.100.7"},
		{"several header lines", "10.1.1.1", [][2]string{{"X-Forwarded-For", "6.6.6.6"}, {"X-Forwarded-For", "198.51.100.8, 10.9.9.9"}}, "198.51.100.8"},
		{"port kept out", "10.1.1.1", [][2]string{{"X-Forwarded-For", "198.51.100.7:5555"}}, "198.51.100.7"},
		{"garbage at the right stops at the peer", "10.1.1.1", [][2]string{{"X-Forwarded-For", "198.51.100.7, nonsense"}}, "10.1.1.1"},
		{"all trusted: leftmost", "10.1.1.1", [][2]string{{"X-Forwarded-For", "10.3.3.3, 10.2.2.2"}}, "10.3.3.3"},
		{"Forwarded", "10.1.1.1", [][2]string{{"Forwarded", `for=6.6.6.6, for="[2001:db8::5]:4711";proto=https`}}, "2001:db8::5"},
		{"Forwarded obfuscated", "10.1.1.1", [][2]string{{"Forwarded", `for=_hidden`}}, "10.1.1.1"},
		{"X-Forwarded-For before Forwarded", "10.1.1.1", [][2]string{{"Forwarded", "for=6.6.6.6"}, {"X-Forwarded-For", "198.51.100.1"}}, "198.51.100.1"},
		{"IPv6 trusted peer", "fd00::1", [][2]string{{"X-Forwarded-For", "2001:db8::7"}}, "2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(tt.peer), Port: 1}, nil)
			for _, h := range tt.headers {
				ctx.Request.Header.Add(h[0], h[1])
			}
			if got := r.Addr(&ctx); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("Addr = %v, want %s", got, tt.want)
			}
			var none *Resolver
			if got := none.Addr(&ctx); got != netip.MustParseAddr(tt.peer).Unmap() {
				t.Fatalf("nil resolver: Addr = %v, want the peer %s", got, tt.peer)
			}
		})
	}
}

func TestParseCIDRsRefusesGarbage(t *testing.T) {
	for _, spec := range []string{"10.0.0.0/33", "nope", "10.0.0.1/8/8"} {
		if _, err := ParseCIDRs(spec); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted", spec)
		}
	}
}
