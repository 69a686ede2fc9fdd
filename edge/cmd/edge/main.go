// Command edge is flashedge's gateway: product reads from memory, sessions, and forwarding of
// the writes that can still succeed to the backend services.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("edge", run)) }
