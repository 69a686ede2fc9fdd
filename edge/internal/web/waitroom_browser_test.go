//go:build linux

package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

func TestMain(m *testing.M) { stack.Main(m) }

// TestWaitingRoomPageInChromium runs the page against the real stack (every binary, a real
// store) for sales with a waiting room: far back in a queue the page shows the place, the
// number ahead, a progress bar and the estimated wait; once admitted it goes on by itself to
// the proof of work and the attempt with its pass, wins and pays.
//
// Chromium runs on virtual time (--virtual-time-budget), which races ahead of the servers'
// clocks, so the page is not left to wait for real admission batches: the waiting view is
// checked where it stands, and the shopper who buys was admitted before the page opened (the
// page's join then answers "admitted" at once, as a poll would when the turn comes).
func TestWaitingRoomPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chrome := lookChromium(t)
	st := stack.Start(t, stack.Options{
		Services: []string{"catalog", "cart", "order", "worker", "edge"},
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "10"},
			"edge":    {"FLASHEDGE_RATE_IP": "off"},
		},
	})
	base := st.URL("edge", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	now := time.Now().UTC().Truncate(time.Second)
	for _, s := range []struct {
		id    string
		admit int
	}{{"wq", 1}, {"wa", 1000}} {
		apiCall(t, base, st.AdminToken(), "POST", "/api/v1/admin/flash-sales", "", map[string]any{
			"id": s.id, "product_id": "00000001", "price": 1000, "stock": 5, "difficulty": 4,
			"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
			"waiting_room": map[string]any{"opens_at": now.Add(-2 * time.Second).Format(time.RFC3339),
				"admit_per_second": s.admit, "pass_seconds": 120, "hold_seconds": 120},
		}, 201, nil)
	}

	t.Run("the queue view", func(t *testing.T) {
		// 30 shoppers ahead, admitted one a second: the page's shopper waits about half a minute.
		for i := range 30 {
			tok := sessionFor(t, base, fmt.Sprintf("ahead%02d", i))
			apiCall(t, base, tok, "POST", "/api/v1/flash-sales/wq/queue", "", nil, 200, nil)
		}
		dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=20000", "--dump-dom",
			base+"/?autotest=buy&user=viewer&sale=wq&stop=queue"))
		got := firstMatch(dom, `autotest: [^<]*`)
		pos, err := strconv.Atoi(strings.TrimPrefix(got, "autotest: queued position="))
		if err != nil || pos < 20 {
			t.Fatalf("the page's flow ended with %q, want it waiting behind the 30 shoppers", got)
		}
		for _, w := range []string{"Position #" + strconv.Itoa(pos), "ahead", "About ", `class="queue-bar"`} {
			if !strings.Contains(dom, w) {
				t.Errorf("the queue view does not show %q:\n%s", w, firstMatch(dom, `<div class="queue"[^>]*>.*?</div>`))
			}
		}
	})

	t.Run("admitted goes on to the attempt", func(t *testing.T) {
		tok := sessionFor(t, base, "buyer")
		deadline := time.Now().Add(10 * time.Second)
		method, qt := "POST", ""
		for {
			var a struct {
				State      string `json:"state"`
				QueueToken string `json:"queue_token"`
			}
			apiCall(t, base, tok, method, "/api/v1/flash-sales/wa/queue", qt, nil, 200, &a)
			method, qt = "GET", a.QueueToken
			if a.State == "admitted" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("buyer not admitted within 10 s: %+v", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
		dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=30000", "--dump-dom",
			base+"/?autotest=buy&user=buyer&sale=wa"))
		if got := firstMatch(dom, `autotest: [^<]*`); !strings.HasPrefix(got, "autotest: done order=") {
			t.Fatalf("the page's flow ended with %q, want a paid order", got)
		}
	})
}

func sessionFor(t *testing.T, base, user string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	apiCall(t, base, "", "POST", "/api/v1/session", "", map[string]string{"user": user}, 200, &s)
	return s.Token
}

// apiCall sends one JSON request and fails the test unless the status is want; out, when not
// nil, receives the decoded body.
func apiCall(t *testing.T, base, token, method, path, queueToken string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if queueToken != "" {
		req.Header.Set("X-Queue-Token", queueToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, b, err)
		}
	}
}
