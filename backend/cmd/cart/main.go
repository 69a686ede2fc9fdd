// Command cart is the cart service: per-user carts in the store, validated against the catalog
// service over HTTP. See run for its flags and environment.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("cart", run)) }
