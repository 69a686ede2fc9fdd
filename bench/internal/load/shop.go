package load

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func productPath(id int) string { return fmt.Sprintf("/api/v1/products/%08d", id) }

// workerRand is a worker's own deterministic random source.
func workerRand(seed uint64, worker int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(worker)+1))
}

// loginAll logs in n shoppers named "<prefix>-u<i>" with up to conc logins in flight and returns
// their session tokens. Every login must succeed.
func loginAll(ctx context.Context, c *Client, cfg Config, row *Row, prefix string, n, conc int) ([]string, error) {
	return loginFrom(ctx, func(int64) *Client { return c }, cfg, row, prefix, n, conc)
}

// loginFrom is loginAll with shopper i logging in through client(i) (its own source address).
func loginFrom(ctx context.Context, client func(i int64) *Client, cfg Config, row *Row, prefix string, n, conc int) ([]string, error) {
	tokens := make([]string, n)
	var done atomic.Int64
	stop := cfg.Progress.Start(row.Name, int64(n), 0, &done, func() int64 { _, _, f := row.Counts(); return f })
	Drive(ctx, Bounds{Requests: int64(n), Concurrency: conc}, &done, func(_ int, i int64, _ time.Time) {
		body := []byte(`{"user":"` + prefix + "-u" + strconv.FormatInt(i, 10) + `"}`)
		client(i).Do(row, Call{Method: "POST", Path: "/api/v1/session", Body: body}, func(status int, b []byte) {
			if status != 200 {
				return
			}
			var out struct {
				Token string `json:"token"`
			}
			if json.Unmarshal(b, &out) == nil {
				tokens[i] = out.Token
			}
		})
	})
	stop()
	missing := 0
	for _, t := range tokens {
		if t == "" {
			missing++
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if missing > 0 {
		rep := row.Snapshot(0)
		return nil, fmt.Errorf("%d of %d logins failed (answers %s, errors %s)", missing, n, formatCounts(rep.Answers), formatCounts(rep.Errors))
	}
	return tokens, nil
}

func (c Config) phaseDuration(def time.Duration) time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	return def
}

func (c Config) concurrency(def int) int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return def
}

func (c Config) users(def int) int {
	if c.Users > 0 {
		return c.Users
	}
	return def
}

func (c Config) mode(defConc int) string {
	if c.Rate > 0 {
		return fmt.Sprintf("open loop at %.0f ops/s (up to %d in flight)", c.Rate, c.concurrency(defConc))
	}
	return fmt.Sprintf("closed loop, %d workers", c.concurrency(defConc))
}

// phase runs op under the config's bounds with a progress display and returns the elapsed time.
func phase(ctx context.Context, cfg Config, name string, b Bounds, rows []*Row, op Op) time.Duration {
	var done atomic.Int64
	failed := func() int64 {
		var n int64
		for _, r := range rows {
			_, _, f := r.Counts()
			n += f
		}
		return n
	}
	stop := cfg.Progress.Start(name, b.Requests, b.Duration, &done, failed)
	el, _ := Drive(ctx, b, &done, op)
	stop()
	return el
}

func addRows(rep *Report, el time.Duration, rows ...*Row) {
	for _, r := range rows {
		if n, _, _ := r.Counts(); n > 0 {
			rep.Rows = append(rep.Rows, r.Snapshot(el))
		}
	}
}

// runBrowse reads products: nine reads in ten are GET /api/v1/products/{id} over random ids,
// one in ten a catalog page, each worker following next_cursor from page to page.
func runBrowse(ctx context.Context, cfg Config, rep *Report) error {
	conc := cfg.concurrency(64)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	product := NewRow(ScenarioBrowse, "browse/product", 200)
	page := NewRow(ScenarioBrowse, "browse/page", 200)
	rands := make([]*rand.Rand, conc)
	cursors := make([]string, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "browse: %s, %d product ids, bounded by %s\n", cfg.mode(64), cfg.Products, describeBounds(b))
	el := phase(ctx, cfg, "browse", b, []*Row{product, page}, func(w int, _ int64, due time.Time) {
		r := rands[w]
		if r.IntN(10) != 0 {
			c.Do(product, Call{Method: "GET", Path: productPath(1 + r.IntN(cfg.Products)), Start: due}, nil)
			return
		}
		path := "/api/v1/products?limit=20"
		if cursors[w] != "" {
			path += "&cursor=" + url.QueryEscape(cursors[w])
		}
		c.Do(page, Call{Method: "GET", Path: path, Start: due}, func(status int, body []byte) {
			var out struct {
				Next string `json:"next_cursor"`
			}
			cursors[w] = ""
			if status == 200 && json.Unmarshal(body, &out) == nil {
				cursors[w] = out.Next
			}
		})
	})
	addRows(rep, el, product, page)
	return nil
}

func describeBounds(b Bounds) string {
	var parts []string
	if b.Requests > 0 {
		parts = append(parts, fmt.Sprintf("%d operations", b.Requests))
	}
	if b.Duration > 0 {
		parts = append(parts, b.Duration.String())
	}
	return strings.Join(parts, " or ")
}

// CartChoices is how many products each shopper picks among: a cart holds at most this many
// lines (a shopper's cart, not a warehouse: the cart service renders every line with its
// product on each change, so the cost of a PUT grows with the cart), and most PUTs after the
// first few update a line that exists.
const CartChoices = 8

// cartLine is the product a shopper puts in their cart, among CartChoices of their own.
func cartLine(r *rand.Rand, user, products int) int {
	return 1 + (user*(CartChoices+1)+r.IntN(CartChoices))%products
}

func quantityBody(q int) []byte { return []byte(`{"quantity":` + strconv.Itoa(q) + `}`) }

// shopperOf returns the shopper a worker acts for on its n-th operation: worker w owns shoppers
// w, w+conc, w+2 conc, ..., so no two workers touch one cart at once.
func shopperOf(w, n, conc, users int) int {
	per := max(1, users/conc)
	return w + conc*(n%per)
}

// runCart logs in the shoppers, then adds or updates cart lines: PUT /api/v1/cart/items/{id}
// with a quantity of 1 to 5.
func runCart(ctx context.Context, cfg Config, rep *Report, runID string) error {
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "cart: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioCart, "cart/login", 200), runID+"c", users, conc)
	if err != nil {
		return err
	}
	put := NewRow(ScenarioCart, "cart/put", 200)
	rands := make([]*rand.Rand, conc)
	ops := make([]int, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "cart: %s, %d shoppers, bounded by %s\n", cfg.mode(64), users, describeBounds(b))
	el := phase(ctx, cfg, "cart", b, []*Row{put}, func(w int, _ int64, due time.Time) {
		u := shopperOf(w, ops[w], conc, users)
		ops[w]++
		r := rands[w]
		c.Do(put, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", cartLine(r, u, cfg.Products)),
			Bearer: tokens[u], Body: quantityBody(1 + r.IntN(5)), Start: due}, nil)
	})
	addRows(rep, el, put)
	return nil
}

// runCheckout: each operation fills a shopper's cart with one to three lines and places the
// order (POST /api/v1/orders with a fresh Idempotency-Key). 409 (out of stock) is an expected
// answer; the shopper then empties those lines.
func runCheckout(ctx context.Context, cfg Config, rep *Report, runID string) error {
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "checkout: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioCheckout, "checkout/login", 200), runID+"o", users, conc)
	if err != nil {
		return err
	}
	fill := NewRow(ScenarioCheckout, "checkout/cart", 200)
	order := NewRow(ScenarioCheckout, "checkout/order", 201, 409)
	rands := make([]*rand.Rand, conc)
	ops := make([]int, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "checkout: %s, %d shoppers, bounded by %s\n", cfg.mode(64), users, describeBounds(b))
	el := phase(ctx, cfg, "checkout", b, []*Row{fill, order}, func(w int, i int64, due time.Time) {
		u := shopperOf(w, ops[w], conc, users)
		ops[w]++
		r := rands[w]
		lines := make([]int, 1+r.IntN(3))
		for k := range lines {
			lines[k] = cartLine(r, u, cfg.Products)
			c.Do(fill, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", lines[k]),
				Bearer: tokens[u], Body: quantityBody(1 + r.IntN(2)), Start: due}, nil)
			due = time.Time{}
		}
		res := c.Do(order, Call{Method: "POST", Path: "/api/v1/orders", Bearer: tokens[u],
			IdempotencyKey: runID + "-o" + strconv.FormatInt(i, 10)}, nil)
		if res.Status == 409 {
			for _, id := range lines {
				c.Do(fill, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", id), Bearer: tokens[u], Body: quantityBody(0)}, nil)
			}
		}
	})
	addRows(rep, el, fill, order)
	return nil
}

// runStress is the seed's stress test: for each level N, N shoppers log in and N concurrent
// clients (closed loop, one connection each) add to their carts through the edge for the phase
// duration; one table row per level.
func runStress(ctx context.Context, cfg Config, rep *Report, runID string) error {
	dur := cfg.phaseDuration(10 * time.Second)
	for _, n := range cfg.Levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := NewClient(cfg.Target, ClientOptions{MaxConns: n + 8, Timeout: cfg.Timeout})
		fmt.Fprintf(cfg.Out, "stress: %d concurrent clients: logging in %d shoppers\n", n, n)
		tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioStress, fmt.Sprintf("stress/%d/login", n), 200), fmt.Sprintf("%ss%d", runID, n), n, min(n, 64))
		if err != nil {
			c.Close()
			return err
		}
		row := NewRow(ScenarioStress, fmt.Sprintf("stress/%d", n), 200)
		rands := make([]*rand.Rand, n)
		for w := range rands {
			rands[w] = workerRand(cfg.Seed, w)
		}
		b := Bounds{Duration: dur, Concurrency: n}
		fmt.Fprintf(cfg.Out, "stress: %d concurrent clients adding to carts for %s\n", n, dur)
		var cpu0 time.Duration
		if cfg.CPU != nil {
			cpu0 = cfg.CPU()
		}
		el := phase(ctx, cfg, row.Name, b, []*Row{row}, func(w int, _ int64, _ time.Time) {
			r := rands[w]
			c.Do(row, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", cartLine(r, w, cfg.Products)),
				Bearer: tokens[w], Body: quantityBody(1 + r.IntN(5))}, nil)
		})
		c.Close()
		addRows(rep, el, row)
		if _, ok, _ := row.Counts(); cfg.CPU != nil && ok > 0 {
			used := cfg.CPU() - cpu0
			rep.Note(cfg.Out, "stress/%d: %.0f us of CPU per successful cart add across every process of the stack (edge, cart, catalog, store, ...; %s over %d adds)",
				n, float64(used.Microseconds())/float64(ok), used.Round(time.Millisecond), ok)
		}
	}
	return nil
}
