package httpapi

import (
	"fmt"
	"time"
)

// The timeout chain: each caller waits longer than the work it calls may take, so nobody works
// on an answer its caller has already given up on. The edge waits EdgeBudget* for one answer of
// a backend (below its own write timeout); a backend bounds its work below that, and its calls to
// other services below its own bound. Each binary checks its links at start-up (CheckBudget).
const (
	EdgeBudgetCatalog = 3 * time.Second
	EdgeBudgetCart    = 4 * time.Second
	EdgeBudgetOrder   = 5 * time.Second
)

// CheckBudget returns an error naming the setting to change unless inner < outer.
func CheckBudget(outerName string, outer time.Duration, innerName string, inner time.Duration) error {
	if inner < outer {
		return nil
	}
	return fmt.Errorf("timeout chain: %s (%s) must be shorter than %s (%s): lower %s or raise %s",
		innerName, inner, outerName, outer, innerName, outerName)
}
