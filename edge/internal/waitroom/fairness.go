package waitroom

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/httpcache"
	"flashedge/shared/keyspace"
)

// Rule states the pre-queue order for the fairness answer (the one home of its wording is
// shared/waitroom.Order's documentation).
const Rule = "pre_queue lists the users who joined before the start in admission order: ascending " +
	"HMAC-SHA256(key = the seed's bytes, message = the user id) compared as big-endian numbers; " +
	"position = index + 1. commitment = hex SHA-256 of the seed's bytes."

type fairness struct {
	Commitment *string  `json:"commitment"`
	Seed       *string  `json:"seed"`
	PreQueue   []string `json:"pre_queue"`
	Rule       string   `json:"rule"`
}

// Cache-Control of fairness answers: the body changes at the opening (the commitment) and at the
// shuffle (seed and order), and never after the shuffle.
var (
	cacheFairnessOpen  = []byte("no-cache")
	cacheFairnessFinal = []byte("public, max-age=3600")
)

// fairEntry is a shuffled sale's fairness answer, rendered once per edge: the pre-queue may hold
// millions of users, and a crowd asking at the shuffle must cost one store read and one
// rendering, not one each.
type fairEntry struct {
	once sync.Once
	rep  atomic.Pointer[httpcache.Rep]
	err  error
}

// fairnessRoute answers the commitment (once the pre-queue is open), the seed and the shuffled
// pre-queue (once the shuffle is done). A shuffled sale's answer never changes: it is rendered
// once per edge (compressed, with an ETag) and kept.
func (r *Room) fairnessRoute(ctx *fasthttp.RequestCtx) {
	if !r.allowIP(ctx) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	r.mu.Lock()
	e := r.fairness[id]
	r.mu.Unlock()
	if e != nil {
		if rep := e.rep.Load(); rep != nil {
			httpcache.Serve(ctx, rep, "application/json", cacheFairnessFinal)
			return
		}
	}
	s := r.sale(ctx)
	if s == nil {
		return
	}
	if !s.shuffled {
		f := fairness{Rule: Rule}
		if r.o.Now().UnixMilli() >= s.cfg.OpensAt.UnixMilli() && s.commitment != "" {
			f.Commitment = &s.commitment
		}
		body, _ := json.Marshal(f)
		httpcache.Serve(ctx, httpcache.New(body, false), "application/json", cacheFairnessOpen)
		return
	}
	r.mu.Lock()
	if e = r.fairness[id]; e == nil {
		if len(r.fairness) >= 64 {
			clear(r.fairness)
		}
		e = &fairEntry{}
		r.fairness[id] = e
	}
	r.mu.Unlock()
	e.once.Do(func() {
		var rep *httpcache.Rep
		if rep, e.err = r.renderShuffled(s); e.err == nil {
			e.rep.Store(rep)
		}
	})
	if e.err != nil {
		r.mu.Lock()
		if r.fairness[id] == e {
			delete(r.fairness, id) // the next request tries again
		}
		r.mu.Unlock()
		r.storeDown(ctx, e.err)
		return
	}
	httpcache.Serve(ctx, e.rep.Load(), "application/json", cacheFairnessFinal)
}

// renderShuffled renders a shuffled sale's fairness answer: commitment, seed and the pre-queue.
func (r *Room) renderShuffled(s *sale) (*httpcache.Rep, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*r.o.StoreTimeout)
	defer cancel()
	order, err := r.kv.Do(ctx, r.kv.B().Get().Key(keyspace.WaitRoomOrder(s.id)).Build()).ToString()
	if err != nil {
		return nil, err
	}
	f := fairness{Rule: Rule, Seed: &s.seed, PreQueue: []string{}}
	if s.commitment != "" {
		f.Commitment = &s.commitment
	}
	if order != "" {
		f.PreQueue = strings.Split(order, "\n")
	}
	body, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return httpcache.New(body, true), nil
}
