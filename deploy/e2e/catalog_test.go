package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestProductUpdateVisibleAtEdge is issue 2's acceptance: the seeded shop answers at the edge,
// and an admin PUT through the edge is served by the edge within 50 ms, with no TTL involved.
func TestProductUpdateVisibleAtEdge(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "1200"}},
	})
	edge := newClient(t, st.URL("edge", 0), "")
	admin := newClient(t, st.URL("edge", 0), st.AdminToken())

	var p map[string]any
	edge.do("GET", "/api/v1/products/00000001", nil).want(t, "seeded product", 200, "").json(t, &p)
	for _, k := range []string{"id", "name", "description", "price", "currency", "image", "stock_state"} {
		if _, ok := p[k]; !ok {
			t.Fatalf("product %v lacks %q", p, k)
		}
	}
	var page struct {
		Items []map[string]any `json:"items"`
		Next  string           `json:"next_cursor"`
	}
	edge.do("GET", "/api/v1/products?limit=100", nil).want(t, "first page", 200, "").json(t, &page)
	if len(page.Items) != 100 || page.Next == "" {
		t.Fatalf("first page: %d items, next %q; want 100 and a cursor", len(page.Items), page.Next)
	}

	var worst time.Duration
	for i := range 20 {
		name := fmt.Sprintf("Áo dài lụa tơ tằm #%d", i)
		start := time.Now()
		admin.do("PUT", "/api/v1/admin/products/00000001", map[string]any{"name": name}).
			want(t, "admin PUT", 200, "")
		poll(t, "update visible at the edge", 50*time.Millisecond, func() error {
			r := edge.do("GET", "/api/v1/products/00000001", nil)
			if !strings.Contains(string(r.body), name) {
				return fmt.Errorf("edge still serves %s", r.body)
			}
			return nil
		})
		worst = max(worst, time.Since(start))
	}
	t.Logf("20 admin updates: worst time from PUT to the edge serving it: %v", worst)

	// Creation and deletion are seen too.
	var created map[string]any
	admin.do("POST", "/api/v1/admin/products", map[string]any{"name": "Nón lá", "price": 120000, "stock": 5}).
		want(t, "admin POST", 201, "").json(t, &created)
	id := created["id"].(string)
	edge.do("GET", "/api/v1/products/"+id, nil).want(t, "new product at the edge", 200, "")
	admin.do("DELETE", "/api/v1/admin/products/"+id, nil).want(t, "admin DELETE", 204, "")
	poll(t, "deleted product gone at the edge", 50*time.Millisecond, func() error {
		if r := edge.do("GET", "/api/v1/products/"+id, nil); r.status != 404 {
			return fmt.Errorf("status %d", r.status)
		}
		return nil
	})
}

// TestBadInput checks that bad requests get the right 4xx with a JSON error, at the edge and
// through it at the catalog, and that nothing is stored by them.
func TestBadInput(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "30"}},
	})
	edge := newClient(t, st.URL("edge", 0), "")
	admin := newClient(t, st.URL("edge", 0), st.AdminToken())
	big := `{"name":"` + strings.Repeat("x", 500_000) + `"}`
	tests := []struct {
		name   string
		c      *client
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"unknown id", edge, "GET", "/api/v1/products/99999999", nil, 404, "not_found"},
		{"malformed id", edge, "GET", "/api/v1/products/a%20b", nil, 400, "invalid_id"},
		{"bad cursor", edge, "GET", "/api/v1/products?cursor=%%%", nil, 400, "invalid_cursor"},
		{"bad limit", edge, "GET", "/api/v1/products?limit=0", nil, 400, "invalid_limit"},
		{"no admin token", edge, "POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":1}`, 401, "unauthorized"},
		{"malformed JSON", admin, "POST", "/api/v1/admin/products", `{"name":`, 400, "malformed_json"},
		{"unknown field", admin, "POST", "/api/v1/admin/products", `{"name":"x","price":1,"stock":1,"owner":"me"}`, 400, "malformed_json"},
		{"invalid price", admin, "POST", "/api/v1/admin/products", `{"name":"x","price":-5,"stock":1}`, 422, "invalid_product"},
		{"oversized body", admin, "POST", "/api/v1/admin/products", big, 413, "body_too_large"},
		{"update unknown", admin, "PUT", "/api/v1/admin/products/99999999", `{"price":5}`, 404, "not_found"},
		{"no route", edge, "GET", "/api/v2/products", nil, 404, "route_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.do(tt.method, tt.path, tt.body).want(t, tt.method+" "+tt.path, tt.status, tt.code)
		})
	}
	var page struct {
		Items []map[string]any `json:"items"`
	}
	edge.do("GET", "/api/v1/products?limit=100", nil).want(t, "catalog after bad input", 200, "").json(t, &page)
	if len(page.Items) != 30 {
		t.Fatalf("catalog has %d products after bad writes, want the 30 seeded", len(page.Items))
	}
}
