package load

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		url      string
		wantAddr string // "" means refused
		wantErr  string
	}{
		{"http://127.0.0.1:8000", "127.0.0.1:8000", ""},
		{"http://127.0.0.1:8000/", "127.0.0.1:8000", ""},
		{"http://127.1.2.3:9", "127.1.2.3:9", ""},
		{"http://localhost:8000", "127.0.0.1:8000", ""},
		{"http://LOCALHOST", "127.0.0.1:80", ""},
		{"http://[::1]:8000", "[::1]:8000", ""},
		{"http://10.0.0.5:8000", "", "not a loopback"},
		{"http://192.168.1.10", "", "not a loopback"},
		{"http://0.0.0.0:8000", "", "not a loopback"},
		{"http://example.com:8000", "", "not a loopback"},
		{"http://localhost.example.com", "", "not a loopback"},
		{"http://127.0.0.1.nip.io", "", "not a loopback"},
		{"http://[::ffff:8.8.8.8]:80", "", "not a loopback"},
		{"https://127.0.0.1:8443", "", "only http://"},
		{"ftp://127.0.0.1", "", "only http://"},
		{"127.0.0.1:8000", "", ""},
		{"http://127.0.0.1:8000/api", "", "base URL only"},
		{"http://user:pw@127.0.0.1:8000", "", "base URL only"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			tg, err := ParseTarget(c.url)
			if c.wantAddr == "" {
				if err == nil {
					t.Fatalf("ParseTarget(%q) accepted it (%+v), want a refusal", c.url, tg)
				}
				if c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseTarget(%q) error %q, want it to say %q", c.url, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", c.url, err)
			}
			if tg.Addr != c.wantAddr {
				t.Fatalf("ParseTarget(%q).Addr = %q, want %q", c.url, tg.Addr, c.wantAddr)
			}
		})
	}
}
