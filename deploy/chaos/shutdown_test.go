package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/deploy/stack"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/netfault"
)

// TestGracefulShutdown sends SIGTERM to services in the middle of their work. The order
// service and the worker reach the store through netfault proxies whose latency makes every
// checkout and every decision slow, so that work is surely in flight when the signal lands.
func TestGracefulShutdown(t *testing.T) {
	srv := kvtest.Start(t)
	pxOrder := netfault.Start(t, srv.Addr)
	pxWorker := netfault.Start(t, srv.Addr)
	st := stack.Start(t, quiet(stack.Options{
		Services:  []string{"catalog", "cart", "order", "worker", "edge"},
		StoreAddr: srv.Addr,
		NoRestart: true,
		Grace:     15 * time.Second, // above the order service's own 10s drain deadline
		ServiceEnv: map[string]map[string]string{
			"order":  {"FLASHEDGE_STORE_ADDR": pxOrder.Addr()},
			"worker": {"FLASHEDGE_STORE_ADDR": pxWorker.Addr()},
			"edge":   {"FLASHEDGE_RATE_IP": "off"},
		},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	admin := &client{base: edge, token: st.AdminToken(), http: hc}
	var p struct {
		ID string `json:"id"`
	}
	admin.must(t, "create the product", 201, "POST", "/api/v1/admin/products",
		map[string]any{"name": "Cà phê sữa đá", "price": 30000, "stock": 1_000_000}).json(t, &p)

	t.Run("order service drains in-flight checkouts", func(t *testing.T) {
		const inflight, late = 40, 20
		users := make([]*client, inflight+late)
		for i := range users {
			users[i] = login(t, hc, edge, fmt.Sprint("drain-", i))
			users[i].must(t, "cart add", 200, "PUT", "/api/v1/cart/items/"+p.ID, map[string]int{"quantity": 1})
		}
		probe := login(t, hc, edge, "drain-probe")
		probe.must(t, "cart add", 200, "PUT", "/api/v1/cart/items/"+p.ID, map[string]int{"quantity": 1})
		pxOrder.SetLatency(30 * time.Millisecond)
		one := probe.must(t, "a slowed checkout", 201, "POST", "/api/v1/orders", nil, "Idempotency-Key", "probe")

		replies := make([]reply, len(users))
		var wg sync.WaitGroup
		for i := range inflight {
			wg.Go(func() {
				replies[i] = users[i].call("POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprint("drain-", i))
			})
		}
		// Every checkout has reached the order service: its idempotency claim, the first of its
		// slowed store calls, is in the store (a fixed pause was not enough on a busy machine).
		kvc := srv.Client(t)
		poll(t, "every in-flight checkout to claim its key", 30*time.Second, func() error {
			cmds := make(rueidis.Commands, inflight)
			for i := range inflight {
				cmds[i] = kvc.B().Exists().Key(keyspace.Idempotency(users[i].user, "checkout", fmt.Sprint("drain-", i))).Build()
			}
			missing := 0
			for _, r := range kvc.DoMulti(context.Background(), cmds...) {
				if n, err := r.AsInt64(); err != nil || n == 0 {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Errorf("%d of %d not yet claimed", missing, inflight)
			}
			return nil
		})
		sigAt := time.Now()
		// New checkouts keep coming while the service drains and after it is gone.
		for i := inflight; i < len(users); i++ {
			wg.Go(func() {
				time.Sleep(time.Duration(i-inflight) * 20 * time.Millisecond)
				replies[i] = users[i].call("POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprint("drain-", i))
			})
		}
		// /ready of the order service itself, on a fresh connection each time.
		ready := map[string]int{}
		readyCtx, stopReady := context.WithCancel(context.Background())
		var readyWG sync.WaitGroup
		readyWG.Go(func() {
			c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for readyCtx.Err() == nil {
				resp, err := c.Get(st.URL("order", 0) + "/ready")
				k := "refused"
				if err == nil {
					k = fmt.Sprint(resp.StatusCode)
					resp.Body.Close()
				}
				ready[k]++
				time.Sleep(5 * time.Millisecond)
			}
		})
		st.Terminate("order", 0) // returns once the process has exited
		exitAt := time.Now()
		stopReady()
		readyWG.Wait()
		wg.Wait()

		inFlight, after := 0, 0
		for i, r := range replies {
			switch {
			case i < inflight && r.status != 201:
				t.Errorf("checkout %d, in flight at SIGTERM: %s; want 201 (drained)", i, r)
			case i >= inflight && r.status != 201 && !r.maintenance():
				t.Errorf("checkout %d, sent after SIGTERM: %s; want 201 or the edge's maintenance 503", i, r)
			}
			if i < inflight && r.start.Add(r.lat).After(sigAt) {
				inFlight++
			}
			if i >= inflight && r.maintenance() {
				after++
			}
		}
		if inFlight < inflight/2 {
			t.Errorf("only %d of %d checkouts were still in flight at SIGTERM: the test did not catch them draining", inFlight, inflight)
		}

		pxOrder.SetLatency(0)
		st.Restart("order", 0)
		// Its breaker opened on the refused connections of the late checkouts; half-open lets
		// the next request through as a trial.
		waitBackend(t, hc, st.OpsURL(0), "order", st.Addr("order", 0), 10*time.Second, "healthy, its breaker not open", admits)
		// The orders answered 201 exist; the refused ones succeed when the shopper retries
		// with the same key.
		for i, u := range users {
			if replies[i].status != 201 {
				u.must(t, "retried checkout", 201, "POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprint("drain-", i))
			}
			if n := len(listOrders(t, u)); n != 1 {
				t.Errorf("shopper %d has %d orders after the drain and one retry, want 1", i, n)
			}
		}
		t.Logf("SIGTERM to the order service with %d slowed checkouts in flight (one alone takes %s): all %d answered 201, drained and exited %s after the signal; "+
			"%d of %d checkouts sent after the signal got the edge's maintenance 503 (the rest 201), each 201 on retry with its key after the restart; "+
			"/ready of the order service during the drain: %v",
			inFlight, one.lat.Round(time.Millisecond), inflight, exitAt.Sub(sigAt).Round(time.Millisecond), after, late, ready)
	})

	t.Run("worker finishes and acknowledges its messages", func(t *testing.T) {
		const stock, shoppers = 40, 100
		now := time.Now().UTC()
		admin.must(t, "create the sale", 201, "POST", "/api/v1/admin/flash-sales", map[string]any{
			"id": "drain", "product_id": p.ID, "price": 9000, "stock": stock, "shards": 4, "per_user_limit": 1, "difficulty": 0,
			"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		})
		rush := make([]*client, shoppers)
		for i := range rush {
			rush[i] = login(t, hc, edge, fmt.Sprint("rush-", i))
		}
		kv := srv.Client(t)
		pxWorker.SetLatency(10 * time.Millisecond)
		admitted := 0
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 10)
		for i := range shoppers {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				c := rush[i]
				var ch struct {
					ID string `json:"challenge_id"`
				}
				r := c.call("POST", "/api/v1/flash-sales/drain/challenge", nil)
				if r.status != 200 {
					t.Errorf("challenge %d: %s", i, r)
					return
				}
				r.json(t, &ch)
				r = c.call("POST", "/api/v1/flash-sales/drain/attempts", map[string]string{"challenge_id": ch.ID, "answer": "0"},
					"Idempotency-Key", fmt.Sprint("rush-", i))
				switch r.status {
				case 202:
					mu.Lock()
					admitted++
					mu.Unlock()
				case 410, 429: // sold out or past the admission gate
				default:
					t.Errorf("attempt %d: %s", i, r)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Wait until the worker is in the middle of the rush, then stop it.
		poll(t, "the worker to decide a few attempts", 10*time.Second, func() error {
			if l := readLedger(t, admin); l.decided() < 5 || l.Queued == 0 {
				return fmt.Errorf("%+v", l)
			}
			return nil
		})
		atSig := readLedger(t, admin)
		sigAt := time.Now()
		st.Terminate("worker", 0)
		exitAt := time.Now()
		atExit := readLedger(t, admin)
		pendingAtExit := pending(t, kv)
		if pendingAtExit != 0 {
			t.Errorf("%d messages left pending (read but not acknowledged) by the worker that was told to stop", pendingAtExit)
		}
		atExit.check(t)

		pxWorker.SetLatency(0)
		restartAt := time.Now()
		st.Restart("worker", 0)
		poll(t, "every admitted attempt decided after the worker's restart", 20*time.Second, func() error {
			if l := readLedger(t, admin); l.Queued != 0 || pending(t, kv) != 0 {
				return fmt.Errorf("ledger %+v, pending %d", l, pending(t, kv))
			}
			return nil
		})
		drainedAt := time.Now()
		final := readLedgerQuery(t, admin, "?settled=true")
		final.check(t)
		if final.Won != stock || final.decided() != int64(admitted) {
			t.Errorf("after the rush: %+v; want %d won and all %d admitted attempts decided", final, stock, admitted)
		}
		t.Logf("SIGTERM to the worker in the middle of a rush (%d admitted for %d units, 10ms store latency): %d decided at the signal, %d when it exited %s later, "+
			"0 left pending (every message it had read was decided and acknowledged), ledger balanced; restarted: the %d queued decided %s after the restart, pending list empty, %d won",
			admitted, stock, atSig.decided(), atExit.decided(), exitAt.Sub(sigAt).Round(time.Millisecond), atExit.Queued,
			drainedAt.Sub(restartAt).Round(time.Millisecond), final.Won)
	})
}

// saleLedger is the admin ledger of a flash sale (shared/openapi/openapi.json).
type saleLedger struct {
	Initial        int64   `json:"initial"`
	Remaining      int64   `json:"remaining"`
	Shards         []int64 `json:"shards"`
	Reserved       int64   `json:"reserved"`
	Ordered        int64   `json:"ordered"`
	Admitted       int64   `json:"admitted"`
	Queued         int64   `json:"queued"`
	Won            int64   `json:"won"`
	Lost           int64   `json:"lost"`
	SoldOutAnswers int64   `json:"sold_out_answers"`
	// Audit is the sale recomputed from its primary records (orders, tokens, claims, shards).
	Audit struct {
		OK            bool              `json:"ok"`
		Settled       bool              `json:"settled"`
		Violations    []json.RawMessage `json:"violations"`
		Unsettled     []json.RawMessage `json:"unsettled"`
		Disagreements []json.RawMessage `json:"disagreements"`
	} `json:"audit"`
}

func (l saleLedger) decided() int64 { return l.Won + l.Lost + l.SoldOutAnswers }

// check fails the test unless initial = remaining + reserved + ordered and no shard is below 0.
func (l saleLedger) check(t testing.TB) {
	t.Helper()
	var sum int64
	for i, s := range l.Shards {
		if s < 0 {
			t.Errorf("shard %d below zero: %+v", i, l)
		}
		sum += s
	}
	if sum != l.Remaining || l.Initial != l.Remaining+l.Reserved+l.Ordered {
		t.Errorf("ledger does not balance: %+v", l)
	}
	if !l.Audit.OK {
		t.Errorf("the audit from the primary records fails: violations %s, unsettled %s (at rest: %v), counters %s",
			l.Audit.Violations, l.Audit.Unsettled, l.Audit.Settled, l.Audit.Disagreements)
	}
}

func readLedger(t testing.TB, admin *client) saleLedger {
	t.Helper()
	return readLedgerQuery(t, admin, "")
}

// readLedgerQuery reads the ledger with a query ("?settled=true" audits the sale at rest).
func readLedgerQuery(t testing.TB, admin *client, query string) saleLedger {
	t.Helper()
	var l saleLedger
	admin.must(t, "ledger", 200, "GET", "/api/v1/admin/flash-sales/drain/ledger"+query, nil).json(t, &l)
	return l
}

// pending returns the number of attempt messages delivered to a consumer of the worker's group
// and not acknowledged yet (XPENDING).
func pending(t testing.TB, c rueidis.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	arr, err := c.Do(ctx, c.B().Xpending().Key(keyspace.AttemptStream()).Group("flashsale").Build()).ToArray()
	if err != nil || len(arr) == 0 {
		t.Fatalf("XPENDING: %v %v", arr, err)
	}
	n, err := arr[0].AsInt64()
	if err != nil {
		t.Fatalf("XPENDING count: %v", err)
	}
	return n
}
