package kv

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// CommandCalls returns how many times the server ran the named command (lower case, e.g. "get"),
// or every command but INFO itself when name is empty, read from INFO commandstats. Tests and the
// load tool use it to count store round trips on the server's side.
func CommandCalls(ctx context.Context, c rueidis.Client, name string) (int64, error) {
	info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return 0, fmt.Errorf("kv: INFO commandstats: %w", err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		cmd, calls, ok := strings.Cut(rest, ":calls=")
		if !ok || (name == "" && cmd == "info") || (name != "" && cmd != strings.ToLower(name)) {
			continue
		}
		v, _ := strconv.ParseInt(strings.SplitN(calls, ",", 2)[0], 10, 64)
		n += v
	}
	return n, nil
}
