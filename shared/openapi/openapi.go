// Package openapi holds the machine-readable public contract of flashedge: the OpenAPI 3.1
// document openapi.json, which the edge serves at GET /api/v1/openapi.json and against which the
// end-to-end tests (deploy/e2e) validate every answer they receive.
//
// Adding or changing a public route: edit openapi.json in the same change, reusing the
// components (schemas for bodies, the X-Request-ID and Retry-After headers, parameters, the
// session and admin security schemes). The edge's TestEveryRouteDocumented fails for a route the
// edge serves that the document lacks, and the end-to-end tests fail for an answer (status,
// X-Request-ID, Retry-After, body) the document does not allow. Times are matched against the one
// time format (httpapi.TimeLayout) by the Time schema.
package openapi

import _ "embed"

//go:embed openapi.json
var document []byte

// JSON returns the document. The slice is shared: callers must not change it.
func JSON() []byte { return document }
