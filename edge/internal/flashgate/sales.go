package flashgate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/edge/internal/invcache"
	"flashedge/shared/keyspace"
	"flashedge/shared/waitroom"
)

// sale is one sale as the edge sees it; immutable once built.
type sale struct {
	exists         bool
	id             string
	startMs, endMs int64
	soldOut        bool
	// head and tail of the public JSON around the state, so rendering is two appends.
	head, tail []byte
}

// States of a sale.
const (
	StateUpcoming = "upcoming"
	StateLive     = "live"
	StateSoldOut  = "sold_out"
	StateEnded    = "ended"
)

func (s *sale) state(nowMs int64) string {
	switch {
	case nowMs >= s.endMs:
		return StateEnded
	case nowMs < s.startMs:
		return StateUpcoming
	case s.soldOut:
		return StateSoldOut
	default:
		return StateLive
	}
}

func (s *sale) appendJSON(dst []byte, nowMs int64) []byte {
	dst = append(dst, s.head...)
	dst = append(dst, s.state(nowMs)...)
	return append(dst, s.tail...)
}

// sales is the edge's copy of the sales it was asked about (unknown ids included, so a
// repeated guess costs no store read), kept coherent by invalidation.
type sales struct {
	kv        rueidis.Client
	cache     *invcache.Cache[*sale]
	clientTTL time.Duration
	timeout   time.Duration
}

// held returns the sale (known, or known to be unknown) when it is in memory, else nil.
func (ss *sales) held(id []byte) *sale {
	s, _ := ss.cache.Get(id)
	return s
}

// lookup returns the sale with id (exists false when there is none). id is not retained.
func (ss *sales) lookup(id []byte) (*sale, error) {
	return ss.cache.Load(id, ss.fetch)
}

// invalidate drops the sale a changed store key derives from and reports whether key was one.
func (ss *sales) invalidate(key string) bool {
	id, ok := saleIDOfKey(key)
	if ok {
		ss.cache.Delete(id)
	}
	return ok
}

// saleIDOfKey extracts the id from keyspace.Sale(id) and keyspace.SoldOut(id).
func saleIDOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "fe:sale:{s:")
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '}')
	if i <= 0 || (rest[i+1:] != "" && rest[i+1:] != ":soldout") {
		return "", false
	}
	return rest[:i], true
}

func (ss *sales) fetch(id string) (*sale, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ss.timeout)
	defer cancel()
	res := ss.kv.DoMultiCache(ctx,
		rueidis.CT(ss.kv.B().Hgetall().Key(keyspace.Sale(id)).Cache(), ss.clientTTL),
		rueidis.CT(ss.kv.B().Get().Key(keyspace.SoldOut(id)).Cache(), ss.clientTTL),
	)
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("flashgate: read sale %s: %w", id, err)
	}
	_, ferr := res[1].ToString()
	if ferr != nil && !rueidis.IsRedisNil(ferr) {
		return nil, fmt.Errorf("flashgate: read sold-out flag of %s: %w", id, ferr)
	}
	s := &sale{id: id, soldOut: ferr == nil}
	if m["id"] == "" {
		return s, nil
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	s.exists = true
	s.startMs, s.endMs = num("starts_at_ms"), num("ends_at_ms")
	// The public shape is the order service's: the same fields, in the same order.
	var head bytes.Buffer
	enc := json.NewEncoder(&head)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		ID           string `json:"id"`
		ProductID    string `json:"product_id"`
		ProductName  string `json:"product_name"`
		Price        int64  `json:"price"`
		Stock        int64  `json:"stock"`
		StartsAt     string `json:"starts_at"`
		EndsAt       string `json:"ends_at"`
		PerUserLimit int64  `json:"per_user_limit"`
	}{m["id"], m["product_id"], m["product_name"], num("price"), num("stock"),
		time.UnixMilli(s.startMs).UTC().Format(time.RFC3339), time.UnixMilli(s.endMs).UTC().Format(time.RFC3339), num("per_user_limit")})
	b := bytes.TrimRight(head.Bytes(), "\n")
	s.head = append(append([]byte{}, b[:len(b)-1]...), `,"state":"`...)
	s.tail = fmt.Appendf(nil, `","shards":%d,"difficulty":%d`, num("shards"), num("difficulty"))
	if wr := waitroom.FromHash(m).Render(); wr != nil {
		j, _ := json.Marshal(wr)
		s.tail = append(append(s.tail, `,"waiting_room":`...), j...)
	}
	s.tail = append(s.tail, '}')
	return s, nil
}
