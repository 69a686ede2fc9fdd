package cart

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/valyala/fasthttp"

	"flashedge/shared/obs"
)

// Caller sends one request to another service and fills resp. A nil error means a response
// arrived, whatever its status. *upstream.Pool satisfies it (it sets scheme and host itself).
type Caller interface {
	Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error
}

// Product is what a cart needs of a catalog product. Price is in whole units of Currency.
type Product struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
}

// catalogClient reads products from the catalog service's public route
// GET /api/v1/products/{id}.
type catalogClient struct{ c Caller }

// product returns the product id (already checked with product.ValidID), passing the caller's
// request id on. It returns ErrProductNotFound on 404 and wraps ErrCatalogUnavailable otherwise.
func (cc catalogClient) product(ctx context.Context, requestID []byte, id string) (Product, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/api/v1/products/" + id)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.SetBytesV(obs.HeaderRequestID, requestID)
	if err := cc.c.Do(ctx, req, resp); err != nil {
		return Product{}, fmt.Errorf("%w: product %s: %v", ErrCatalogUnavailable, id, err)
	}
	switch resp.StatusCode() {
	case fasthttp.StatusOK:
	case fasthttp.StatusNotFound:
		return Product{}, fmt.Errorf("%w: %s", ErrProductNotFound, id)
	default:
		return Product{}, fmt.Errorf("%w: product %s: catalog answered %d", ErrCatalogUnavailable, id, resp.StatusCode())
	}
	var p Product
	if err := json.Unmarshal(resp.Body(), &p); err != nil || p.ID != id {
		return Product{}, fmt.Errorf("%w: product %s: unexpected answer %.200q", ErrCatalogUnavailable, id, resp.Body())
	}
	return p, nil
}
