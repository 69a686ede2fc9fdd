package waitroom

import (
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"

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

// fairnessRoute answers the commitment (once the pre-queue is open), the seed and the shuffled
// pre-queue (once the shuffle is done). A shuffled sale's body never changes; it is rendered once
// per edge and kept.
func (r *Room) fairnessRoute(ctx *fasthttp.RequestCtx) {
	if !r.allowIP(ctx) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	r.mu.Lock()
	body := r.fairness[id]
	r.mu.Unlock()
	if body != nil {
		writeFairness(ctx, body)
		return
	}
	s := r.sale(ctx)
	if s == nil {
		return
	}
	f := fairness{Rule: Rule}
	if r.o.Now().UnixMilli() >= s.cfg.OpensAt.UnixMilli() && s.commitment != "" {
		f.Commitment = &s.commitment
	}
	if s.shuffled {
		sctx, cancel := r.storeCtx()
		defer cancel()
		order, err := r.kv.Do(sctx, r.kv.B().Get().Key(keyspace.WaitRoomOrder(s.id)).Build()).ToString()
		if err != nil {
			r.storeDown(ctx, err)
			return
		}
		f.Seed = &s.seed
		f.PreQueue = []string{}
		if order != "" {
			f.PreQueue = strings.Split(order, "\n")
		}
	}
	body, _ = json.Marshal(f)
	if s.shuffled {
		r.mu.Lock()
		if len(r.fairness) >= 64 {
			clear(r.fairness)
		}
		r.fairness[id] = body
		r.mu.Unlock()
	}
	writeFairness(ctx, body)
}

func writeFairness(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}
