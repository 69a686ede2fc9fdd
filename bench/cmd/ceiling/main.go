// Command ceiling is the bare fasthttp server `make bench` measures the edge against: it answers
// GET /api/v1/products/{anything} with a fixed product JSON, with the edge's server settings.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("ceiling", run)) }
