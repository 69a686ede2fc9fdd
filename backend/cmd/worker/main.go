// Command worker decides flash-sale attempts: it consumes the attempt stream in a consumer group,
// claims units from the stock shards, writes results and seckill tokens, and sweeps expired
// reservations back into stock. Run any number of replicas. See run for flags and environment.
package main

import (
	"os"

	"flashedge/shared/flagenv"
)

func main() { os.Exit(flagenv.Main("worker", run)) }
