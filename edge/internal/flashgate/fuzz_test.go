package flashgate

import (
	"strings"
	"testing"

	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	publicsale "flashedge/shared/sale"
)

// FuzzIDs: a sale id and a ticket id from a request path are accepted only when the store keys
// built from them read back to the same sale (the gate's invalidation parser is the inverse of
// keyspace), and an id the gate refuses never reaches a key.
func FuzzIDs(f *testing.F) {
	f.Add("s1", "0123456789abcdef0123456789abcdef", "k-1")
	f.Add("a}b", "ABC", "x:y")
	f.Add("", "", "")
	f.Add(strings.Repeat("z", 65), strings.Repeat("f", 65), strings.Repeat("k", 129))
	f.Fuzz(func(t *testing.T, sale, ticket, key string) {
		if !product.ValidID([]byte(sale)) {
			return
		}
		for _, k := range []string{keyspace.Sale(sale), keyspace.SoldOut(sale)} {
			if id, ok := keyspace.SaleStateOf(k); !ok || id != sale {
				t.Fatalf("key %q of sale %q reads back as %q, %v", k, sale, id, ok)
			}
		}
		if id, ok := keyspace.SaleStateOf(keyspace.SaleResult(sale, "0")); ok {
			t.Fatalf("a result key of %q was taken for the sale itself (%q)", sale, id)
		}
		if publicsale.ValidTicketID(ticket) && strings.ContainsAny(ticket, "{}:") {
			t.Fatalf("ticket %q accepted with key delimiters", ticket)
		}
		if idem := keyspace.SaleIdempotency(sale, "u-a", key); !strings.HasPrefix(idem, "fe:sale:{s:"+sale+"}:idem:") {
			t.Fatalf("idempotency key %q of sale %q", idem, sale)
		}
	})
}
