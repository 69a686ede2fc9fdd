// Command order is the order service: idempotent checkout from the cart, order history and
// detail (and, mounted in run, the flash-sale routes). See run for its flags and environment.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("order", run)) }
