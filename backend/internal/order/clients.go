package order

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
	"flashedge/shared/product"
)

// Caller sends one request to another service and fills resp. A nil error means a response
// arrived, whatever its status. *upstream.Pool satisfies it (it sets scheme and host itself).
type Caller interface {
	Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error
}

// cartLine is one line of the cart service's GET /internal/v1/cart.
type cartLine struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// cartClient calls the cart service's internal routes for a user (header httpapi.HeaderUserID).
type cartClient struct{ c Caller }

func newRequest(method, uri string, requestID []byte, user string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(uri)
	req.Header.SetMethod(method)
	req.Header.SetBytesV(obs.HeaderRequestID, requestID)
	if user != "" {
		req.Header.Set(httpapi.HeaderUserID, user)
	}
	return req
}

// lines returns the user's cart lines, checked: valid product ids, quantities 1..MaxQuantity.
func (cc cartClient) lines(ctx context.Context, requestID []byte, user string) ([]cartLine, error) {
	req, resp := newRequest(fasthttp.MethodGet, "/internal/v1/cart", requestID, user), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := cc.c.Do(ctx, req, resp); err != nil {
		return nil, fmt.Errorf("%w: read cart: %v", ErrCartUnavailable, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%w: read cart: answered %d %.200s", ErrCartUnavailable, resp.StatusCode(), resp.Body())
	}
	var body struct {
		Items []cartLine `json:"items"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil {
		return nil, fmt.Errorf("%w: read cart: unexpected answer %.200q", ErrCartUnavailable, resp.Body())
	}
	for _, l := range body.Items {
		if !product.ValidID([]byte(l.ProductID)) || l.Quantity < 1 || l.Quantity > MaxQuantity {
			return nil, fmt.Errorf("%w: read cart: unexpected line %+v", ErrCartUnavailable, l)
		}
	}
	return body.Items, nil
}

// subtract takes an order's lines out of the user's cart, at most once per order id (so the
// pool may retry it).
func (cc cartClient) subtract(ctx context.Context, requestID []byte, user, orderID string, lines []cartLine) error {
	body, err := json.Marshal(struct {
		OrderID string     `json:"order_id"`
		Items   []cartLine `json:"items"`
	}{orderID, lines})
	if err != nil {
		return err
	}
	req, resp := newRequest(fasthttp.MethodDelete, "/internal/v1/cart", requestID, user), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	if err := cc.c.Do(ctx, req, resp); err != nil {
		return fmt.Errorf("%w: empty cart: %v", ErrCartUnavailable, err)
	}
	if resp.StatusCode() != fasthttp.StatusNoContent {
		return fmt.Errorf("%w: empty cart: answered %d %.200s", ErrCartUnavailable, resp.StatusCode(), resp.Body())
	}
	return nil
}

// catalogProduct is what a checkout needs of a catalog product.
type catalogProduct struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Price int64  `json:"price"`
}

// catalogClient reads products from the catalog service's batch route
// GET /internal/v1/products?ids=...: a whole cart's in one call.
type catalogClient struct{ c Caller }

// products returns the products ids (valid product ids, distinct) by id. An id the catalog does
// not know is a *ProductUnavailableError; other failures wrap ErrCatalogUnavailable.
func (cc catalogClient) products(ctx context.Context, requestID []byte, ids []string) (map[string]catalogProduct, error) {
	req, resp := newRequest(fasthttp.MethodGet, product.BatchPath+"?ids="+strings.Join(ids, ","), requestID, ""), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := cc.c.Do(ctx, req, resp); err != nil {
		return nil, fmt.Errorf("%w: products: %v", ErrCatalogUnavailable, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%w: products: answered %d", ErrCatalogUnavailable, resp.StatusCode())
	}
	var body struct {
		Items []catalogProduct `json:"items"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil {
		return nil, fmt.Errorf("%w: products: unexpected answer %.200q", ErrCatalogUnavailable, resp.Body())
	}
	out := make(map[string]catalogProduct, len(ids))
	for _, p := range body.Items {
		if !slices.Contains(ids, p.ID) || p.Price <= 0 {
			return nil, fmt.Errorf("%w: products: unexpected item %+v", ErrCatalogUnavailable, p)
		}
		out[p.ID] = p
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, &ProductUnavailableError{ProductID: id}
		}
	}
	return out, nil
}
