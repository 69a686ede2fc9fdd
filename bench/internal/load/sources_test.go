package load

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSourcesBindEachAddress: every client of a Sources reaches a real listener from its own
// loopback address, and the same index keeps the same client.
func TestSourcesBindEachAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = w.Write([]byte(host))
	}))
	defer srv.Close()
	target, err := ParseTarget(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []uint32{shopperBase, botBase} {
		src := NewSources(target, base, 300, ClientOptions{MaxConns: 2, Timeout: 5 * time.Second})
		for _, i := range []int{0, 1, 254, 255, 256, 299} {
			want := SourceAddr(base, i).String()
			var got string
			res := src.Client(i).Do(nil, Call{Method: "GET", Path: "/"}, func(_ int, b []byte) { got = string(b) })
			if res.Err != nil || got != want {
				t.Fatalf("client %d: peer address %q (err %v), want %q", i, got, res.Err, want)
			}
			if src.Client(i) != src.Client(i) {
				t.Fatalf("client %d: a second call made a second client", i)
			}
		}
		src.Close()
	}
	if a, b := SourceAddr(shopperBase, 0).String(), SourceAddr(botBase, 0).String(); a != "127.1.0.1" || b != "127.200.0.1" {
		t.Fatalf("first addresses %s and %s, want 127.1.0.1 and 127.200.0.1", a, b)
	}
}

// TestBotAccounting: the time to the first refusal is per address, counts only the limits'
// refusals (not a sale's bad_challenge or sold_out), and an address never refused is reported.
func TestBotAccounting(t *testing.T) {
	b := newBotState(3)
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	b.note(0, ms(100), "challenge", 200, "", "")
	b.note(0, ms(150), "attempt", 403, "bad_challenge", "")
	b.note(0, ms(400), "attempt", 429, "rate_limited", "")
	b.note(1, ms(200), "attempt", 410, "sold_out", "")
	b.note(1, ms(1200), "attempt", 403, "blacklisted", "")
	b.note(2, ms(300), "attempt", 202, "", "")
	first, last, never := b.banTimes()
	if first != 0.3 || last != -1 || never != 1 {
		t.Fatalf("ban times first %v last %v never %d, want 0.3, -1 (one address never refused), 1", first, last, never)
	}
	b.note(2, ms(900), "attempt", 0, "", ErrKindConn)
	if first, last, never = b.banTimes(); first != 0.3 || last != 1 || never != 0 {
		t.Fatalf("ban times first %v last %v never %d, want 0.3, 1, 0", first, last, never)
	}
	if b.reqs.Load() != 7 || b.answers["attempt 429 rate_limited"] != 1 || b.answers["attempt connection"] != 1 {
		t.Fatalf("requests %d, answers %v", b.reqs.Load(), b.answers)
	}
	if !b.newTicket("t1") || b.newTicket("t1") || !b.newTicket("t2") {
		t.Fatal("a replayed ticket counted as new, or a new one as replayed")
	}
	for _, c := range []struct {
		status int
		code   string
		served bool
	}{{202, "", true}, {410, "sold_out", true}, {429, "busy", true}, {409, "limit_reached", true},
		{429, "rate_limited", false}, {403, "blacklisted", false}, {0, "", false}, {503, "unavailable", false}} {
		if got := servedBySale(c.status, c.code); got != c.served {
			t.Errorf("servedBySale(%d, %q) = %v, want %v", c.status, c.code, got, c.served)
		}
	}
}
