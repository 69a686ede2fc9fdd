// Package load is flashedge's load generator: open- and closed-loop drivers bounded by count and
// time, an HdrHistogram-style latency recorder, the shop scenarios (browse, cart, checkout, the
// seed's stress levels) and the flash-sale rush with its invariant checks, and the table, JSON
// and SVG views of a run. It talks to the edge over HTTP on loopback only (ParseTarget).
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioBrowse   = "browse"
	ScenarioCart     = "cart"
	ScenarioCheckout = "checkout"
	ScenarioRush     = "rush"
	ScenarioStress   = "stress"
	ScenarioWaitRoom = "waitroom"
)

// Scenarios lists every scenario.
var Scenarios = []string{ScenarioBrowse, ScenarioCart, ScenarioCheckout, ScenarioRush, ScenarioStress, ScenarioWaitRoom, ScenarioOverload, ScenarioAdmit, ScenarioSlow}

// Config is one run. Zero values take the defaults named on each field.
type Config struct {
	// Target is the edge. Required.
	Target Target
	// CPU, when set, returns the CPU time the servers under load (every process of a spawned
	// stack, the store included) have used so far; the stress rows then report CPU per operation.
	CPU func() time.Duration
	// CPUByProcess, when set, returns the same by process name ("edge", "order", "store", ...);
	// the admit scenario reports CPU per admission by process from it.
	CPUByProcess func() map[string]time.Duration
	// ServerCPU, when set, pins the servers the load tool starts itself (the admit scenario's
	// nginx peer) to this CPU, like the spawned stack.
	ServerCPU string
	// Pids, when set, returns the process id of every server under load by service name
	// ("edge", "cart", ..., "store"): the overload scenario pins them to CPUs and reads the
	// edge's memory.
	Pids func() map[string]int
	// AdminToken is the edge's admin bearer token (the rush creates a sale and reads its ledger).
	AdminToken string
	// Scenarios to run, in order. Empty means browse.
	Scenarios []string

	// Requests caps the operations of browse, cart and checkout. Zero means no cap.
	Requests int64
	// Duration caps each phase: browse, cart and checkout (zero: 10s), each stress level (zero:
	// 10s) and the rush's attempts (zero: 5m).
	Duration time.Duration
	// Concurrency is the closed-loop worker count, and the open-loop cap on operations in
	// flight. Zero means 64 (rush: 256).
	Concurrency int
	// Rate, above zero, switches browse, cart, checkout and the rush to open loop at this many
	// operations per second.
	Rate float64
	// Timeout bounds every request. Zero means 10s.
	Timeout time.Duration
	// OverloadEdgeWithTool makes the overload scenario pin the edge to the load generator's CPU
	// and leave the backends and the store the other one, instead of the generator alone on
	// its CPU and the whole stack on the other.
	OverloadEdgeWithTool bool
	// OverloadEdgeAlone makes the overload scenario give the edge the stack's CPU to itself and
	// move the backends and the store to the load generator's (capped as OverloadBackendCPU
	// says): the edge as on machines of its own, in front of backends elsewhere.
	OverloadEdgeAlone bool
	// OverloadBackendCPU, when above 0, caps the spawned store and backend services together at
	// that fraction of one CPU (a cgroup CPU quota) in the overload scenario, so that the
	// backends, not the edge or the load generator, bound the capacity: the deployment the
	// scenario stands for, with edges on machines of their own. Where no cgroup can be made the
	// scenario says so and runs without the cap.
	OverloadBackendCPU float64
	// SlowSync makes the slow scenario open its slowloris connections all at once (they then
	// time out and reconnect together every read timeout) instead of evenly over one.
	SlowSync bool
	// Users is how many shoppers log in. Zero means 1,000 (rush: 20,000). Cart and checkout
	// need at least Concurrency (each worker owns its shoppers); fewer are raised to it.
	Users int
	// Products is how many catalog ids (00000001 up) browse, cart and checkout pick from.
	// Zero means 1,200, the demo seed of `make run`.
	Products int
	// Seed seeds the random choices. Zero means 1.
	Seed uint64

	// Attempts is the rush's total attempts, spread over the users. Zero means 100,000.
	Attempts int64
	// Stock, Shards, Limit and Difficulty define the rush's sale. Zero means 1,000 units,
	// 8 shards, 1 unit per user and 8 bits of proof of work (negative: 0 bits).
	Stock      int64
	Shards     int
	Limit      int
	Difficulty int
	// SaleProduct is the product on sale. Empty means "00000001".
	SaleProduct string
	// SoldOutDuration is the closed-loop burst of attempts after the sell-out. Zero means 3s;
	// negative skips it.
	SoldOutDuration time.Duration
	// Bots, above zero, makes the rush two rounds: a baseline without bots, then the same rush
	// with this many bot addresses (two bot users each) far above the edge's limits.
	Bots int
	// SolveAhead makes every rush shopper fetch and solve one challenge before the attempts
	// begin, for their first attempt (see RushReport.AttemptP99US).
	SolveAhead bool
	// TicketTimeout is how long an admitted ticket may stay undecided. Zero means 30s.
	TicketTimeout time.Duration

	// StoreAddr is the store's address (host:port), for the waiting-room scenario's store
	// command counts (INFO commandstats). Empty skips them.
	StoreAddr string
	// EdgeOpsAddr and OrderAddr (host:port) are the edge's operations listener and the order
	// service: the rush reads their /metrics around its attempt phase for the servers' own view
	// of it (ServerView). Empty skips it.
	EdgeOpsAddr string
	OrderAddr   string
	// Admit is the waiting room's admit_per_second. Zero means 250.
	Admit int

	// Levels are the stress scenario's concurrent clients. Empty means 100, 500, 1000.
	Levels []int

	// Progress shows progress; nil shows none.
	Progress *Progress
	// Out receives the human-readable account of the run. Nil means io.Discard.
	Out io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Target.Addr == "" {
		return c, errors.New("load: Config.Target is required")
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{ScenarioBrowse}
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return c, fmt.Errorf("load: unknown scenario %q (want one of %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Products <= 0 {
		c.Products = 1200
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Attempts <= 0 {
		c.Attempts = 100_000
	}
	if c.Stock <= 0 {
		c.Stock = 1000
	}
	if c.Shards <= 0 {
		c.Shards = 8
	}
	if c.Limit <= 0 {
		c.Limit = 1
	}
	switch {
	case c.Difficulty == 0:
		c.Difficulty = 8
	case c.Difficulty < 0:
		c.Difficulty = 0
	}
	if c.SaleProduct == "" {
		c.SaleProduct = "00000001"
	}
	if c.SoldOutDuration == 0 {
		c.SoldOutDuration = 3 * time.Second
	}
	if c.TicketTimeout <= 0 {
		c.TicketTimeout = 30 * time.Second
	}
	if len(c.Levels) == 0 {
		c.Levels = []int{100, 500, 1000}
	}
	if c.Rate < 0 {
		return c, errors.New("load: Rate must be >= 0")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return c, nil
}

// NewReport returns a report for a run started now.
func NewReport(command, target string, spawned bool) *Report {
	return &Report{
		Tool: "flashedge load", StartedAt: time.Now().UTC(), Command: command, Target: target, Spawned: spawned,
		Machine: Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()},
		OK:      true,
	}
}

// Note adds a note to the report and prints it.
func (r *Report) Note(out io.Writer, format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.Notes = append(r.Notes, s)
	fmt.Fprintln(out, "note:", s)
}

// Fail records a failure: the run ends non-zero.
func (r *Report) Fail(format string, a ...any) {
	r.OK = false
	r.Failures = append(r.Failures, fmt.Sprintf(format, a...))
}

// Run runs the scenarios of cfg in turn against cfg.Target and adds their rows, the rush report
// and any failures to rep. It returns an error when a scenario could not run at all (the target
// refused to log in, the sale could not be created...); failed invariants are in rep.Failures.
func Run(ctx context.Context, cfg Config, rep *Report) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := probe(cfg); err != nil {
		return err
	}
	runID := "ld" + randomHex(4)
	for _, sc := range cfg.Scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(cfg.Out, "\n== scenario %s ==\n", sc)
		var err error
		switch sc {
		case ScenarioBrowse:
			err = runBrowse(ctx, cfg, rep)
		case ScenarioCart:
			err = runCart(ctx, cfg, rep, runID)
		case ScenarioCheckout:
			err = runCheckout(ctx, cfg, rep, runID)
		case ScenarioStress:
			err = runStress(ctx, cfg, rep, runID)
		case ScenarioOverload:
			err = runOverload(ctx, cfg, rep, runID)
		case ScenarioSlow:
			err = runSlow(ctx, cfg, rep)
		case ScenarioRush:
			err = runRushRounds(ctx, cfg, rep, runID)
		case ScenarioWaitRoom:
			err = runWaitRoom(ctx, cfg, rep, runID)
		case ScenarioAdmit:
			err = runAdmit(ctx, cfg, rep, runID)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc, err)
		}
	}
	return nil
}

// probe checks the target answers /health before any load is generated.
func probe(cfg Config) error {
	c := NewClient(cfg.Target, ClientOptions{MaxConns: 1, Timeout: 5 * time.Second})
	defer c.Close()
	res := c.Do(nil, Call{Method: "GET", Path: "/health"}, nil)
	if res.Err != nil || res.Status != 200 {
		why := fmt.Sprint(res.Err)
		if res.Err == nil {
			why = fmt.Sprintf("status %d", res.Status)
		}
		return fmt.Errorf("%s/health does not answer 200 (%s): start the stack (make run) or use -spawn", cfg.Target.Base, why)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
