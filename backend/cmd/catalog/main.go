// Command catalog is the product catalog service: admin product writes, product reads with
// cursor pagination, and the demo catalog seeder. See run for its flags and environment.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("catalog", run)) }
