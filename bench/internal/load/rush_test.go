package load

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRushInvariants(t *testing.T) {
	good := func() (*rush, ledger, orderCheck) {
		r := &rush{cfg: Config{Stock: 2, Limit: 1}, wins: make([]atomic.Int32, 4),
			rep: &RushReport{Won: 2, Demand: 4, Checkouts: 2}}
		r.wins[0].Store(1)
		r.wins[2].Store(1)
		return r, ledger{Initial: 2, Shards: []int64{0, 0}, Ordered: 2}, orderCheck{users: 4, total: 2}
	}
	cases := []struct {
		name     string
		spoil    func(r *rush, l *ledger, oc *orderCheck, samples *[]string)
		wantFail []string
	}{
		{"all hold", func(*rush, *ledger, *orderCheck, *[]string) {}, nil},
		{"one winner too many", func(r *rush, l *ledger, oc *orderCheck, _ *[]string) {
			r.rep.Won, r.rep.Checkouts = 3, 3
			r.wins[1].Store(1)
			l.Ordered, l.Initial = 3, 2
			oc.total = 3
		}, []string{"winners", "no oversell", "ledger balances"}},
		{"a shopper won twice", func(r *rush, _ *ledger, oc *orderCheck, _ *[]string) {
			r.wins[0].Store(2)
			r.wins[2].Store(0)
			oc.problems = []string{"shopper 0: 2 orders"}
		}, []string{"no shopper above the limit (tickets)", "no shopper above the limit (orders)"}},
		{"negative shard", func(_ *rush, l *ledger, _ *orderCheck, _ *[]string) {
			l.Shards = []int64{-1, 1}
		}, []string{"no oversell"}},
		{"unbalanced sample", func(_ *rush, _ *ledger, _ *orderCheck, s *[]string) {
			*s = []string{"at 1.0s: initial 2 != ..."}
		}, []string{"ledger balances during the run"}},
		{"ticket left undecided", func(r *rush, l *ledger, _ *orderCheck, _ *[]string) {
			r.rep.NotFinal, l.Queued = 1, 1
		}, []string{"every ticket decided"}},
		{"winner without order", func(r *rush, l *ledger, oc *orderCheck, _ *[]string) {
			r.rep.Checkouts = 1
			l.Ordered, l.Reserved = 1, 1
			oc.total = 1
		}, []string{"every winner checked out"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, l, oc := good()
			var samples []string
			c.spoil(r, &l, &oc, &samples)
			r.invariants(l, samples, oc)
			var failed []string
			for _, ch := range r.rep.Invariants {
				if !ch.OK {
					failed = append(failed, ch.Name)
				}
			}
			if strings.Join(failed, ",") != strings.Join(c.wantFail, ",") {
				t.Fatalf("failed checks %q, want %q; checks: %+v", failed, c.wantFail, r.rep.Invariants)
			}
			if r.rep.InvariantsOK != (len(c.wantFail) == 0) {
				t.Fatalf("InvariantsOK = %v with failures %q", r.rep.InvariantsOK, failed)
			}
			var out bytes.Buffer
			WriteRush(&out, r.rep)
			want := "invariants: OK"
			if len(c.wantFail) > 0 {
				want = "invariants: FAILED (" + strings.Join(c.wantFail, ", ") + ")"
			}
			if !strings.Contains(out.String(), want) {
				t.Fatalf("report lacks %q:\n%s", want, out.String())
			}
		})
	}
}
