package proxyproto

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	client4 = netip.MustParseAddrPort("198.51.100.7:40000")
	edge4   = netip.MustParseAddrPort("10.0.0.2:8000")
	client6 = netip.MustParseAddrPort("[2001:db8::7]:40000")
	edge6   = netip.MustParseAddrPort("[2001:db8::2]:8000")
)

func TestParse(t *testing.T) {
	v2local := append(append([]byte{}, sigV2...), 0x20, 0x00, 0, 0)
	tests := []struct {
		name    string
		in      string
		wantSrc string // "" for none
		wantN   int    // -1: len(in) minus the trailing "GET"
		wantErr error
	}{
		{"v1 tcp4", string(AppendV1(nil, client4, edge4)) + "GET", "198.51.100.7:40000", -1, nil},
		{"v1 tcp6", string(AppendV1(nil, client6, edge6)) + "GET", "[2001:db8::7]:40000", -1, nil},
		{"v1 unknown", "PROXY UNKNOWN\r\nGET", "", -1, nil},
		{"v2 tcp4", string(AppendV2(nil, client4, edge4)) + "GET", "198.51.100.7:40000", -1, nil},
		{"v2 tcp6", string(AppendV2(nil, client6, edge6)) + "GET", "[2001:db8::7]:40000", -1, nil},
		{"v2 local (health check)", string(v2local) + "GET", "", -1, nil},
		{"plain http", "GET / HTTP/1.1\r\n", "", 0, ErrNotProxy},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::7 10.0.0.2 1 2\r\n", "", 0, ErrMalformed},
		{"v1 bad port", "PROXY TCP4 1.2.3.4 10.0.0.2 99999 2\r\n", "", 0, ErrMalformed},
		{"v1 no end", "PROXY TCP4 " + strings.Repeat("1", 120), "", 0, ErrMalformed},
		{"v1 cut short", "PROXY TCP4 1.2.3.4", "", 0, ErrMalformed},
		{"v2 bad version", string(sigV2) + "\x31\x11\x00\x0c" + strings.Repeat("\x00", 12), "", 0, ErrMalformed},
		{"v2 short address block", string(sigV2) + "\x21\x11\x00\x04" + "\x01\x02\x03\x04", "", 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := ParseComplete([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := tt.wantN
			if want < 0 {
				want = len(tt.in) - 3
			}
			if n != want {
				t.Fatalf("length %d, want %d", n, want)
			}
			got := ""
			if h.Src.IsValid() {
				got = h.Src.String()
			}
			if got != tt.wantSrc {
				t.Fatalf("source %q, want %q", got, tt.wantSrc)
			}
		})
	}
}

// serve accepts on l and answers each connection's first line with its remote address.
func serve(l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				c.Write([]byte(c.RemoteAddr().String() + " " + line))
			}()
		}
	}()
}

func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Options{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, HeaderTimeout: time.Second})
	t.Cleanup(func() { l.Close() })
	serve(l)
	addr := inner.Addr().String()
	dialFrom := func(src string) net.Dialer {
		return net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	}

	// A trusted peer that stalls does not hold up anyone else's accept.
	d := dialFrom("127.0.0.2")
	stalled, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Write(sigV2[:5])

	tests := []struct {
		name, from, send, wantPrefix string
	}{
		{"trusted v2", "127.0.0.2", string(AppendV2(nil, client4, edge4)) + "hello\n", "198.51.100.7:40000 hello"},
		{"trusted v1 ipv6", "127.0.0.2", string(AppendV1(nil, client6, edge6)) + "hello\n", "[2001:db8::7]:40000 hello"},
		{"trusted without a header", "127.0.0.2", "hello\n", "127.0.0.2:"},
		{"untrusted header passes as bytes", "127.0.0.3", string(AppendV1(nil, client4, edge4)) + "hello\n", "127.0.0.3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dialFrom(tt.from)
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(tt.send))
			line, _ := bufio.NewReader(c).ReadString('\n')
			if !strings.HasPrefix(line, tt.wantPrefix) {
				t.Fatalf("server saw %q, want prefix %q", line, tt.wantPrefix)
			}
			if tt.from == "127.0.0.3" && !strings.Contains(line, "PROXY TCP4") {
				t.Fatalf("the untrusted peer's header did not reach the server as data: %q", line)
			}
		})
	}
	// The stalled header is given up after HeaderTimeout: the connection is closed.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stalled.Read(make([]byte, 1)); err == nil {
		t.Fatal("a stalled trusted peer's connection was not closed")
	}
}
