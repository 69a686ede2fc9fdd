package flashsale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/backend/internal/order"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// Audit is a sale's state recomputed from its primary records only: the stock shards with their
// claim markers, the result record of every ticket, the seckill tokens and the order documents.
// The counters the scripts maintain (SaleStats, ShardStats, SaleUsers, SaleInflight, the queue,
// the sold-out flag) are read only to be compared with what the records say; a counter can agree
// with itself while a unit is sold twice, so no check trusts one.
//
// The invariants, each reported by name in Violations when broken:
//
//	oversell             order documents of the sale <= initial stock
//	shard_negative       no shard below zero
//	shard_units          per shard, read atomically: initial_i == stock_i + claims r + claims o
//	unbalanced           initial == remaining + reserved + ordered + in flight, where ordered
//	                     counts order documents, reserved the won tickets holding a live token
//	                     (reserved or paid) without an order, in flight the other tickets with a
//	                     reserved claim (a step between two slots)            (still only)
//	user_limit           no user has orders above the limit; nor holds orders + live tokens
//	                     above it                                             (still only)
//	order_without_unit   every order document's unit is its ticket's claim, reserved or ordered
//	                     (a missing claim: still only)
//	won_claim            a won ticket's claim follows its token: reserved -> r, paid -> r/o,
//	                     expired -> r/x, returned -> x, deleted -> o (paid) or x (tombstone gone)
//	                     (a missing claim: still only)
//	claim_owner          an ordered claim has its order, a returned claim its expired token, a
//	                     ticket not won holds no ordered or returned claim
//	claim_two_shards     a ticket holds units (r, o, x) in one shard at most
//	token_owner          every token belongs to the won result that names it  (still only)
//	undecided_past_bound every admitted ticket is final within AuditOptions.FinalWithin
//
// Findings in Unsettled are legitimate only while a step is in flight (a worker between two
// slots, a checkout or expiry half way, a sold-out flag about to be cleared) and would be a
// lost unit or a stuck ticket if nothing were in flight; with AuditOptions.Settled they count as
// violations.
//
// The records of decided tickets live ResultTTL and expired tokens TokenGrace, so the audit
// speaks for a sale while they are kept (a day by default).
type Audit struct {
	// OK reports no violation (and, when Settled, nothing unsettled).
	OK bool `json:"ok"`
	// Still and Settled echo AuditOptions.
	Still   bool `json:"still"`
	Settled bool `json:"settled"`

	Initial   int64   `json:"initial"`
	Remaining int64   `json:"remaining"`
	Shards    []int64 `json:"shards"`
	// Ordered counts order documents of the sale; Reserved won tickets with a live token and no
	// order; InFlight other tickets holding a reserved claim.
	Ordered  int64 `json:"ordered"`
	Reserved int64 `json:"reserved"`
	InFlight int64 `json:"in_flight"`
	// Balanced: Initial == Remaining + Reserved + Ordered + InFlight.
	Balanced bool `json:"balanced"`

	// Claims counts claim markers over all shards by state (r, o, x, u, -).
	Claims map[string]int64 `json:"claims"`
	// Tickets counts result records by status; Tokens seckill tokens by state.
	Tickets map[string]int64 `json:"tickets"`
	Tokens  map[string]int64 `json:"tokens"`
	// MaxHeld is the most units one user holds (orders + live tokens).
	MaxHeld int64 `json:"max_held"`
	// Decision is how long decided tickets took from admission to decision, from their result
	// records (created_at, decided_at): the bound "every ticket final soon after admission"
	// measured without a poller's interval in it. Nil when no ticket was decided.
	Decision *DecisionTimes `json:"decision,omitempty"`

	Violations    []Finding      `json:"violations"`
	Unsettled     []Finding      `json:"unsettled"`
	Disagreements []Disagreement `json:"disagreements"`
	// Omitted counts findings and disagreements left out past MaxFindings each.
	Omitted int `json:"omitted,omitempty"`
}

// DecisionTimes summarises admission-to-decision times of the decided tickets, in milliseconds.
type DecisionTimes struct {
	Tickets int   `json:"tickets"`
	P50MS   int64 `json:"p50_ms"`
	P99MS   int64 `json:"p99_ms"`
	MaxMS   int64 `json:"max_ms"`
}

// decisionTimes computes DecisionTimes from the tickets that have both times.
func decisionTimes(tickets map[string]*auditTicket) *DecisionTimes {
	var ds []int64
	for _, t := range tickets {
		if t.status != "" && t.status != StatusQueued && t.created > 0 && t.decided >= t.created {
			ds = append(ds, t.decided-t.created)
		}
	}
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	at := func(q float64) int64 { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return &DecisionTimes{Tickets: len(ds), P50MS: at(0.5), P99MS: at(0.99), MaxMS: ds[len(ds)-1]}
}

// Finding is one broken (or, in Unsettled, not yet settled) invariant.
type Finding struct {
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

// Disagreement is a maintained counter that differs from the value the records give.
// InFlight marks counters kept in another slot than the records they count, which may trail by
// the steps in flight; the others change in the same script as their records and must agree at
// every instant.
type Disagreement struct {
	Counter  string `json:"counter"`
	Value    int64  `json:"value"`
	Records  int64  `json:"records"`
	InFlight bool   `json:"in_flight,omitempty"`
}

// Problems lists every violation, every unsettled finding when the audit was settled, and
// every counter disagreement that may not trail (all of them when settled), one line each.
// It is empty exactly when the sale is sound.
func (a Audit) Problems() []string {
	var out []string
	for _, f := range a.Violations {
		out = append(out, f.Check+": "+f.Detail)
	}
	if a.Settled {
		for _, f := range a.Unsettled {
			out = append(out, f.Check+" (at rest): "+f.Detail)
		}
	}
	for _, d := range a.Disagreements {
		if !d.InFlight || a.Settled {
			out = append(out, fmt.Sprintf("counter %s = %d, records say %d", d.Counter, d.Value, d.Records))
		}
	}
	return out
}

// AuditOptions tune Audit. The zero value audits a live sale.
type AuditOptions struct {
	// FinalWithin is the bound within which every admitted ticket must be final, counted from
	// its admission. Zero means (MaxRequeues+2) x RequeueAfter: the sweeper requeues an
	// undecided ticket after each RequeueAfter and ends it after the last requeue, plus one
	// interval of slack. Negative disables the check.
	FinalWithin time.Duration
	// Still says nothing writes to the store while the audit reads (every process paused or
	// stopped, as in the simulator), though steps may be half way: the records then form one
	// snapshot, so every check and every counter comparison is exact. Without it the audit
	// reads a live sale slot by slot, and the checks a step moving between two reads could
	// fool (marked "still only" above) report to Unsettled instead.
	Still bool
	// Settled says, beyond Still, that no step is in flight (every process idle, the sweeper
	// run since the last change): unsettled findings are then violations too.
	Settled bool
	// MaxKeys bounds the keys of the sale's slot the audit reads (SCAN). Zero means 1,000,000;
	// past it Audit fails with ErrAuditTooLarge rather than answer partly.
	MaxKeys int
	// MaxFindings bounds each list of the answer. Zero means 100.
	MaxFindings int
}

// ErrAuditTooLarge is returned when a sale has more records than AuditOptions.MaxKeys.
var ErrAuditTooLarge = errors.New("flashsale: the sale has more records than the audit may read")

const (
	auditScanCount = 1000 // SCAN / HSCAN COUNT per call
	auditBatch     = 512  // commands per pipeline
)

type auditTicket struct {
	status, user, token, reason string
	shard                       int // -1 when the result names none
	created, decided            int64
	order                       bool // its order document exists
	claims                      map[int]string
}

type auditToken struct {
	user, ticket, state string
	shard               int
	expires             int64
}

// Audit recomputes sale saleID from its primary records (see Audit). Unknown sales are
// ErrNotFound. It reads the shards first, then the sale's slot, then the orders, in the order
// the flow writes them, so a step that moves during the audit makes a record look ahead of
// another, never behind. Safe for concurrent use; it writes nothing.
func (s *Service) Audit(ctx context.Context, saleID string, o AuditOptions) (Audit, error) {
	if !product.ValidID([]byte(saleID)) {
		return Audit{}, ErrNotFound
	}
	if o.FinalWithin == 0 {
		o.FinalWithin = time.Duration(s.o.MaxRequeues+2) * s.o.RequeueAfter
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1_000_000
	}
	if o.MaxFindings <= 0 {
		o.MaxFindings = 100
	}
	o.Still = o.Still || o.Settled
	sl, err := s.loadSale(ctx, saleID)
	if err != nil {
		return Audit{}, err
	}
	r := &auditRun{s: s, sl: sl, o: o, now: s.now(),
		a: Audit{Still: o.Still, Settled: o.Settled, Initial: sl.Stock, Shards: make([]int64, sl.Shards),
			Claims: map[string]int64{}, Tickets: map[string]int64{}, Tokens: map[string]int64{}},
		tickets: map[string]*auditTicket{}, tokens: map[string]*auditToken{}}
	if err := r.readShards(ctx); err != nil {
		return Audit{}, err
	}
	if err := r.readSaleSlot(ctx); err != nil {
		return Audit{}, err
	}
	if err := r.readOrders(ctx); err != nil {
		return Audit{}, err
	}
	if err := r.readCounters(ctx); err != nil {
		return Audit{}, err
	}
	r.check()
	a := r.a
	a.Decision = decisionTimes(r.tickets)
	a.OK = len(a.Problems()) == 0
	return a, nil
}

type auditRun struct {
	s   *Service
	sl  *Sale
	o   AuditOptions
	now time.Time
	a   Audit

	shardStats [][5]int64 // per shard: stock, reserved, ordered, returned, released counters
	shardCount []map[string]int64
	tickets    map[string]*auditTicket
	tokens     map[string]*auditToken
	counters   map[string]int64 // SaleStats
	users      map[string]int64 // SaleUsers
	inflight   map[string]int64 // SaleInflight
	queue      int64
	closing    int64
	soldOut    bool
}

func (r *auditRun) ticket(id string) *auditTicket {
	t := r.tickets[id]
	if t == nil {
		t = &auditTicket{shard: -1, claims: map[int]string{}}
		r.tickets[id] = t
	}
	return t
}

func (r *auditRun) violation(check, format string, a ...any) {
	if len(r.a.Violations) >= r.o.MaxFindings {
		r.a.Omitted++
		return
	}
	r.a.Violations = append(r.a.Violations, Finding{check, fmt.Sprintf(format, a...)})
}

// strict reports a check that a step moving between two reads of a live audit could fool: a
// violation when the store is still, unsettled otherwise.
func (r *auditRun) strict(check, format string, a ...any) {
	if r.o.Still {
		r.violation(check, format, a...)
	} else {
		r.unsettled(check, format, a...)
	}
}

func (r *auditRun) unsettled(check, format string, a ...any) {
	if len(r.a.Unsettled) >= r.o.MaxFindings {
		r.a.Omitted++
		return
	}
	r.a.Unsettled = append(r.a.Unsettled, Finding{check, fmt.Sprintf(format, a...)})
}

func (r *auditRun) compare(name string, value, records int64, inFlight bool) {
	if value == records {
		return
	}
	if len(r.a.Disagreements) >= r.o.MaxFindings {
		r.a.Omitted++
		return
	}
	r.a.Disagreements = append(r.a.Disagreements, Disagreement{name, value, records, inFlight})
}

// readShards reads each shard's stock, counters and marker counts atomically (audit_shard.lua),
// then its markers ticket by ticket with bounded HSCANs.
func (r *auditRun) readShards(ctx context.Context) error {
	s, sale := r.s, r.sl.ID
	script := rueidis.NewLuaScript(lua("audit_shard.lua"))
	execs := make([]rueidis.LuaExec, r.sl.Shards)
	for i := range execs {
		execs[i] = rueidis.LuaExec{Keys: []string{keyspace.StockShard(sale, i), keyspace.ShardClaims(sale, i), keyspace.ShardStats(sale, i)}}
	}
	r.shardStats = make([][5]int64, r.sl.Shards)
	r.shardCount = make([]map[string]int64, r.sl.Shards)
	for i, res := range script.ExecMulti(ctx, s.c, execs...) {
		v, err := strs(res)
		if err != nil {
			return fmt.Errorf("flashsale: audit shard %d: %w", i, err)
		}
		if len(v) < 11 {
			return fmt.Errorf("flashsale: audit shard %d: short reply %q", i, v)
		}
		n := make([]int64, len(v))
		for j := range v {
			if n[j], err = strconv.ParseInt(v[j], 10, 64); err != nil {
				return fmt.Errorf("flashsale: shard %d holds %q", i, v[j])
			}
		}
		copy(r.shardStats[i][:], n[:5])
		r.shardCount[i] = map[string]int64{"r": n[5], "o": n[6], "x": n[7], "u": n[8], "-": n[9], "?": n[10]}
		r.a.Shards[i] = n[0]
		r.a.Remaining += n[0]
		for st, c := range r.shardCount[i] {
			if c > 0 {
				r.a.Claims[st] += c
			}
		}
	}
	read := 0
	for i := range r.sl.Shards {
		key := keyspace.ShardClaims(sale, i)
		cursor := uint64(0)
		for {
			e, err := s.c.Do(ctx, s.c.B().Hscan().Key(key).Cursor(cursor).Count(auditScanCount).Build()).AsScanEntry()
			if err != nil {
				return fmt.Errorf("flashsale: audit claims of shard %d: %w", i, err)
			}
			for j := 0; j+1 < len(e.Elements); j += 2 {
				if st := e.Elements[j+1]; st != "-" {
					r.ticket(e.Elements[j]).claims[i] = st
				}
			}
			if read += len(e.Elements) / 2; read > r.o.MaxKeys {
				return ErrAuditTooLarge
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// globEscape escapes the SCAN MATCH metacharacters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// readSaleSlot finds the sale's result records and tokens with a bounded SCAN over the sale's
// own keys, sent to the node that owns the sale's slot (on a cluster, by the hash tag), then
// reads them in pipelines.
func (r *auditRun) readSaleSlot(ctx context.Context) error {
	s, sale := r.s, r.sl.ID
	resultPrefix, tokenPrefix := keyspace.SaleResult(sale, ""), keyspace.SaleToken(sale, "")
	match := globEscape(keyspace.Sale(sale)) + ":*"
	seen := map[string]bool{}
	var resultKeys, tokenKeys []string
	cursor := uint64(0)
	for {
		cmd := s.c.B().Scan().Cursor(cursor).Match(match).Count(auditScanCount).Build().SetSlot(keyspace.Sale(sale))
		e, err := s.c.Do(ctx, cmd).AsScanEntry()
		if err != nil {
			return fmt.Errorf("flashsale: audit scan: %w", err)
		}
		for _, k := range e.Elements {
			if seen[k] { // SCAN may return a key twice
				continue
			}
			seen[k] = true
			switch {
			case strings.HasPrefix(k, resultPrefix):
				resultKeys = append(resultKeys, k)
			case strings.HasPrefix(k, tokenPrefix):
				tokenKeys = append(tokenKeys, k)
			}
		}
		if len(seen) > r.o.MaxKeys {
			return ErrAuditTooLarge
		}
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	sort.Strings(resultKeys)
	sort.Strings(tokenKeys)
	if err := r.hgetalls(ctx, resultKeys, func(key string, m map[string]string) {
		if m["status"] == "" {
			return // expired between the scan and the read
		}
		t := r.ticket(strings.TrimPrefix(key, resultPrefix))
		t.status, t.user, t.token, t.reason = m["status"], m["user"], m["token"], m["reason"]
		if sh, err := strconv.Atoi(m["shard"]); err == nil {
			t.shard = sh
		}
		t.created, _ = strconv.ParseInt(m["created_at"], 10, 64)
		t.decided, _ = strconv.ParseInt(m["decided_at"], 10, 64)
		r.a.Tickets[t.status]++
	}); err != nil {
		return err
	}
	return r.hgetalls(ctx, tokenKeys, func(key string, m map[string]string) {
		if m["state"] == "" {
			return
		}
		tk := &auditToken{user: m["user"], ticket: m["ticket"], state: m["state"], shard: -1}
		if sh, err := strconv.Atoi(m["shard"]); err == nil {
			tk.shard = sh
		}
		tk.expires, _ = strconv.ParseInt(m["expires_at"], 10, 64)
		r.tokens[strings.TrimPrefix(key, tokenPrefix)] = tk
		r.a.Tokens[tk.state]++
	})
}

func (r *auditRun) hgetalls(ctx context.Context, keys []string, fn func(key string, m map[string]string)) error {
	c := r.s.c
	for len(keys) > 0 {
		n := min(len(keys), auditBatch)
		cmds := make(rueidis.Commands, n)
		for i, k := range keys[:n] {
			cmds[i] = c.B().Hgetall().Key(k).Build()
		}
		for i, res := range c.DoMulti(ctx, cmds...) {
			m, err := res.AsStrMap()
			if err != nil {
				return fmt.Errorf("flashsale: audit read %s: %w", keys[i], err)
			}
			fn(keys[i], m)
		}
		keys = keys[n:]
	}
	return nil
}

// readOrders reads the order document of every won ticket's token: orders are written only for
// a paid token, and every token is named by the won result that issued it.
func (r *auditRun) readOrders(ctx context.Context) error {
	c, sale := r.s.c, r.sl.ID
	var ids []string
	for id, t := range r.tickets {
		if t.status == StatusWon && t.token != "" && t.user != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for len(ids) > 0 {
		n := min(len(ids), auditBatch)
		cmds := make(rueidis.Commands, n)
		for i, id := range ids[:n] {
			t := r.tickets[id]
			cmds[i] = c.B().Get().Key(keyspace.Order(t.user, OrderID(sale, t.token))).Build()
		}
		for i, res := range c.DoMulti(ctx, cmds...) {
			doc, err := res.AsBytes()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("flashsale: audit read order: %w", err)
			}
			t := r.tickets[ids[i]]
			t.order = true
			var od order.Order
			if json.Unmarshal(doc, &od) != nil || od.FlashSaleID != sale || od.UserID != t.user ||
				len(od.Items) != 1 || od.Items[0].Quantity != 1 {
				r.violation("order_document", "order %s of ticket %s is not one unit of sale %s for %s: %s",
					OrderID(sale, t.token), ids[i], sale, t.user, doc)
			}
		}
		ids = ids[n:]
	}
	return nil
}

func (r *auditRun) readCounters(ctx context.Context) error {
	c, sale := r.s.c, r.sl.ID
	res := c.DoMulti(ctx,
		c.B().Hgetall().Key(keyspace.SaleStats(sale)).Build(),
		c.B().Hgetall().Key(keyspace.SaleUsers(sale)).Build(),
		c.B().Hgetall().Key(keyspace.SaleInflight(sale)).Build(),
		c.B().Zcard().Key(keyspace.SaleQueue(sale)).Build(),
		c.B().Exists().Key(keyspace.SoldOut(sale)).Build(),
		c.B().Zcard().Key(keyspace.SaleClosing(sale)).Build())
	var err [6]error
	r.counters, err[0] = res[0].AsIntMap()
	r.users, err[1] = res[1].AsIntMap()
	r.inflight, err[2] = res[2].AsIntMap()
	r.queue, err[3] = res[3].AsInt64()
	var flag int64
	flag, err[4] = res[4].AsInt64()
	r.soldOut = flag == 1
	r.closing, err[5] = res[5].AsInt64()
	if e := errors.Join(err[:]...); e != nil {
		return fmt.Errorf("flashsale: audit read counters: %w", e)
	}
	return nil
}

// check derives the invariants and the counter comparisons from what was read.
func (r *auditRun) check() {
	sl, a := r.sl, &r.a
	parts := splitStock(sl.Stock, sl.Shards)
	var reserved, ordered, returned, released int64
	for i, st := range r.shardStats {
		n := r.shardCount[i]
		if st[0] < 0 {
			r.violation("shard_negative", "shard %d holds %d", i, st[0])
		}
		if parts[i] != st[0]+n["r"]+n["o"] {
			r.violation("shard_units", "shard %d: initial %d != stock %d + reserved claims %d + ordered claims %d",
				i, parts[i], st[0], n["r"], n["o"])
		}
		if n["?"] > 0 {
			r.violation("claim_owner", "shard %d has %d claims in an unknown state", i, n["?"])
		}
		name := "shard[" + strconv.Itoa(i) + "]."
		r.compare(name+"reserved", st[1], n["r"], false)
		r.compare(name+"ordered", st[2], n["o"], false)
		r.compare(name+"returned", st[3], n["x"], false)
		r.compare(name+"released", st[4], n["u"], false)
		reserved, ordered, returned, released = reserved+st[1], ordered+st[2], returned+st[3], released+st[4]
	}

	ids := make([]string, 0, len(r.tickets))
	for id := range r.tickets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	held := map[string]int64{}   // user -> orders + live tokens
	orders := map[string]int64{} // user -> order documents
	queuedOf := map[string]int64{}
	var paid, finished, expired, expiredReturned, strandedUnclaimed int64
	for _, id := range ids {
		t := r.tickets[id]
		var holding []int // shards where the ticket holds or held a unit
		for _, sh := range sortedShards(t.claims) {
			if st := t.claims[sh]; st == "r" || st == "o" || st == "x" {
				holding = append(holding, sh)
			}
		}
		if len(holding) > 1 {
			r.violation("claim_two_shards", "ticket %s holds units in shards %v: %v", id, holding, t.claims)
		}
		switch t.status {
		case "":
			for _, sh := range holding {
				if t.claims[sh] == "r" {
					a.InFlight++
					r.unsettled("claim_of_decided_ticket", "ticket %s has no result record but a reserved claim in shard %d", id, sh)
				}
			}
			continue
		case StatusQueued:
			queuedOf[t.user]++
			if r.o.FinalWithin > 0 && t.created > 0 && r.now.Sub(time.UnixMilli(t.created)) > r.o.FinalWithin {
				r.violation("undecided_past_bound", "ticket %s of %s undecided %v after admission (bound %v)",
					id, t.user, r.now.Sub(time.UnixMilli(t.created)).Round(time.Millisecond), r.o.FinalWithin)
			}
			r.unsettled("ticket_queued", "ticket %s of %s is not decided", id, t.user)
			for _, sh := range holding {
				if st := t.claims[sh]; st == "r" {
					a.InFlight++
				} else {
					r.violation("claim_owner", "undecided ticket %s has claim %q in shard %d", id, st, sh)
				}
			}
			continue
		case StatusWon:
		default: // lost, sold_out
			if t.status == StatusLost && t.reason == OutcomeStranded && !slices.Contains(slices.Collect(maps.Values(t.claims)), "u") && len(holding) == 0 {
				strandedUnclaimed++
			}
			for _, sh := range holding {
				if st := t.claims[sh]; st == "r" {
					a.InFlight++
					r.unsettled("claim_of_decided_ticket", "ticket %s ended %s but holds a reserved claim in shard %d (a unit nobody will give back unless a release is in flight)", id, t.status, sh)
				} else {
					r.violation("claim_owner", "ticket %s ended %s but its claim in shard %d is %q", id, t.status, sh, st)
				}
			}
			continue
		}

		// A won ticket: its unit is the claim in t.shard, its token t.token.
		claim := t.claims[t.shard]
		if claim == "" {
			claim = "none"
		}
		for _, sh := range holding {
			if sh != t.shard {
				r.violation("claim_owner", "won ticket %s (shard %d) also holds claim %q in shard %d", id, t.shard, t.claims[sh], sh)
			}
		}
		tk := r.tokens[t.token]
		state := "deleted"
		if tk != nil {
			state = tk.state
			if tk.ticket != id || tk.user != t.user || tk.shard != t.shard {
				r.strict("token_owner", "token %s names ticket %s of %s in shard %d; the result names ticket %s of %s in shard %d",
					t.token, tk.ticket, tk.user, tk.shard, id, t.user, t.shard)
			}
		}
		if t.order {
			a.Ordered++
			orders[t.user]++
			held[t.user]++
			switch claim {
			case "o":
			case "r":
				r.unsettled("checkout_unfinished", "ticket %s: order written, claim in shard %d still reserved", id, t.shard)
			case "none":
				r.strict("order_without_unit", "ticket %s has an order but no claim in shard %d", id, t.shard)
			default:
				r.violation("order_without_unit", "ticket %s has an order but its claim in shard %d is %q (the unit went back to the shard: sold twice)", id, t.shard, claim)
			}
		}
		live := state == "reserved" || state == "paid"
		if live && !t.order {
			a.Reserved++
			held[t.user]++
		}
		switch {
		case state == "paid":
			paid++
		case state == "deleted" && claim == "o":
			paid++
			finished++
		case state == "expired":
			expired++
		case state == "returned" || state == "deleted" && claim == "x":
			expired++
			expiredReturned++
		}
		// The claims were read before the tokens, so a claim may trail its token by one step
		// (r while the token is already returned or deleted); any other pair is wrong.
		ok := map[string]string{"reserved": "r", "paid": "ro", "expired": "rx", "returned": "xr", "deleted": "oxr"}[state]
		switch {
		case claim == "none":
			r.strict("won_claim", "won ticket %s: token %s is %s but it has no claim in shard %d", id, t.token, state, t.shard)
		case ok == "" || len(claim) != 1 || !strings.Contains(ok, claim):
			r.violation("won_claim", "won ticket %s: token %s is %s but its claim in shard %d is %q", id, t.token, state, t.shard, claim)
		case claim == "o" && !t.order:
			r.violation("claim_owner", "won ticket %s: claim in shard %d ordered (token %s) but no order document", id, t.shard, state)
		case claim == "r" && !live && !t.order:
			a.InFlight++
			r.unsettled("expiry_unfinished", "won ticket %s: token %s is %s, its claim in shard %d still reserved", id, t.token, state, t.shard)
		}
		switch {
		case state == "paid":
			r.unsettled("checkout_unfinished", "ticket %s: token %s paid, order written %v, claim %q", id, t.token, t.order, claim)
		case state == "expired":
			r.unsettled("expiry_unfinished", "ticket %s: token %s expired, not yet returned", id, t.token)
		case state == "reserved" && tk != nil && tk.expires <= r.now.UnixMilli():
			r.unsettled("reservation_overdue", "ticket %s: token %s reserved past its deadline", id, t.token)
		}
	}
	// Claims of a returned or ordered state whose ticket is not a won one were handled above;
	// tokens that no won result names:
	named := map[string]bool{}
	for _, t := range r.tickets {
		if t.status == StatusWon {
			named[t.token] = true
		}
	}
	for _, tok := range sortedKeys(r.tokens) {
		if !named[tok] {
			tk := r.tokens[tok]
			r.strict("token_owner", "token %s (%s, ticket %s of %s) is named by no won result", tok, tk.state, tk.ticket, tk.user)
		}
	}

	if a.Ordered > a.Initial {
		r.violation("oversell", "%d order documents for %d units", a.Ordered, a.Initial)
	}
	a.Balanced = a.Initial == a.Remaining+a.Reserved+a.Ordered+a.InFlight
	if !a.Balanced {
		r.strict("unbalanced", "initial %d != remaining %d + reserved %d + ordered %d + in flight %d",
			a.Initial, a.Remaining, a.Reserved, a.Ordered, a.InFlight)
	}
	for _, u := range sortedKeys(held) {
		a.MaxHeld = max(a.MaxHeld, held[u])
		switch {
		case orders[u] > sl.PerUserLimit:
			r.violation("user_limit", "user %s has %d orders, limit %d", u, orders[u], sl.PerUserLimit)
		case held[u] > sl.PerUserLimit:
			r.strict("user_limit", "user %s holds %d units (%d ordered), limit %d", u, held[u], orders[u], sl.PerUserLimit)
		}
	}
	if r.closing > 0 {
		r.unsettled("closing", "%d tickets decided without a win still have shard claims to close", r.closing)
	}
	if r.soldOut && a.Remaining > 0 {
		r.unsettled("sold_out_flag", "the sold-out flag is set while the shards hold %d units", a.Remaining)
	}

	// The counters, by name, against the records.
	r.compare("reserved", reserved, a.Claims["r"], false)
	r.compare("ordered", ordered, a.Claims["o"], false)
	r.compare("returned", returned, a.Claims["x"], false)
	r.compare("released", released, a.Claims["u"], false)
	r.compare("ordered (order documents)", ordered, a.Ordered, true)
	var results int64
	for _, n := range a.Tickets {
		results += n
	}
	// The sale slot's counters change in the same scripts as its records, but a live audit
	// reads the records key by key, so they agree exactly only when the store is still.
	live := !r.o.Still
	stat := func(k string) int64 { return r.counters[k] }
	r.compare("stats.admitted", stat("admitted"), results, live)
	r.compare("stats.won", stat("won"), a.Tickets[StatusWon], live)
	r.compare("stats.lost", stat("lost"), a.Tickets[StatusLost], live)
	r.compare("stats.sold_out", stat("sold_out"), a.Tickets[StatusSoldOut], live)
	r.compare("stats.paid", stat("paid"), paid, live)
	r.compare("stats.ordered", stat("ordered"), finished, live)
	r.compare("stats.expired", stat("expired"), expired, live)
	r.compare("stats.expired_returned", stat("expired_returned"), expiredReturned, live)
	r.compare("queue", r.queue, a.Tickets[StatusQueued], live)
	// The return epoch counts units put back into a shard, each once its give-back is accounted
	// in the sale's slot (an expiry's token_finish, a close's claims_closed): another slot.
	r.compare("stats.epoch", stat("epoch"), expiredReturned+a.Claims["u"], true)
	r.compare("stats.stranded_unclaimed", stat("stranded_unclaimed"), strandedUnclaimed, true)
	for _, u := range unionKeys(r.users, held) {
		// held counts orders and live tokens; the users hash counts the same units from the
		// sale's slot (a paid token is held until expiry could no longer take it).
		r.compare("users["+u+"]", r.users[u], held[u], live)
	}
	for _, u := range unionKeys(r.inflight, queuedOf) {
		r.compare("inflight["+u+"]", r.inflight[u], queuedOf[u], live)
	}
	if r.soldOut && a.Remaining > 0 {
		r.compare("sold_out_flag", 1, 0, true)
	}
}

func sortedShards(m map[int]string) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func unionKeys(a, b map[string]int64) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return sortedKeys(m)
}
