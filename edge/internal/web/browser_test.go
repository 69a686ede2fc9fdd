//go:build linux

package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"io"
	"math/bits"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/challenge"
	"flashedge/shared/upstream"
)

// TestStorefrontInChromium loads the storefront in a real headless Chromium served by the real
// stack (every binary, a real redis-server; deploy/stack), on the real clock, driven over the
// DevTools protocol (cdp_test.go): the page's own flow through its buttons (?autotest=buy: load
// more, product detail, log in, add to cart, check out, then a flash-sale purchase with an
// honestly solved proof of work, the ticket polled and paid), a busy answer waited out and
// retried, a sale sold out under the shopper's feet, the maintenance banner while a backend is
// down, the proof-of-work solver, screenshots, and the waiting room (waitroom_browser_test.go).
// The page must write nothing to its console (CSP violations and script errors land there).
//
// Set FLASHEDGE_WEB_SCREENSHOTS to a folder to keep the screenshots (storefront.png at
// 1280x900 and storefront-mobile.png at 390x844 after the flow, plus a full page and the
// product detail).
func TestStorefrontInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chrome := lookChromium(t)
	st := stack.Start(t, stack.Options{
		Services:  []string{"catalog", "cart", "order", "worker", "edge"},
		NoRestart: true, // the maintenance subtest keeps the cart service down until it restarts it
		// Every request comes from 127.0.0.1: the per-address limit is off, per-user limits on.
		ServiceEnv: map[string]map[string]string{"edge": {"FLASHEDGE_RATE_IP": "off"}},
	})
	base := st.URL("edge", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	products := seedStorefront(t, base, st.AdminToken())

	t.Run("page shops and buys in a flash sale", func(t *testing.T) {
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/?autotest=buy&user=dom&sale=fs-live")
		got := b.autotest(ctx, 2*time.Minute)
		text := html.UnescapeString(b.dom())
		m := regexp.MustCompile(`^autotest: done order=(\S+)$`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("the page's own flow did not finish: %q\n%s", got, tail(text, 3000))
		}
		orderID := m[1]
		if !strings.HasPrefix(orderID, "fs-") {
			t.Errorf("order shown after paying is %q, want a flash-sale order fs-...", orderID)
		}
		want := []string{
			products[0].Name,   // first page
			products[29].Name,  // second page, from "load more" with next_cursor
			"749.000\u00a0₫",   // the first product's price, formatted by Intl for vi-VN
			"1.039.000\u00a0₫", // the last one's
			"399.000\u00a0₫",   // the live sale's price
			products[0].Description,
			"Sắp hết", "Hết hàng", // stock badges
			"Đang mở bán", "Sắp mở bán", "Hết suất", // sale states
			"Thanh toán thành công",
			`data-order-id="` + orderID + `"`,
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("DOM does not contain %q", w)
			}
		}
		if n := strings.Count(text, `<li data-product-id=`); n != len(products) {
			t.Errorf("grid has %d product cards, want %d", n, len(products))
		}
		if strings.Count(text, "data-order-id=") < 2 {
			t.Error("DOM shows fewer than two orders (cart checkout and flash sale)")
		}
		shoot(t, b, "storefront.png", 1280, 900)
		b.checkConsole()
	})

	t.Run("a busy answer is waited out and retried", func(t *testing.T) {
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/")
		login(ctx, b, "busy1")
		// Keep the shopper's per-user budget at the edge spent (attempts 5 a second against a
		// refill of 2, for at most 8 s: about 25 refusals, short of a ban) until the page shows
		// it was answered 429 with Retry-After, as in a rush; then let it refill for the retry.
		tok := sessionFor(t, base, "busy1")
		stop, done, spent := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			seen := false
			for range 40 {
				req, _ := http.NewRequest("POST", base+"/api/v1/flash-sales/fs-live/attempts", strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 429 && !seen {
						seen = true
						close(spent)
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
		var once sync.Once
		halt := func() { once.Do(func() { close(stop); <-done }) }
		defer halt()
		select {
		case <-spent:
		case <-time.After(60 * time.Second):
			t.Fatal("no 429 within 60 s: is the per-user limit off?")
		}
		b.eval(`document.querySelector('.sale[data-sale-id="fs-live"] .btn-buy').click(); true`, nil)
		const status = `document.querySelector('.sale[data-sale-id="fs-live"] .status')?.textContent`
		b.waitText(ctx, "the busy message", status, 60*time.Second, func(s string) bool { return strings.Contains(s, "Retrying in") })
		halt()
		const sale = `document.querySelector('.sale[data-sale-id="fs-live"]')`
		b.waitText(ctx, "the win after the retry", sale+`.querySelector('.btn-pay:not(:disabled)') ? 'won' : (`+sale+`.querySelector('.status.error')?.textContent ?? '')`,
			90*time.Second, func(s string) bool {
				if s != "" && s != "won" {
					t.Fatalf("the buy failed after the busy answer: %q", s)
				}
				return s == "won"
			})
		b.checkConsole()
	})

	t.Run("a sale sold out under the shopper is shown", func(t *testing.T) {
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/")
		login(ctx, b, "late1")
		b.waitText(ctx, "the live sale's buy button", `document.querySelector('.sale.live[data-sale-id="fs-last"] .btn-buy:not([hidden])') ? 'yes' : ''`,
			60*time.Second, func(s string) bool { return s == "yes" })
		// Another shopper takes the last unit after the page showed the sale live; the shopper
		// presses Buy (the button's own handler, even if a refresh of the list hid it meanwhile).
		buyOut(t, base, "fs-last", "early")
		b.eval(`document.querySelector('.sale[data-sale-id="fs-last"] .btn-buy').click(); true`, nil)
		got := b.waitText(ctx, "the sold-out message", `document.querySelector('.sale[data-sale-id="fs-last"] .status.error')?.textContent`,
			60*time.Second, func(s string) bool { return s != "" })
		if got != "Đã hết suất! / Sold out!" {
			t.Errorf("after the sell-out the page said %q, want its sold-out message", got)
		}
		b.checkConsole()
	})

	t.Run("an add right after login builds on the cart as loaded", func(t *testing.T) {
		// The shopper's cart holds 2 of the first product from an earlier visit.
		tok := sessionFor(t, base, "cart1")
		apiCall(t, base, tok, "PUT", "/api/v1/cart/items/00000001", "", map[string]any{"quantity": 2}, 200, nil)
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/")
		// Hold the answers to the page's GET /cart back 1.5 s inside the page (a slow network
		// for that one call), so the cart loaded at login is still on its way when Add is
		// pressed; window.heldCart counts the held answers handed on.
		b.waitText(ctx, "the page's script", `typeof window.flashedge === 'object' ? 'yes' : ''`, 30*time.Second, func(s string) bool { return s == "yes" })
		b.eval(`(() => { const f = window.fetch; window.heldCart = 0; window.fetch = async (u, o) => {
			const r = await f(u, o);
			if (String(u).endsWith('/api/v1/cart') && (!o || !o.method || o.method === 'GET')) {
				await new Promise((ok) => setTimeout(ok, 1500));
				window.heldCart++;
			}
			return r;
		}; return true; })()`, nil)
		login(ctx, b, "cart1")
		b.eval(`document.querySelector('li[data-product-id="00000001"] button.add').click(); true`, nil)
		b.waitText(ctx, "the held cart answers", `String(window.heldCart)`, 30*time.Second, func(s string) bool { return s != "0" })
		b.waitText(ctx, "the cart after the add", `document.getElementById('cart-count').textContent`, 30*time.Second, func(s string) bool { return s == "3" })
		var c struct {
			Items []struct {
				ProductID string `json:"product_id"`
				Quantity  int    `json:"quantity"`
			} `json:"items"`
		}
		apiCall(t, base, tok, "GET", "/api/v1/cart", "", nil, 200, &c)
		if len(c.Items) != 1 || c.Items[0].Quantity != 3 {
			t.Errorf("cart after the add is %+v, want 3 of 00000001 (2 from before and the one added)", c.Items)
		}
		// The view loaded at login came back after the add's: the page still shows the add.
		if got := b.text(`document.getElementById('cart-count').textContent`); got != "3" {
			t.Errorf("cart count on the page %q after every answer came, want 3", got)
		}
		b.checkConsole()
	})

	t.Run("maintenance message in the banner", func(t *testing.T) {
		st.Kill("cart", 0)
		defer st.Restart("cart", 0)
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/?autotest=buy&user=maint")
		// The banner may first greet the shopper ("Logged in as maint."); the add that fails
		// replaces it with the maintenance message.
		b.waitText(ctx, "the maintenance banner", `document.getElementById('banner').hidden ? '' : document.getElementById('banner-text').textContent`,
			60*time.Second, func(s string) bool { return strings.Contains(s, upstream.MaintenanceMessage) })
		banner := b.text(`document.getElementById('banner').outerHTML`)
		if !strings.Contains(html.UnescapeString(banner), upstream.MaintenanceMessage) {
			t.Errorf("banner %q, want the maintenance message %q", banner, upstream.MaintenanceMessage)
		}
		if !strings.Contains(banner, `id="banner-retry" class="btn btn-light"`) {
			t.Error("the banner offers no retry button")
		}
		if keep := os.Getenv("FLASHEDGE_WEB_SCREENSHOTS"); keep != "" {
			if err := os.WriteFile(filepath.Join(keep, "storefront-maintenance.png"), b.screenshot(), 0o644); err != nil {
				t.Error(err)
			}
		}
		b.checkConsole()
	})

	t.Run("proof-of-work solver", func(t *testing.T) {
		type powCase struct {
			Prefix     string `json:"prefix"`
			Difficulty int    `json:"difficulty"`
			Impl       string `json:"impl"`
		}
		cases := []powCase{
			{"any:", 0, "subtle"},
			{"any:", 0, "js"},
			{"fe1:3f9a:", 12, "subtle"},
			{"fe1:3f9a:", 12, "js"},
			{"giá sốc ⚡ ", 10, "subtle"}, // UTF-8, several bytes per character
			{"giá sốc ⚡ ", 10, "js"},
			{"", 16, "subtle"},
			{"a-longer-prefix-that-spans-more-than-one-sha256-block-0123456789abcdef-0123456789abcdef:", 9, "js"},
		}
		q, _ := json.Marshal(cases)
		b := newBrowser(t, chrome, 1280, 900)
		b.open(base + "/?autotest=pow&cases=" + url.QueryEscape(string(q)))
		if got := b.autotest(ctx, 2*time.Minute); got != "autotest: done pow "+strconv.Itoa(len(cases)) {
			t.Fatalf("solver run ended with %q", got)
		}
		raw := b.text(`document.getElementById('autotest').dataset.result`)
		var got []struct {
			powCase
			Nonce string `json:"nonce"`
			Tries int    `json:"tries"`
		}
		if err := json.Unmarshal([]byte(raw), &got); err != nil || len(got) != len(cases) {
			t.Fatalf("solver results %q (%v), want %d of them", raw, err, len(cases))
		}
		for i, g := range got {
			c := cases[i]
			n, err := strconv.Atoi(g.Nonce)
			switch {
			case err != nil || strconv.Itoa(n) != g.Nonce:
				t.Errorf("%+v: nonce %q is not a decimal counter", c, g.Nonce)
				continue
			case g.Impl != c.Impl:
				t.Errorf("%+v: solved with %q, want %q (WebCrypto is available on loopback)", c, g.Impl, c.Impl)
			case g.Tries != n+1:
				t.Errorf("%+v: %d tries for nonce %d, want %d", c, g.Tries, n, n+1)
			}
			if z := leadingZeroBits(c.Prefix, g.Nonce); z < c.Difficulty {
				t.Errorf("%+v: nonce %s gives %d leading zero bits, want >= %d", c, g.Nonce, z, c.Difficulty)
			}
			for smaller := 0; smaller < n; smaller++ {
				if leadingZeroBits(c.Prefix, strconv.Itoa(smaller)) >= c.Difficulty {
					t.Errorf("%+v: nonce %d, but %d already qualifies: the solver skipped it", c, n, smaller)
					break
				}
			}
		}
		b.checkConsole()
	})

	t.Run("screenshots", func(t *testing.T) {
		type shot struct {
			file          string
			width, height int
			path          string
			flow          bool // wait for the page's own flow to finish first
		}
		shots := []shot{{"storefront-mobile.png", 390, 844, "/", false}}
		if os.Getenv("FLASHEDGE_WEB_SCREENSHOTS") != "" { // more views for a person to look at
			shots = append(shots,
				shot{"storefront-full.png", 1280, 2600, "/", false},
				shot{"storefront-detail.png", 1280, 900, "/#p/00000003", false},
				shot{"storefront-detail-mobile.png", 390, 844, "/#p/00000003", false},
				shot{"storefront-mobile-flow.png", 390, 844, "/?autotest=buy&sale=fs-live&user=shot2", true},
				shot{"storefront-won.png", 1280, 900, "/?autotest=buy&sale=fs-live&user=shot3&stop=won", true})
		}
		for _, shot := range shots {
			b := newBrowser(t, chrome, shot.width, shot.height)
			b.open(base + shot.path)
			if shot.flow {
				if got := b.autotest(ctx, 2*time.Minute); !strings.HasPrefix(got, "autotest: done") && got != "autotest: won" {
					t.Errorf("%s: the page's flow ended with %q", shot.file, got)
				}
			} else {
				b.waitText(ctx, "the product grid", `document.getElementById('grid').children.length`, 60*time.Second,
					func(s string) bool { return s != "" && s != "0" })
			}
			shoot(t, b, shot.file, shot.width, shot.height)
			b.checkConsole()
		}
	})

	t.Run("waiting room", func(t *testing.T) { waitingRoomPage(ctx, t, chrome, st) })
}

// shoot takes a screenshot of b's viewport, checks it is a width x height PNG and keeps it in
// $FLASHEDGE_WEB_SCREENSHOTS when set.
func shoot(t *testing.T, b *browser, file string, width, height int) {
	t.Helper()
	img := b.screenshot()
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width != width || cfg.Height != height {
		t.Errorf("%s: %dx%d (%v), want a %dx%d PNG", file, cfg.Width, cfg.Height, err, width, height)
	}
	if keep := os.Getenv("FLASHEDGE_WEB_SCREENSHOTS"); keep != "" {
		if err := os.WriteFile(filepath.Join(keep, file), img, 0o644); err != nil {
			t.Errorf("keeping %s: %v", file, err)
		}
	}
}

// login signs the page in as user through its form.
func login(ctx context.Context, b *browser, user string) {
	b.t.Helper()
	b.waitText(ctx, "the login form", `document.getElementById('login-form') ? 'yes' : ''`, 30*time.Second, func(s string) bool { return s == "yes" })
	// The form is in the HTML before the page's script binds its handler; a submit sent in
	// between is lost (or reloads the page), so an unanswered login is submitted again.
	submit := `(() => { const f = document.getElementById('login-form'); if (!f) return false; ` +
		`document.getElementById('login-user').value = ` + strconv.Quote(user) + `; f.requestSubmit(); return true; })()`
	deadline := time.Now().Add(60 * time.Second)
	for {
		// A submit before the script bound its handler reloads the page: the evaluations
		// running then answer errNavigating, and the login is submitted again.
		_ = b.tryEval(submit, nil)
		for range 30 {
			var s string
			_ = b.tryEval(`(() => { const w = document.getElementById('who'); return w && !w.hidden ? 'in' : ''; })()`, &s)
			if s == "in" {
				return
			}
			time.Sleep(100 * time.Millisecond) // the poll interval
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.t.Fatalf("login as %s: not logged in after 60s of submits", user)
		}
	}
}

// demoNames gives the test catalog names like the real demo catalog's, one per image.
var demoNames = map[string]string{
	"ao-thun": "Áo thun nam Coolmate cổ tròn cotton 100%", "quan-jean": "Quần jean nữ lưng cao Routine co giãn",
	"giay": "Giày thể thao Biti's Hunter nhẹ êm", "noi-com-dien": "Nồi cơm điện Sharp 1.8L nắp gài",
	"noi-chien": "Nồi chiên không dầu Philips 4.1L", "tai-nghe": "Tai nghe Bluetooth Sony chống ồn",
	"dien-thoai": "Điện thoại Samsung Galaxy A55 128GB", "ca-phe": "Cà phê rang xay Trung Nguyên 500g",
	"my-pham": "Kem chống nắng La Roche-Posay 50ml", "quat-dien": "Quạt đứng Senko 3 cánh hẹn giờ",
	"balo": "Ba lô laptop Mikkor chống nước", "sach": "Sách Nhà Giả Kim (bìa mềm)",
	"do-choi": "Gấu bông Teddy 60cm mềm mịn", "binh-giu-nhiet": "Bình giữ nhiệt Lock&Lock 500ml",
	"ban-phim-chuot": "Bộ bàn phím chuột Logitech không dây", "do-an-vat": "Snack khoai tây Lay's vị tự nhiên",
	"sua": "Sữa tươi Vinamilk không đường 1L", "dong-ho": "Đồng hồ nam Casio dây da",
}

type seeded struct{ Name, Description string }

// seedStorefront creates, through the edge's admin routes, 30 products (ids 00000001 up: every
// seventh out of stock, some low) and the sales the page shows: fs-live (live), fs-soon
// (upcoming), fs-gone (sold out, by a shopper who bought its one unit) and fs-last (live, one
// unit, for the sell-out subtest).
func seedStorefront(t *testing.T, base, admin string) []seeded {
	t.Helper()
	var out []seeded
	for i := range 30 {
		slug := categories[i%len(categories)]
		stock := 100
		switch {
		case i%7 == 6:
			stock = 0
		case i%5 == 3:
			stock = 5
		}
		name := demoNames[slug]
		if i >= len(categories) {
			name += " (mẫu " + strconv.Itoa(i+1) + ")"
		}
		p := seeded{Name: name, Description: "Mô tả sản phẩm số " + strconv.Itoa(i+1) + ": hàng chính hãng, giao nhanh."}
		var got struct {
			ID string `json:"id"`
		}
		apiCall(t, base, admin, "POST", "/api/v1/admin/products", "", map[string]any{
			"name": p.Name, "description": p.Description, "price": 749_000 + i*10_000, "image": "/img/" + slug + ".svg", "stock": stock,
		}, 201, &got)
		if want := fmt.Sprintf("%08d", i+1); got.ID != want {
			t.Fatalf("product %d created as %q, want %s", i, got.ID, want)
		}
		out = append(out, p)
	}
	now := time.Now().UTC().Truncate(time.Second)
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, s := range []map[string]any{
		{"id": "fs-live", "product_id": "00000002", "price": 399_000, "stock": 100, "starts_at": rfc(-time.Second), "ends_at": rfc(time.Hour)},
		{"id": "fs-soon", "product_id": "00000006", "price": 990_000, "stock": 50, "starts_at": rfc(2*time.Hour + 5*time.Minute), "ends_at": rfc(3 * time.Hour)},
		{"id": "fs-gone", "product_id": "00000007", "price": 4_990_000, "stock": 1, "starts_at": rfc(-time.Second), "ends_at": rfc(time.Hour)},
		{"id": "fs-last", "product_id": "00000009", "price": 199_000, "stock": 1, "starts_at": rfc(-time.Second), "ends_at": rfc(time.Hour)},
	} {
		s["per_user_limit"], s["difficulty"] = 1, 8
		apiCall(t, base, admin, "POST", "/api/v1/admin/flash-sales", "", s, 201, nil)
	}
	buyOut(t, base, "fs-gone", "gone1")
	return out
}

// buyOut has user buy the last unit of sale through the API and waits until the edge shows the
// sale sold out.
func buyOut(t *testing.T, base, sale, user string) {
	t.Helper()
	tok := sessionFor(t, base, user)
	var ch challenge.Body
	apiCall(t, base, tok, "POST", "/api/v1/flash-sales/"+sale+"/challenge", "", nil, 200, &ch)
	nonce := 0
	for leadingZeroBits(ch.Payload.Prefix, strconv.Itoa(nonce)) < ch.Payload.Difficulty {
		nonce++
	}
	body, _ := json.Marshal(map[string]string{"challenge_id": ch.ChallengeID, "answer": strconv.Itoa(nonce)})
	status, b := rawCall(t, base, tok, "POST", "/api/v1/flash-sales/"+sale+"/attempts", string(body), "Idempotency-Key", "buy-out-"+sale)
	if status != 202 {
		t.Fatalf("buying out %s: %d %s", sale, status, b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var s struct {
			State string `json:"state"`
		}
		apiCall(t, base, "", "GET", "/api/v1/flash-sales/"+sale, "", nil, 200, &s)
		if s.State == "sold_out" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not sold out within 60 s: %s", sale, s.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leadingZeroBits counts the zero bits at the start of SHA-256(prefix + nonce).
func leadingZeroBits(prefix, nonce string) int {
	sum := sha256.Sum256([]byte(prefix + nonce))
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

func lookChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not on PATH: run `make test`, which installs it, or apt-get install chromium")
	}
	return bin
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
