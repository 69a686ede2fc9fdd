package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"flashedge/shared/openapi"
)

// The public contract (shared/openapi) is loaded once; client.do checks every answer against
// it, so an answer the document does not allow fails the test that received it.
var contract struct {
	once   sync.Once
	router routers.Router
	err    error
}

func contractRouter() (routers.Router, error) {
	contract.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(openapi.JSON())
		if err != nil {
			contract.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			contract.err = err
			return
		}
		contract.router, contract.err = gorillamux.NewRouter(doc)
	})
	return contract.router, contract.err
}

// documented reports whether a path belongs to the public contract: the API and the probes.
// The web page's files, the operations listener's metrics and dashboard, and the backends'
// internal routes are not part of it.
func documented(path string) bool {
	return strings.HasPrefix(path, "/api/") || path == "/health" || path == "/ready"
}

// checkContract fails t unless the answer to req (status, X-Request-ID, Retry-After where the
// document requires it, body) is one the document allows for that route.
func checkContract(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if !documented(req.URL.Path) {
		return
	}
	router, err := contractRouter()
	if err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// A route the document lacks must be one the server lacks too: 404 route_not_found or
		// 405 method_not_allowed in the contract's error shape.
		var e struct {
			Error struct{ Code, Message string }
		}
		if (status != http.StatusNotFound && status != http.StatusMethodNotAllowed) ||
			json.Unmarshal(body, &e) != nil || e.Error.Code == "" || header.Get("X-Request-ID") == "" {
			t.Fatalf("%s %s answered %d %s, but the OpenAPI document (shared/openapi/openapi.json) has no such route: %v",
				req.Method, req.URL.Path, status, body, err)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s answered %d %s: not what the OpenAPI document allows: %v", req.Method, req.URL.Path, status, body, err)
	}
}

func TestOpenAPIDocumentLoads(t *testing.T) {
	if _, err := contractRouter(); err != nil {
		t.Fatal(err)
	}
}
