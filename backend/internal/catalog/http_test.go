package catalog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
)

const adminToken = "test-admin-token"

// env is a catalog served over an in-memory listener by the real server setup, backed by a
// private redis-server.
type env struct {
	t     *testing.T
	srv   *kvtest.Server
	kv    rueidis.Client
	store *catalog.Store
	http  *fasthttp.Client
	ln    *fasthttputil.InmemoryListener
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := kvtest.Start(t)
	c := srv.Client(t)
	store := catalog.NewStore(c)
	h, err := catalog.NewHandler(store, catalog.Options{AdminToken: adminToken, Timeout: time.Second})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	hs := httpapi.NewServer(h, httpapi.ServerOptions{Name: "catalog-test"}, log)
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Shutdown()
		<-served
	})
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return &env{t: t, srv: srv, kv: c, store: store, http: client, ln: ln}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// do sends one request; token "" sends no Authorization header.
func (e *env) do(t *testing.T, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://catalog" + path)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	if err := e.http.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

type productJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       int64  `json:"price"`
	Currency    string `json:"currency"`
	Image       string `json:"image"`
	StockState  string `json:"stock_state"`
	Stock       *int64 `json:"stock"`
}

func decode[T any](t *testing.T, what string, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: body %s is not the expected JSON: %v", what, body, err)
	}
	return v
}

func (e *env) mustCreate(body string) productJSON {
	e.t.Helper()
	st, b := e.do(e.t, "POST", "/api/v1/admin/products", adminToken, body)
	if st != fasthttp.StatusCreated {
		e.t.Fatalf("create %s: status %d %s, want 201", body, st, b)
	}
	return decode[productJSON](e.t, "create", b)
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb httpapi.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("body %s is not the contract's JSON error (%v)", body, err)
	}
	return eb.Error.Code
}

func TestCRUDRoundTrip(t *testing.T) {
	e := newEnv(t)
	created := e.mustCreate(`{"name":"  Nồi cơm điện Sharp 1.8L ","description":"Nấu ngon.","price":890000,"image":"/img/noi-com-dien.svg","stock":25}`)
	if created.ID == "" || created.Name != "Nồi cơm điện Sharp 1.8L" || created.Price != 890000 ||
		created.Currency != "VND" || created.StockState != "in_stock" || created.Stock == nil || *created.Stock != 25 {
		t.Fatalf("create answered %+v, want the product with id, trimmed name, VND, in_stock and stock 25", created)
	}

	st, b := e.do(t, "GET", "/api/v1/products/"+created.ID, "", "")
	if st != 200 {
		t.Fatalf("public get: status %d %s", st, b)
	}
	pub := decode[productJSON](t, "public get", b)
	if pub.Stock != nil || pub.Name != created.Name || pub.StockState != "in_stock" {
		t.Errorf("public get = %+v, want the product with stock_state and without stock", pub)
	}
	want := `{"id":"` + created.ID + `","name":"Nồi cơm điện Sharp 1.8L","description":"Nấu ngon.","price":890000,"currency":"VND","image":"/img/noi-com-dien.svg","stock_state":"in_stock"}`
	if string(b) != want {
		t.Errorf("public get body\n got %s\nwant %s", b, want)
	}

	// Partial update: only price and stock change.
	st, b = e.do(t, "PUT", "/api/v1/admin/products/"+created.ID, adminToken, `{"price":790000,"stock":3}`)
	if st != 200 {
		t.Fatalf("update: status %d %s", st, b)
	}
	up := decode[productJSON](t, "update", b)
	if up.Price != 790000 || up.Name != created.Name || up.Description != "Nấu ngon." || up.Image != created.Image ||
		up.StockState != "low" || up.Stock == nil || *up.Stock != 3 {
		t.Errorf("update answered %+v, want price 790000, stock 3 (low) and the other fields kept", up)
	}
	// An update without stock keeps the stock, including changes made by checkouts meanwhile.
	if err := e.kv.Do(context.Background(), e.kv.B().Decrby().Key(keyspace.ProductStock(created.ID)).Decrement(3).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	st, b = e.do(t, "PUT", "/api/v1/admin/products/"+created.ID, adminToken, `{"description":""}`)
	up = decode[productJSON](t, "update", b)
	if st != 200 || up.Description != "" || *up.Stock != 0 || up.StockState != "out_of_stock" {
		t.Errorf("update of description: status %d %+v, want empty description and stock 0 out_of_stock", st, up)
	}
	st, b = e.do(t, "GET", "/api/v1/admin/products/"+created.ID, adminToken, "")
	if got := decode[productJSON](t, "admin get", b); st != 200 || got.Price != 790000 || *got.Stock != 0 {
		t.Errorf("admin get: status %d %+v, want price 790000 stock 0", st, got)
	}

	st, b = e.do(t, "DELETE", "/api/v1/admin/products/"+created.ID, adminToken, "")
	if st != fasthttp.StatusNoContent || len(b) != 0 {
		t.Fatalf("delete: status %d %s, want 204 without body", st, b)
	}
	for _, tc := range []struct{ method, path, token, body string }{
		{"GET", "/api/v1/products/" + created.ID, "", ""},
		{"GET", "/api/v1/admin/products/" + created.ID, adminToken, ""},
		{"PUT", "/api/v1/admin/products/" + created.ID, adminToken, `{"price":1000}`},
		{"DELETE", "/api/v1/admin/products/" + created.ID, adminToken, ""},
	} {
		st, b := e.do(t, tc.method, tc.path, tc.token, tc.body)
		if st != 404 || errorCode(t, b) != "not_found" {
			t.Errorf("%s %s after delete: status %d %s, want 404 not_found", tc.method, tc.path, st, b)
		}
	}
	for _, k := range []string{keyspace.Product(created.ID), keyspace.ProductStock(created.ID)} {
		if n, _ := e.kv.Do(context.Background(), e.kv.B().Exists().Key(k).Build()).AsInt64(); n != 0 {
			t.Errorf("key %s still exists after delete", k)
		}
	}
	st, b = e.do(t, "GET", "/api/v1/products", "", "")
	if page := decode[pageJSON](t, "list", b); st != 200 || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("list after delete: status %d %+v, want an empty page", st, page)
	}
}

type pageJSON struct {
	Items      []productJSON `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

func TestPaginationWalksEveryProductOnceInOrder(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 45 {
		p := e.mustCreate(fmt.Sprintf(`{"name":"Sản phẩm %d","price":%d,"stock":%d}`, i, 1000*(i+1), i))
		want = append(want, p.ID)
	}
	tests := []struct {
		name  string
		limit string
		pages []int
	}{
		{"limit 20", "20", []int{20, 20, 5}},
		{"default limit", "", []int{20, 20, 5}},
		{"limit 45 has no next page", "45", []int{45}},
		{"limit 100", "100", []int{45}},
		{"limit 1", "1", nil}, // 45 pages of one
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var sizes []int
			cursor := ""
			for page := 0; ; page++ {
				if page > 50 {
					t.Fatalf("more than 50 pages: the cursor does not advance")
				}
				path := "/api/v1/products?cursor=" + cursor
				if tt.limit != "" {
					path += "&limit=" + tt.limit
				}
				st, b := e.do(t, "GET", path, "", "")
				if st != 200 {
					t.Fatalf("GET %s: status %d %s", path, st, b)
				}
				p := decode[pageJSON](t, path, b)
				sizes = append(sizes, len(p.Items))
				for _, it := range p.Items {
					if it.Stock != nil {
						t.Fatalf("public list shows stock: %+v", it)
					}
					got = append(got, it.ID)
				}
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("walked ids %v, want %v", got, want)
			}
			if tt.pages != nil && fmt.Sprint(sizes) != fmt.Sprint(tt.pages) {
				t.Errorf("page sizes %v, want %v", sizes, tt.pages)
			}
		})
	}
}

func TestListSkipsIndexEntriesWithoutDocument(t *testing.T) {
	e := newEnv(t)
	a := e.mustCreate(`{"name":"A","price":1000,"stock":1}`)
	// What a crash between the index and the document writes could leave behind.
	ghost := catalog.FormatID(99)
	ctx := context.Background()
	if err := e.kv.Do(ctx, e.kv.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, ghost).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	st, b := e.do(t, "GET", "/api/v1/products", "", "")
	p := decode[pageJSON](t, "list", b)
	if st != 200 || len(p.Items) != 1 || p.Items[0].ID != a.ID || p.NextCursor != "" {
		t.Errorf("list with a ghost id: status %d %+v, want only %s", st, p, a.ID)
	}
	// Deleting the ghost cleans the index up and answers 204.
	if st, b := e.do(t, "DELETE", "/api/v1/admin/products/"+ghost, adminToken, ""); st != 204 {
		t.Errorf("delete ghost: status %d %s, want 204", st, b)
	}
	if n, _ := e.store.Count(ctx); n != 1 {
		t.Errorf("index holds %d ids after deleting the ghost, want 1", n)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	p := e.mustCreate(`{"name":"Áo thun","price":199000,"stock":5}`)
	item := "/api/v1/admin/products/" + p.ID
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"limit zero", "GET", "/api/v1/products?limit=0", "", 400, "invalid_limit"},
		{"limit too large", "GET", "/api/v1/products?limit=101", "", 400, "invalid_limit"},
		{"limit negative", "GET", "/api/v1/products?limit=-5", "", 400, "invalid_limit"},
		{"limit not a number", "GET", "/api/v1/products?limit=ten", "", 400, "invalid_limit"},
		{"cursor not base64url", "GET", "/api/v1/products?cursor=%21%21", "", 400, "invalid_cursor"},
		{"cursor padded", "GET", "/api/v1/products?cursor=MDAwMDAwMDE=", "", 400, "invalid_cursor"},
		{"cursor of a bad id", "GET", "/api/v1/products?cursor=YSBi", "", 400, "invalid_cursor"}, // "a b"
		{"id with bad characters", "GET", "/api/v1/products/a.b", "", 400, "invalid_id"},
		{"id too long", "GET", "/api/v1/products/" + strings.Repeat("1", 65), "", 400, "invalid_id"},
		{"unknown id", "GET", "/api/v1/products/00999999", "", 404, "not_found"},
		{"unknown route", "GET", "/api/v1/nothing", "", 404, "route_not_found"},
		{"wrong method", "PATCH", "/api/v1/products", "", 405, "method_not_allowed"},
		{"empty body", "POST", "/api/v1/admin/products", "", 400, "empty_body"},
		{"malformed JSON", "POST", "/api/v1/admin/products", `{"name":`, 400, "malformed_json"},
		{"JSON array", "POST", "/api/v1/admin/products", `[]`, 400, "malformed_json"},
		{"trailing data", "POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":1} {}`, 400, "malformed_json"},
		{"unknown field", "POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":1,"colour":"red"}`, 400, "malformed_json"},
		{"id in body", "PUT", item, `{"id":"5"}`, 400, "malformed_json"},
		{"price as string", "POST", "/api/v1/admin/products", `{"name":"x","price":"1000","stock":1}`, 400, "malformed_json"},
		{"missing name", "POST", "/api/v1/admin/products", `{"price":1000,"stock":1}`, 422, "invalid_product"},
		{"missing price", "POST", "/api/v1/admin/products", `{"name":"x","stock":1}`, 422, "invalid_product"},
		{"missing stock", "POST", "/api/v1/admin/products", `{"name":"x","price":1000}`, 422, "invalid_product"},
		{"zero price", "POST", "/api/v1/admin/products", `{"name":"x","price":0,"stock":1}`, 422, "invalid_product"},
		{"negative stock", "POST", "/api/v1/admin/products", `{"name":"x","price":1000,"stock":-1}`, 422, "invalid_product"},
		{"bad currency", "POST", "/api/v1/admin/products", `{"name":"x","price":1000,"stock":1,"currency":"dong"}`, 422, "invalid_product"},
		{"bad image", "POST", "/api/v1/admin/products", `{"name":"x","price":1000,"stock":1,"image":"javascript:x"}`, 422, "invalid_product"},
		{"blank name on update", "PUT", item, `{"name":"   "}`, 422, "invalid_product"},
		{"update unknown id", "PUT", "/api/v1/admin/products/00999999", `{"price":1000}`, 404, "not_found"},
		{"update bad id", "PUT", "/api/v1/admin/products/a%20b", `{"price":1000}`, 400, "invalid_id"},
		{"delete bad id", "DELETE", "/api/v1/admin/products/a:b", "", 400, "invalid_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, b := e.do(t, tt.method, tt.path, adminToken, tt.body)
			if st != tt.status {
				t.Fatalf("%s %s %.60s: status %d %s, want %d", tt.method, tt.path, tt.body, st, b, tt.status)
			}
			if code := errorCode(t, b); code != tt.code {
				t.Errorf("%s %s: code %q, want %q", tt.method, tt.path, code, tt.code)
			}
		})
	}
	// None of the refused writes changed the product or added one.
	st, b := e.do(t, "GET", item, adminToken, "")
	if got := decode[productJSON](t, "admin get", b); st != 200 || got.Name != "Áo thun" || got.Price != 199000 || *got.Stock != 5 {
		t.Errorf("after refused writes: %+v, want the product unchanged", got)
	}
	if n, _ := e.store.Count(context.Background()); n != 1 {
		t.Errorf("after refused creates the index holds %d ids, want 1", n)
	}
}

// The server refuses a body over its limit from the Content-Length alone, before reading it, so
// the request is written by hand: a client writing the whole body could see the connection
// closed under it.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t)
	conn, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /api/v1/admin/products HTTP/1.1\r\nHost: catalog\r\nAuthorization: Bearer " + adminToken +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(70<<10) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the answer to a 70 KiB body: %v", err)
	}
	if resp.StatusCode() != 413 || errorCode(t, resp.Body()) != "body_too_large" {
		t.Errorf("70 KiB body: status %d %s, want 413 body_too_large", resp.StatusCode(), resp.Body())
	}
	if n, _ := e.store.Count(context.Background()); n != 0 {
		t.Errorf("index holds %d ids after an oversized create, want 0", n)
	}
}

func TestAdminRoutesNeedTheToken(t *testing.T) {
	e := newEnv(t)
	p := e.mustCreate(`{"name":"Tai nghe","price":350000,"stock":9}`)
	item := "/api/v1/admin/products/" + p.ID
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/admin/products", `{"name":"x","price":1000,"stock":1}`},
		{"GET", item, ""},
		{"PUT", item, `{"price":1000}`},
		{"DELETE", item, ""},
	}
	auths := []struct{ name, header string }{
		{"no header", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer " + adminToken[:5]},
		{"token with suffix", "Bearer " + adminToken + "x"},
		{"basic scheme", "Basic " + adminToken},
		{"bare token", adminToken},
	}
	for _, r := range routes {
		for _, a := range auths {
			t.Run(r.method+" "+a.name, func(t *testing.T) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.Header.SetMethod(r.method)
				req.SetRequestURI("http://catalog" + r.path)
				if a.header != "" {
					req.Header.Set("Authorization", a.header)
				}
				req.SetBodyString(r.body)
				if err := e.http.DoTimeout(req, resp, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode() != 401 || errorCode(t, resp.Body()) != "unauthorized" {
					t.Errorf("%s %s with %s: status %d %s, want 401 unauthorized", r.method, r.path, a.name, resp.StatusCode(), resp.Body())
				}
			})
		}
	}
	st, b := e.do(t, "GET", "/api/v1/products/"+p.ID, "", "")
	if got := decode[productJSON](t, "get", b); st != 200 || got.Price != 350000 {
		t.Errorf("after unauthorized writes: status %d %+v, want the product unchanged", st, got)
	}
	if n, _ := e.store.Count(context.Background()); n != 1 {
		t.Errorf("index holds %d ids after unauthorized creates, want 1", n)
	}
	// The scheme is case-insensitive (RFC 9110).
	st, b = e.doRawAuth("GET", "/api/v1/admin/products/"+p.ID, "bearer "+adminToken)
	if st != 200 {
		t.Errorf(`"bearer" in lower case: status %d %s, want 200`, st, b)
	}
}

func (e *env) doRawAuth(method, path, auth string) (int, []byte) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://catalog" + path)
	req.Header.Set("Authorization", auth)
	if err := e.http.DoTimeout(req, resp, 5*time.Second); err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// Concurrent partial updates of different fields must not lose each other's changes.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	e := newEnv(t)
	p := e.mustCreate(`{"name":"Quạt đứng","price":500000,"stock":50}`)
	const rounds = 25
	fields := []struct{ field, format string }{
		{"name", `{"name":"Quạt %d"}`},
		{"description", `{"description":"Mô tả %d"}`},
		{"price", `{"price":%d000}`},
		{"image", `{"image":"/img/%d.svg"}`},
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(fields)*rounds)
	for _, f := range fields {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= rounds; i++ {
				st, b := e.do(t, "PUT", "/api/v1/admin/products/"+p.ID, adminToken, fmt.Sprintf(f.format, i))
				if st != 200 {
					errs <- fmt.Sprintf("update %s #%d: status %d %s", f.field, i, st, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	_, b := e.do(t, "GET", "/api/v1/products/"+p.ID, "", "")
	got := decode[productJSON](t, "get", b)
	want := productJSON{ID: p.ID, Name: fmt.Sprintf("Quạt %d", rounds), Description: fmt.Sprintf("Mô tả %d", rounds),
		Price: rounds * 1000, Currency: "VND", Image: fmt.Sprintf("/img/%d.svg", rounds), StockState: "in_stock"}
	if got != want {
		t.Errorf("after concurrent updates got %+v, want %+v (an update was lost)", got, want)
	}
}

func TestReadyFollowsTheStore(t *testing.T) {
	e := newEnv(t)
	if st, b := e.do(t, "GET", "/health", "", ""); st != 200 {
		t.Fatalf("/health: status %d %s", st, b)
	}
	if st, b := e.do(t, "GET", "/ready", "", ""); st != 200 {
		t.Fatalf("/ready with the store up: status %d %s", st, b)
	}
	e.srv.Stop()
	// /ready answers from its last store check for a moment (httpapi.Probe.CheckEvery).
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, b := e.do(t, "GET", "/ready", "", "")
		if st == 503 && errorCode(t, b) == "not_ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready with the store down: status %d %s, want 503 not_ready", st, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, b := e.do(t, "GET", "/api/v1/products/00000001", "", ""); st != 503 || errorCode(t, b) != "store_unavailable" {
		t.Errorf("get with the store down: status %d %s, want 503 store_unavailable", st, b)
	}
	if st, _ := e.do(t, "GET", "/health", "", ""); st != 200 {
		t.Errorf("/health with the store down: status %d, want 200 (the process is alive)", st)
	}
}

func TestNewHandlerNeedsAToken(t *testing.T) {
	if _, err := catalog.NewHandler(nil, catalog.Options{}); err == nil {
		t.Error("NewHandler without an admin token succeeded, want an error")
	}
}

// TestBatchRead: one GET /internal/v1/products answers every product asked for, in the order
// asked, byte for byte as the single reads do, without the unknown ones; bad lists are 400.
func TestBatchRead(t *testing.T) {
	e := newEnv(t)
	a := e.mustCreate(`{"name":"A","price":1000,"currency":"VND","stock":5}`)
	b := e.mustCreate(`{"name":"B","price":2500,"currency":"VND","stock":0}`)
	st, body := e.do(t, "GET", "/internal/v1/products?ids="+b.ID+",nope,"+a.ID+","+b.ID, "", "")
	if st != 200 {
		t.Fatalf("batch: %d %s", st, body)
	}
	_, oneB := e.do(t, "GET", "/api/v1/products/"+b.ID, "", "")
	_, oneA := e.do(t, "GET", "/api/v1/products/"+a.ID, "", "")
	if want := `{"items":[` + string(oneB) + `,` + string(oneA) + `]}`; string(body) != want {
		t.Fatalf("batch body\n%s\nwant\n%s", body, want)
	}
	for _, q := range []string{"", "?ids=", "?ids=a,,b", "?ids=%3Cx%3E", "?ids=" + manyIDs(catalog.MaxBatch+1)} {
		if st, body := e.do(t, "GET", "/internal/v1/products"+q, "", ""); st != 400 || errorCode(t, body) != "invalid_ids" {
			t.Errorf("GET /internal/v1/products%s = %d %s, want 400 invalid_ids", q, st, body)
		}
	}
}

func manyIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	return strings.Join(ids, ",")
}
