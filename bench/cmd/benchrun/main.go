// Command benchrun is `make bench`: it runs wrk against the bare fasthttp ceiling, the edge and
// the nginx + Lua peer on loopback, and prints and saves the comparison.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("benchrun", run)) }
