package proxyproto

import (
	"errors"
	"testing"
)

// FuzzParse: any bytes a peer sends are either not a PROXY header, a malformed one, or a header
// whose length lies within the input; a v2 header rendered from what was parsed parses back to
// the same source.
func FuzzParse(f *testing.F) {
	f.Add(AppendV1(nil, client4, edge4))
	f.Add(AppendV1(nil, client6, edge6))
	f.Add(AppendV2(nil, client4, edge4))
	f.Add(AppendV2(nil, client6, edge6))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseComplete(b)
		if err != nil {
			if !errors.Is(err, ErrNotProxy) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): unexpected error %v", b, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("Parse(%q): length %d outside the input", b, n)
		}
		if !h.Src.IsValid() || !h.Dst.IsValid() || h.Src.Addr().Is4() != h.Dst.Addr().Is4() {
			return
		}
		again, m, err := ParseComplete(AppendV2(nil, h.Src, h.Dst))
		if err != nil || again.Src != h.Src || m == 0 {
			t.Fatalf("round trip of %v: %v %v", h.Src, again.Src, err)
		}
	})
}
