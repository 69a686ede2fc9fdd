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

// waitingRoomPage (a subtest of TestStorefrontInChromium) runs the page in headless Chromium against the real stack
// (every binary, a real store), on the real clock: the shopper presses "Buy now" on a sale with
// a waiting room behind other shoppers, the page shows the place, the number ahead, a progress
// bar and the estimated wait while the worker's admitter moves the serving counter at one a
// second, and when the turn comes the page goes on by itself, without a reload, to the proof of
// work and the attempt with its pass, wins and pays.
func waitingRoomPage(ctx context.Context, t *testing.T, chrome string, st *stack.Stack) {
	base := st.URL("edge", 0)
	began := time.Now()

	now := time.Now().UTC().Truncate(time.Second)
	apiCall(t, base, st.AdminToken(), "POST", "/api/v1/admin/flash-sales", "", map[string]any{
		"id": "wq", "product_id": "00000001", "price": 1000, "stock": 5, "difficulty": 4,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"waiting_room": map[string]any{"opens_at": now.Add(-2 * time.Second).Format(time.RFC3339),
			"admit_per_second": 1, "pass_seconds": 120, "hold_seconds": 120},
	}, 201, nil)

	b := newBrowser(t, chrome, 1280, 900)
	b.open(base + "/")
	b.waitText(ctx, "the sale's buy button", `document.querySelector('.sale.live[data-sale-id="wq"] .btn-buy:not([hidden])') ? 'yes' : ''`,
		60*time.Second, func(s string) bool { return s == "yes" })
	login(ctx, b, "viewer")

	// Ten shoppers join just before the page's shopper, admitted one a second.
	for i := range 10 {
		tok := sessionFor(t, base, fmt.Sprintf("ahead%02d", i))
		apiCall(t, base, tok, "POST", "/api/v1/flash-sales/wq/queue", "", nil, 200, nil)
	}
	b.eval(`window.flashedgeNoReload = 'same page'; document.querySelector('.sale[data-sale-id="wq"] .btn-buy').click(); true`, nil)

	const queue = `document.querySelector('.sale[data-sale-id="wq"] .queue')`
	pos := b.waitText(ctx, "the queue view with a place", queue+`?.dataset.state === 'waiting' ? `+queue+`.dataset.position : ''`,
		60*time.Second, func(s string) bool { return s != "" })
	view := b.text(queue + ".outerHTML")
	t.Logf("%v: the page waits at position %s", time.Since(began).Round(time.Millisecond), pos)
	if n, err := strconv.Atoi(pos); err != nil || n < 2 {
		t.Fatalf("the page waits at position %q, want behind the shoppers who joined first:\n%s", pos, view)
	}
	for _, w := range []string{"Position #" + pos, "ahead", "About ", `class="queue-bar"`} {
		if !strings.Contains(html.UnescapeString(view), w) {
			t.Errorf("the queue view does not show %q:\n%s", w, view)
		}
	}

	// The admitter reaches the place: the page goes on to the proof of work and the attempt by
	// itself and shows the win; then it pays.
	const sale = `document.querySelector('.sale[data-sale-id="wq"]')`
	b.waitText(ctx, "the win after the turn came", sale+`.querySelector('.btn-pay:not(:disabled)') ? 'won' : (`+sale+`.querySelector('.status.error')?.textContent ?? '')`,
		90*time.Second, func(s string) bool {
			if s != "" && s != "won" {
				t.Fatalf("the buy failed after the queue: %q", s)
			}
			return s == "won"
		})
	t.Logf("%v: the page went on and won", time.Since(began).Round(time.Millisecond))
	b.eval(sale+`.querySelector('.btn-pay').click(); true`, nil)
	order := b.waitText(ctx, "the paid order", sale+`.querySelector('.won [data-order-id]')?.dataset.orderId`, 60*time.Second,
		func(s string) bool { return s != "" })
	if !strings.HasPrefix(order, "fs-") {
		t.Errorf("paid order %q, want a flash-sale order fs-...", order)
	}
	if got := b.text("window.flashedgeNoReload"); got != "same page" {
		t.Errorf("the page was reloaded on the way (marker %q)", got)
	}
	b.checkConsole()
}

func sessionFor(t *testing.T, base, user string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	apiCall(t, base, "", "POST", "/api/v1/session", "", map[string]string{"user": user}, 200, &s)
	return s.Token
}

// rawCall sends one request with a raw JSON body and header pairs, and returns the status and
// body.
func rawCall(t *testing.T, base, token, method, path, body string, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
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
