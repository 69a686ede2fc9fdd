package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"flashedge/shared/obs"
	"flashedge/shared/product"
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

	// nameJSON is Name as a JSON string, when the lookup kept it encoded (StorePrices encodes
	// it once per document); nil means the renderer encodes Name itself.
	nameJSON []byte
}

// catalogClient reads products from the catalog service: a whole cart's in one call of its batch
// route GET /internal/v1/products?ids=..., never one call per line.
type catalogClient struct{ c Caller }

// products stores the product of ids[i] (each checked with product.ValidID; at most MaxLines +
// 1) in out[i], passing the caller's request id on; an id the catalog does not know leaves a
// Product with an empty ID. Failures wrap ErrCatalogUnavailable.
func (cc catalogClient) products(ctx context.Context, requestID []byte, ids []string, out []Product) error {
	if len(ids) == 0 {
		return nil
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(product.BatchPath + "?ids=" + strings.Join(ids, ","))
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.SetBytesV(obs.HeaderRequestID, requestID)
	if err := cc.c.Do(ctx, req, resp); err != nil {
		return fmt.Errorf("%w: products: %v", ErrCatalogUnavailable, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("%w: products: catalog answered %d %.200s", ErrCatalogUnavailable, resp.StatusCode(), resp.Body())
	}
	var body struct {
		Items []Product `json:"items"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil {
		return fmt.Errorf("%w: products: unexpected answer %.200q", ErrCatalogUnavailable, resp.Body())
	}
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		at[id] = i
		out[i] = Product{}
	}
	for _, p := range body.Items {
		i, asked := at[p.ID]
		if !asked {
			return fmt.Errorf("%w: products: answer names %q, which was not asked for", ErrCatalogUnavailable, p.ID)
		}
		out[i] = p
	}
	return nil
}
