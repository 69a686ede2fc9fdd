// Command load is flashedge's load generator: shop scenarios, the seed's stress levels and a
// flash-sale rush with invariant checks, against an edge on loopback (-url) or a private stack it
// starts itself (-spawn). It prints a table of latencies and errors and can write JSON and an SVG
// latency plot. A failed invariant makes it exit non-zero.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("load", run)) }
