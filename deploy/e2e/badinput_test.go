package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// rawRequest is one request written byte for byte, so that what a browser or Go's client would
// clean up (double slashes, percent-encoded slashes, duplicate or oversized headers, a body
// that does not match its Content-Length) reaches the server as an attacker sends it.
type rawRequest struct {
	method, target string
	headers        []string // "Name: value" lines
	body           string
}

// send writes r to addr from the loopback address from and reads one answer.
func (r rawRequest) send(t testing.TB, addr, from string) reply {
	t.Helper()
	got, err := r.try(addr, from)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// try is send for any goroutine: it returns what went wrong instead of failing the test.
func (r rawRequest) try(addr, from string) (reply, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return reply{}, fmt.Errorf("dial %s from %s: %w", addr, from, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", r.method, r.target, addr)
	for _, h := range r.headers {
		b.WriteString(h + "\r\n")
	}
	if r.body != "" || r.method == "POST" || r.method == "PUT" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.WriteString(r.body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return reply{}, fmt.Errorf("%s %s: write: %w", r.method, r.target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.method})
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: no answer: %w", r.method, r.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read body: %w", r.method, r.target, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// TestBadInputIsRefusedCleanly sends malformed requests to every route of the edge and of each
// backend service (reachable inside the cluster) with the default limits on, each row from its
// own loopback address so the limits do not answer for the validation. Every answer must be a
// 4xx in the contract's JSON error shape with an X-Request-ID: never a 5xx, a crash or an empty
// answer; and the store must hold the same keys afterwards (nothing half-written).
func TestBadInputIsRefusedCleanly(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "cart", "order", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "3"}},
	})
	edge := st.Addr("edge", 0)
	admin := newClient(t, st.URL("edge", 0), st.AdminToken())
	now := time.Now().UTC()
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "bad-input", "product_id": "00000001", "price": 1000, "stock": 5, "shards": 2,
		"starts_at": now.Add(-time.Minute).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"difficulty": 0,
	}).want(t, "create sale", 201, "")
	alice := login(t, st.URL("edge", 0), "bad-input-alice")
	alice.do("PUT", "/api/v1/cart/items/00000001", map[string]int{"quantity": 1}).want(t, "add to cart", 200, "")

	auth := "Authorization: Bearer " + alice.token
	// The attempt rows each come from a user of their own: a user's flash-sale budget (2/s,
	// burst 6) would otherwise answer 429 before the validation is reached.
	var fresh []string
	for i := range 12 {
		fresh = append(fresh, "Authorization: Bearer "+login(t, st.URL("edge", 0), fmt.Sprintf("bad-input-%d", i)).token)
	}
	freshAuth := func() string { a := fresh[0]; fresh = fresh[1:]; return a }
	adminAuth := "Authorization: Bearer " + st.AdminToken()
	user := "X-Flashedge-User: " + alice.user
	ct := "Content-Type: application/json"
	long := strings.Repeat("a", 300)
	huge := `{"user":"` + strings.Repeat("x", 70<<10) + `"}`
	bigHeader := "X-Junk: " + strings.Repeat("j", 40<<10)

	type row struct {
		name    string
		service string // "edge" or a backend
		req     rawRequest
		want    []int // acceptable statuses; nil: any 4xx
	}
	r := func(method, target, body string, headers ...string) rawRequest {
		return rawRequest{method: method, target: target, body: body, headers: headers}
	}
	rows := []row{
		// Login.
		{"login: empty body", "edge", r("POST", "/api/v1/session", ""), nil},
		{"login: truncated JSON", "edge", r("POST", "/api/v1/session", `{"user":"al`, ct), nil},
		{"login: wrong type", "edge", r("POST", "/api/v1/session", `{"user":12}`, ct), nil},
		{"login: unknown field", "edge", r("POST", "/api/v1/session", `{"user":"al","admin":true}`, ct), nil},
		{"login: array", "edge", r("POST", "/api/v1/session", `["al"]`, ct), nil},
		{"login: null", "edge", r("POST", "/api/v1/session", `null`, ct), nil},
		{"login: two values", "edge", r("POST", "/api/v1/session", `{"user":"al"}{"user":"bo"}`, ct), nil},
		{"login: name too long", "edge", r("POST", "/api/v1/session", `{"user":"`+long+`"}`, ct), nil},
		{"login: bad characters", "edge", r("POST", "/api/v1/session", `{"user":"a/b:{c}"}`, ct), nil},
		{"login: body over the limit", "edge", r("POST", "/api/v1/session", huge, ct), []int{413}},
		{"login: GET", "edge", r("GET", "/api/v1/session", ""), []int{405}},
		// Catalog reads at the edge.
		{"products: limit=-1", "edge", r("GET", "/api/v1/products?limit=-1", ""), nil},
		{"products: limit=0", "edge", r("GET", "/api/v1/products?limit=0", ""), nil},
		{"products: limit=1e9", "edge", r("GET", "/api/v1/products?limit=1e9", ""), nil},
		{"products: limit=999999999999999999999", "edge", r("GET", "/api/v1/products?limit=999999999999999999999", ""), nil},
		{"products: limit=abc", "edge", r("GET", "/api/v1/products?limit=abc", ""), nil},
		{"products: garbage cursor", "edge", r("GET", "/api/v1/products?cursor=%%%zz", ""), nil},
		{"products: cursor of bad base64", "edge", r("GET", "/api/v1/products?cursor=!!!!", ""), nil},
		{"products: cursor too long", "edge", r("GET", "/api/v1/products?cursor="+long+long, ""), nil},
		{"product: id too long", "edge", r("GET", "/api/v1/products/"+long, ""), nil},
		{"product: bad characters", "edge", r("GET", "/api/v1/products/a.b", ""), nil},
		{"product: percent-encoded slash", "edge", r("GET", "/api/v1/products/a%2Fb", ""), nil},
		{"product: percent-encoded NUL", "edge", r("GET", "/api/v1/products/a%00b", ""), nil},
		{"product: double slash", "edge", r("GET", "//api/v1/products/00000001", ""), []int{200}}, // normalised, and forwarded as normalised
		{"product: dot segments to admin", "edge", r("GET", "/api/v1/products/..%2F..%2Fadmin%2Fproducts", ""), nil},
		{"product: POST", "edge", r("POST", "/api/v1/products/00000001", "{}", ct), []int{405}},
		{"products: PATCH", "edge", r("PATCH", "/api/v1/products", "{}", ct), []int{405}},
		// Cart through the edge.
		{"cart put: empty body", "edge", r("PUT", "/api/v1/cart/items/00000001", "", auth), nil},
		{"cart put: truncated JSON", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":`, auth, ct), nil},
		{"cart put: string quantity", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":"2"}`, auth, ct), nil},
		{"cart put: fractional quantity", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":2.5}`, auth, ct), nil},
		{"cart put: negative quantity", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":-1}`, auth, ct), nil},
		{"cart put: quantity 1e9", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1000000000}`, auth, ct), nil},
		{"cart put: quantity overflows", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":99999999999999999999999}`, auth, ct), nil},
		{"cart put: unknown field", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1,"price":1}`, auth, ct), nil},
		{"cart put: two values", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}{"quantity":3}`, auth, ct), nil},
		{"cart put: trailing garbage", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}x`, auth, ct), nil},
		{"cart put: wrong content type, bad body", "edge", r("PUT", "/api/v1/cart/items/00000001", `quantity=1`, auth, "Content-Type: application/x-www-form-urlencoded"), nil},
		{"cart put: unknown product", "edge", r("PUT", "/api/v1/cart/items/nosuchproduct", `{"quantity":1}`, auth, ct), nil},
		{"cart put: id too long", "edge", r("PUT", "/api/v1/cart/items/"+long, `{"quantity":1}`, auth, ct), nil},
		{"cart put: id with a brace", "edge", r("PUT", "/api/v1/cart/items/a%7Bb%7D", `{"quantity":1}`, auth, ct), nil},
		{"cart put: percent-encoded slash", "edge", r("PUT", "/api/v1/cart/items/a%2Fb", `{"quantity":1}`, auth, ct), nil},
		{"cart put: body over the limit", "edge", r("PUT", "/api/v1/cart/items/00000001", huge, auth, ct), []int{413}},
		{"cart put: no session", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, ct), []int{401}},
		{"cart put: forged user header", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, ct, user), []int{401}},
		{"cart put: malformed bearer", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, ct, "Authorization: Bearer a.b.c"), []int{401}},
		{"cart put: bearer too long", "edge", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, ct, "Authorization: Bearer "+long+long+long), []int{401}},
		{"cart delete: bad id", "edge", r("DELETE", "/api/v1/cart/items/a.b", "", auth), nil},
		{"cart: PATCH", "edge", r("PATCH", "/api/v1/cart", "{}", auth, ct), []int{405}},
		{"cart: double slash", "edge", r("GET", "/api//v1/cart", "", auth), nil},
		{"cart: leading double slash", "edge", r("GET", "//evil/api/v1/cart", "", auth), nil},
		{"cart: two Authorizations", "edge", r("GET", "/api/v1/cart", "", auth, "Authorization: Bearer x"), []int{400}},
		{"cart: two Authorizations, one empty", "edge", r("GET", "/api/v1/cart", "", "Authorization:", auth), []int{400}},
		{"cart: internal route not routed", "edge", r("GET", "/internal/v1/cart", "", auth), []int{404}},
		{"catalog batch not routed", "edge", r("GET", "/internal/v1/products?ids=00000001", ""), []int{404}},
		// Orders through the edge.
		{"order: no Idempotency-Key", "edge", r("POST", "/api/v1/orders", "", auth), nil},
		{"order: Idempotency-Key too long", "edge", r("POST", "/api/v1/orders", "", auth, "Idempotency-Key: "+long), nil},
		{"order: Idempotency-Key bad characters", "edge", r("POST", "/api/v1/orders", "", auth, "Idempotency-Key: a b{c}"), nil},
		{"order: two Idempotency-Keys", "edge", r("POST", "/api/v1/orders", "", auth, "Idempotency-Key: d1", "Idempotency-Key: d2"), []int{400}},
		{"order: malformed body", "edge", r("POST", "/api/v1/orders", `{"expected_total":"x"}`, auth, ct, "Idempotency-Key: bad-body-1"), nil},
		{"order: unknown body field", "edge", r("POST", "/api/v1/orders", `{"total":1}`, auth, ct, "Idempotency-Key: bad-body-2"), nil},
		{"orders: limit=-1", "edge", r("GET", "/api/v1/orders?limit=-1", "", auth), nil},
		{"orders: limit=1e9", "edge", r("GET", "/api/v1/orders?limit=1000000000", "", auth), nil},
		{"orders: garbage cursor", "edge", r("GET", "/api/v1/orders?cursor=zz%00", "", auth), nil},
		{"orders: huge cursor", "edge", r("GET", "/api/v1/orders?cursor=99999999999999999999999", "", auth), nil},
		{"order: id too long", "edge", r("GET", "/api/v1/orders/"+long, "", auth), nil},
		{"order: bad characters", "edge", r("GET", "/api/v1/orders/a%7Bb", "", auth), nil},
		{"order: unknown id", "edge", r("GET", "/api/v1/orders/nosuchorder", "", auth), []int{404}},
		// Flash sales at the edge.
		{"sale: id too long", "edge", r("GET", "/api/v1/flash-sales/"+long, ""), nil},
		{"sale: bad characters", "edge", r("GET", "/api/v1/flash-sales/a%7Bb%7D", ""), nil},
		{"sales: PUT", "edge", r("PUT", "/api/v1/flash-sales", "{}", ct), []int{405}},
		{"challenge: no session", "edge", r("POST", "/api/v1/flash-sales/bad-input/challenge", ""), []int{401}},
		{"challenge: bad sale id", "edge", r("POST", "/api/v1/flash-sales/a%2Fb/challenge", "", auth), nil},
		{"attempt: no session", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{}`, ct, "Idempotency-Key: k1"), []int{401}},
		{"attempt: empty body", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", "", freshAuth(), "Idempotency-Key: k2"), nil},
		{"attempt: truncated JSON", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":`, freshAuth(), ct, "Idempotency-Key: k3"), nil},
		{"attempt: wrong types", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":1,"answer":[]}`, freshAuth(), ct, "Idempotency-Key: k4"), nil},
		{"attempt: unknown field", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0","user":"x"}`, freshAuth(), ct, "Idempotency-Key: k5"), nil},
		{"attempt: made-up challenge", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"`+long+`","answer":"0"}`, freshAuth(), ct, "Idempotency-Key: k6"), nil},
		{"attempt: no Idempotency-Key", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, freshAuth(), ct), nil},
		{"attempt: Idempotency-Key too long", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, freshAuth(), ct, "Idempotency-Key: "+long), nil},
		{"attempt: two Idempotency-Keys", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, freshAuth(), ct, "Idempotency-Key: k7", "Idempotency-Key: k8"), []int{400}},
		{"attempt: two Authorizations", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, freshAuth(), "Authorization: Bearer x", ct, "Idempotency-Key: k9"), []int{400}},
		{"attempt: body over the limit", "edge", r("POST", "/api/v1/flash-sales/bad-input/attempts", huge, freshAuth(), ct, "Idempotency-Key: k10"), []int{413}},
		{"attempt: GET", "edge", r("GET", "/api/v1/flash-sales/bad-input/attempts", "", auth), nil},
		{"attempt: percent-encoded slash in id", "edge", r("POST", "/api/v1/flash-sales/bad%2Finput/attempts", `{}`, freshAuth(), ct, "Idempotency-Key: k11"), nil},
		{"poll: ticket not hex", "edge", r("GET", "/api/v1/flash-sales/bad-input/attempts/zzzz", "", auth), []int{404}},
		{"poll: ticket too long", "edge", r("GET", "/api/v1/flash-sales/bad-input/attempts/"+strings.Repeat("a", 100), "", auth), []int{404}},
		{"checkout: empty body", "edge", r("POST", "/api/v1/flash-sales/bad-input/checkout", "", auth), nil},
		{"checkout: wrong type", "edge", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":5}`, auth, ct), nil},
		{"checkout: unknown field", "edge", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":"t","price":1}`, auth, ct), nil},
		{"checkout: made-up token", "edge", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":"`+long+`"}`, auth, ct), nil},
		{"checkout: token with braces", "edge", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":"{x}:y"}`, auth, ct), nil},
		{"queue: sale without a waiting room", "edge", r("POST", "/api/v1/flash-sales/bad-input/queue", "", auth), []int{409}},
		{"queue: bad sale id", "edge", r("GET", "/api/v1/flash-sales/"+long+"/queue", "", auth), nil},
		{"queue: garbage queue token", "edge", r("GET", "/api/v1/flash-sales/bad-input/queue", "", auth, "X-Queue-Token: "+long), nil},
		{"fairness: bad sale id", "edge", r("GET", "/api/v1/flash-sales/a%7B/queue/fairness", ""), nil},
		// Admin at the edge.
		{"admin product: no token", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1}`, ct), []int{401}},
		{"admin product: wrong token", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1}`, ct, "Authorization: Bearer "+long), []int{401}},
		{"admin product: empty body", "edge", r("POST", "/api/v1/admin/products", "", adminAuth), nil},
		{"admin product: truncated JSON", "edge", r("POST", "/api/v1/admin/products", `{"name":"x",`, adminAuth, ct), nil},
		{"admin product: negative price", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":-1,"stock":1}`, adminAuth, ct), nil},
		{"admin product: price overflows", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1e30}`, adminAuth, ct), nil},
		{"admin product: string price", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":"1"}`, adminAuth, ct), nil},
		{"admin product: negative stock", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":-5}`, adminAuth, ct), nil},
		{"admin product: unknown field", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1,"owner":"me"}`, adminAuth, ct), nil},
		{"admin product: no name", "edge", r("POST", "/api/v1/admin/products", `{"price":1}`, adminAuth, ct), nil},
		{"admin product: name too long", "edge", r("POST", "/api/v1/admin/products", `{"name":"`+strings.Repeat("n", 5000)+`","price":1,"stock":1}`, adminAuth, ct), nil},
		{"admin product: bad currency", "edge", r("POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":1,"currency":"dollars!"}`, adminAuth, ct), nil},
		{"admin product: put bad id", "edge", r("PUT", "/api/v1/admin/products/a%7Bb", `{"name":"x","price":1}`, adminAuth, ct), nil},
		{"admin product: put unknown id", "edge", r("PUT", "/api/v1/admin/products/nosuchproduct", `{"name":"x","price":1}`, adminAuth, ct), nil},
		{"admin product: delete id too long", "edge", r("DELETE", "/api/v1/admin/products/"+long, "", adminAuth), nil},
		{"admin sale: empty body", "edge", r("POST", "/api/v1/admin/flash-sales", "", adminAuth), nil},
		{"admin sale: wrong types", "edge", r("POST", "/api/v1/admin/flash-sales", `{"product_id":1,"stock":"5"}`, adminAuth, ct), nil},
		{"admin sale: ends before it starts", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, -time.Hour, `"stock":5`), adminAuth, ct), nil},
		{"admin sale: bad time", "edge", r("POST", "/api/v1/admin/flash-sales", `{"product_id":"00000001","price":1,"stock":5,"starts_at":"yesterday","ends_at":"tomorrow","per_user_limit":1}`, adminAuth, ct), nil},
		{"admin sale: stock overflows", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":1e30`), adminAuth, ct), nil},
		{"admin sale: huge stock", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":9007199254740993`), adminAuth, ct), nil},
		{"admin sale: huge shards", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"shards":100000000`), adminAuth, ct), nil},
		{"admin sale: negative shards", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"shards":-1`), adminAuth, ct), nil},
		{"admin sale: negative price", "edge", r("POST", "/api/v1/admin/flash-sales", strings.Replace(saleBody(now, time.Hour, `"stock":5`), `"price":1000`, `"price":-1`, 1), adminAuth, ct), nil},
		{"admin sale: huge difficulty", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"difficulty":100000`), adminAuth, ct), nil},
		{"admin sale: bad id", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"id":"a{b}"`), adminAuth, ct), nil},
		{"admin sale: unknown product", "edge", r("POST", "/api/v1/admin/flash-sales", strings.Replace(saleBody(now, time.Hour, `"stock":5`), "00000001", "nosuchproduct", 1), adminAuth, ct), nil},
		{"admin sale: bad waiting room", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"waiting_room":{"opens_at":"x","admit_per_second":-1}`), adminAuth, ct), nil},
		{"admin sale: waiting room of zeros", "edge", r("POST", "/api/v1/admin/flash-sales", saleBody(now, time.Hour, `"stock":5,"waiting_room":{}`), adminAuth, ct), nil},
		{"admin sale: per-user limit -1", "edge", r("POST", "/api/v1/admin/flash-sales", strings.Replace(saleBody(now, time.Hour, `"stock":5`), `"per_user_limit":1`, `"per_user_limit":-1`, 1), adminAuth, ct), nil},
		{"ledger: bad id", "edge", r("GET", "/api/v1/admin/flash-sales/a%7Bb/ledger", "", adminAuth), nil},
		{"ledger: unknown id", "edge", r("GET", "/api/v1/admin/flash-sales/nosuchsale/ledger", "", adminAuth), []int{404}},
		// Anything else at the edge.
		{"unknown route", "edge", r("GET", "/api/v2/products", ""), []int{404}},
		{"metrics on the public port", "edge", r("GET", "/metrics", ""), []int{404}},
		{"TRACE", "edge", r("TRACE", "/api/v1/products", ""), []int{405}},
		{"OPTIONS", "edge", r("OPTIONS", "/api/v1/cart", ""), []int{405}},
		{"oversized header", "edge", r("GET", "/api/v1/products", "", bigHeader), []int{431}},
		{"body longer than Content-Length claims", "edge", r("POST", "/api/v1/session", `{"user":"al"}`, ct, "Transfer-Encoding: chunked"), nil},
		{"chunked body with a bad chunk", "edge", rawRequest{method: "POST", target: "/api/v1/session", headers: []string{ct, "Transfer-Encoding: chunked"}, body: "zz\r\n{}\r\n0\r\n\r\n"}, nil},
		{"absolute-form target", "edge", r("GET", "http://evil.example/api/v1/orders/nosuchorder", "", auth), []int{404}},
		{"asterisk target", "edge", r("GET", "*", ""), nil},
		{"target without a slash", "edge", r("GET", "api/v1/products", ""), nil},
		{"URI too long", "edge", r("GET", "/api/v1/products?x="+strings.Repeat("q", 20<<10), ""), nil},
		{"many query parameters", "edge", r("GET", "/api/v1/products?"+strings.Repeat("limit=5&", 2000), ""), nil},
		{"control character in a header", "edge", r("GET", "/api/v1/cart", "", auth, "X-Request-ID: a\x01b"), []int{200, 400}},
		{"bad cookie", "edge", r("GET", "/api/v1/cart", "", "Cookie: fe_session=%%%; fe_session=x"), []int{401}},
		{"static: dot segments", "edge", r("GET", "/static/..%2F..%2Fgo.mod", ""), []int{404}},

		// The backends' own routes, as anything inside the cluster can reach them.
		{"catalog: limit=-1", "catalog", r("GET", "/api/v1/products?limit=-1", ""), nil},
		{"catalog: limit=1e9", "catalog", r("GET", "/api/v1/products?limit=1e9", ""), nil},
		{"catalog: garbage cursor", "catalog", r("GET", "/api/v1/products?cursor=!!", ""), nil},
		{"catalog: id too long", "catalog", r("GET", "/api/v1/products/"+long, ""), nil},
		{"catalog: percent-encoded slash", "catalog", r("GET", "/api/v1/products/a%2Fb", ""), nil},
		{"catalog batch: no ids", "catalog", r("GET", "/internal/v1/products", ""), nil},
		{"catalog batch: too many ids", "catalog", r("GET", "/internal/v1/products?ids="+strings.Repeat("00000001,", 500)+"x", ""), nil},
		{"catalog batch: bad id", "catalog", r("GET", "/internal/v1/products?ids=a%7Bb", ""), nil},
		{"catalog admin: no token", "catalog", r("POST", "/api/v1/admin/products", `{"name":"x","price":1}`, ct), []int{401}},
		{"catalog admin: truncated JSON", "catalog", r("POST", "/api/v1/admin/products", `{"name":`, adminAuth, ct), nil},
		{"catalog admin: get bad id", "catalog", r("GET", "/api/v1/admin/products/a%7B", "", adminAuth), nil},
		{"catalog admin: body over the limit", "catalog", r("POST", "/api/v1/admin/products", huge, adminAuth, ct), []int{413}},
		{"cart: no user", "cart", r("GET", "/api/v1/cart", ""), []int{401}},
		{"cart: user upper case", "cart", r("GET", "/api/v1/cart", "", "X-Flashedge-User: Alice"), []int{401}},
		{"cart: user with a brace", "cart", r("GET", "/api/v1/cart", "", "X-Flashedge-User: a{b}"), []int{401}},
		{"cart: user too long", "cart", r("GET", "/api/v1/cart", "", "X-Flashedge-User: "+long), []int{401}},
		{"cart: put truncated", "cart", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":`, user, ct), nil},
		{"cart: put bad id", "cart", r("PUT", "/api/v1/cart/items/a%7Bb", `{"quantity":1}`, user, ct), nil},
		{"cart: put string quantity", "cart", r("PUT", "/api/v1/cart/items/00000001", `{"quantity":"1"}`, user, ct), nil},
		{"cart internal: clear with bad body", "cart", r("DELETE", "/internal/v1/cart", `{"items":[{"product_id":1}]}`, user, ct), nil},
		{"cart internal: clear with truncated body", "cart", r("DELETE", "/internal/v1/cart", `{"items":[`, user, ct), nil},
		{"cart internal: clear with bad product", "cart", r("DELETE", "/internal/v1/cart", `{"items":[{"product_id":"a{b}","quantity":1}]}`, user, ct), nil},
		{"cart internal: clear with negative quantity", "cart", r("DELETE", "/internal/v1/cart", `{"items":[{"product_id":"00000001","quantity":-3}]}`, user, ct), nil},
		{"cart internal: clear with bad order id", "cart", r("DELETE", "/internal/v1/cart", `{"order_id":"`+long+`","items":[]}`, user, ct), nil},
		{"order: no user", "order", r("GET", "/api/v1/orders", ""), []int{401}},
		{"order: create without key", "order", r("POST", "/api/v1/orders", "", user), nil},
		{"order: list limit=-1", "order", r("GET", "/api/v1/orders?limit=-1", "", user), nil},
		{"order: list cursor garbage", "order", r("GET", "/api/v1/orders?cursor=-5", "", user), nil},
		{"order: get bad id", "order", r("GET", "/api/v1/orders/a%7Bb", "", user), nil},
		{"order sale: bad id", "order", r("GET", "/api/v1/flash-sales/a%7Bb", ""), nil},
		{"order sale: id too long", "order", r("GET", "/api/v1/flash-sales/"+long, ""), nil},
		{"order attempt: no user", "order", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{}`, ct, "Idempotency-Key: o1"), []int{401}},
		{"order attempt: truncated", "order", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id"`, user, ct, "Idempotency-Key: o2"), nil},
		{"order attempt: no key", "order", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, user, ct), nil},
		{"order attempt: bad key", "order", r("POST", "/api/v1/flash-sales/bad-input/attempts", `{"challenge_id":"c","answer":"0"}`, user, ct, "Idempotency-Key: a{b}"), nil},
		{"order attempt: bad sale id", "order", r("POST", "/api/v1/flash-sales/a%7Bb/attempts", `{"challenge_id":"c","answer":"0"}`, user, ct, "Idempotency-Key: o3"), nil},
		{"order poll: bad ticket", "order", r("GET", "/api/v1/flash-sales/bad-input/attempts/a%7Bb", "", user), nil},
		{"order poll: ticket too long", "order", r("GET", "/api/v1/flash-sales/bad-input/attempts/"+long, "", user), nil},
		{"order checkout: truncated", "order", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":`, user, ct), nil},
		{"order checkout: token with braces", "order", r("POST", "/api/v1/flash-sales/bad-input/checkout", `{"token":"{a}:b"}`, user, ct), nil},
		{"order admin sale: truncated", "order", r("POST", "/api/v1/admin/flash-sales", `{"id":`, adminAuth, ct), nil},
		{"order admin ledger: bad id", "order", r("GET", "/api/v1/admin/flash-sales/a%7Bb/ledger", "", adminAuth), nil},
		{"order: oversized header", "order", r("GET", "/api/v1/orders", "", user, bigHeader), []int{431}},
	}

	// Rows whose error code is checked too.
	wantCode := map[string]string{
		"attempt: two Idempotency-Keys": "duplicate_header", "attempt: two Authorizations": "duplicate_header",
		"cart: two Authorizations": "duplicate_header", "cart: two Authorizations, one empty": "duplicate_header",
		"order: two Idempotency-Keys": "duplicate_header",
	}
	before := storeKeys(t, st)
	for i, row := range rows {
		from := fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250)
		addr := edge
		if row.service != "edge" {
			addr = st.Addr(row.service, 0)
		}
		got := row.req.send(t, addr, from)
		if testing.Verbose() {
			t.Logf("%-45s %d %.100s", row.name, got.status, got.body)
		}
		ok := got.status >= 400 && got.status < 500
		if row.want != nil {
			ok = slices.Contains(row.want, got.status)
		}
		switch {
		case !ok:
			t.Errorf("%s: %s %s answered %d %s, want %v (a 4xx)", row.name, row.req.method, row.req.target, got.status, got.body, row.want)
		case got.status >= 400 && got.errCode() == "":
			t.Errorf("%s: %d body %q is not the contract's JSON error", row.name, got.status, got.body)
		case wantCode[row.name] != "" && got.errCode() != wantCode[row.name]:
			t.Errorf("%s: %d %s, want error code %s", row.name, got.status, got.body, wantCode[row.name])
		case got.header.Get("X-Request-ID") == "":
			t.Errorf("%s: %d answer without X-Request-ID", row.name, got.status)
		}
	}
	// The catalog page rule has one home (product.ParsePage): the edge and the catalog service
	// refuse the same queries with the same answer.
	for i, q := range []string{"limit=-1", "limit=101", "limit=1e9", "cursor=!!", "cursor=YSBi"} {
		e := r("GET", "/api/v1/products?"+q, "").send(t, edge, fmt.Sprintf("127.0.9.%d", i+1))
		c := r("GET", "/api/v1/products?"+q, "").send(t, st.Addr("catalog", 0), "127.0.0.1")
		if e.status != 400 || e.status != c.status || string(e.body) != string(c.body) {
			t.Errorf("?%s: edge %d %s, catalog %d %s; want the same 400", q, e.status, e.body, c.status, c.body)
		}
	}
	if after := storeKeys(t, st); !slices.Equal(before, after) {
		t.Errorf("the store's keys changed under bad input:\nbefore %v\nafter  %v", before, after)
	}
}

// saleBody is a sale creation body starting a minute before now and ending at now+end, with
// extra fields.
func saleBody(now time.Time, end time.Duration, extra string) string {
	return fmt.Sprintf(`{"product_id":"00000001","price":1000,"starts_at":%q,"ends_at":%q,"per_user_limit":1,%s}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(end).Format(time.RFC3339), extra)
}

// storeKeys lists the store's keys, sorted.
func storeKeys(t *testing.T, st *stack.Stack) []string {
	t.Helper()
	c := st.Store().Client(t)
	keys, err := c.Do(context.Background(), c.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil {
		t.Fatalf("store keys: %v", err)
	}
	slices.Sort(keys)
	return keys
}
