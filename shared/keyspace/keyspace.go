// Package keyspace holds every store key format of flashedge in one place.
//
// Hash tags ({...}) decide the cluster slot: keys that one Lua call touches share a tag, keys
// that must spread (stock shards, carts of different users) carry different tags. All keys
// start with "fe:" so the project can share a store with others. Functions are pure and safe
// for concurrent use.
package keyspace

import (
	"strconv"
	"strings"
)

const (
	prefix        = "fe:"
	productPrefix = prefix + "product:{p:"
	salePrefix    = prefix + "sale:{s:"
)

// Product is the JSON document of a product (without stock): a string key.
func Product(id string) string { return productPrefix + id + "}" }

// ProductStock is the normal-checkout inventory of a product: an integer key in the
// product's slot, so one Lua call can read or change both.
func ProductStock(id string) string { return productPrefix + id + "}:stock" }

// ProductIndex is the sorted set of all product ids (score 0, ordered by member) that
// catalog pages are read from.
func ProductIndex() string { return prefix + "products" }

// ProductSeq is the counter that new product ids are drawn from.
func ProductSeq() string { return prefix + "seq:product" }

// Cart is a user's cart: a hash product id -> quantity, tagged by user so carts spread.
func Cart(user string) string { return prefix + "cart:{u:" + user + "}" }

// Order is one order document (JSON string), in its owner's slot.
func Order(user, id string) string { return prefix + "order:{u:" + user + "}:" + id }

// UserOrders is the sorted set of a user's order ids scored by creation time (unix ms).
func UserOrders(user string) string { return prefix + "orders:{u:" + user + "}" }

// OrderSeq is the counter order ids are drawn from.
func OrderSeq() string { return prefix + "seq:order" }

// Idempotency is the record of a request made with an Idempotency-Key, per user and scope
// (for example "checkout" or "attempt:<sale>").
func Idempotency(user, scope, key string) string {
	return prefix + "idem:{u:" + user + "}:" + scope + ":" + key
}

// Sale is a flash sale's definition: a hash.
func Sale(sale string) string { return salePrefix + sale + "}" }

// Sales is the sorted set of sale ids scored by start time (unix ms).
func Sales() string { return prefix + "sales" }

// LiveSales is the sorted set of sales the sweeper still has work in, scored by end time (unix
// ms): added at creation, removed by the sweep once a sale has ended with nothing left to sweep.
func LiveSales() string { return prefix + "sales:live" }

// LiveSalesIndexed marks a store whose sales created before LiveSales existed were put into it.
func LiveSalesIndexed() string { return prefix + "sales:live:indexed" }

// SaleShards is the list of a sale's stock shard keys (the sale-to-shards map).
func SaleShards(sale string) string { return salePrefix + sale + "}:shards" }

// StockShard is shard i of a sale's stock, each with its own hash tag so a cluster spreads them.
func StockShard(sale string, i int) string {
	return prefix + "salestock:{s:" + sale + ":" + strconv.Itoa(i) + "}"
}

// SoldOut is the flag set when every stock shard of a sale is empty; edges cache it.
func SoldOut(sale string) string { return salePrefix + sale + "}:soldout" }

// SaleStats is a hash of a sale's ledger counters (admitted, ordered, expired_returned, ...).
func SaleStats(sale string) string { return salePrefix + sale + "}:stats" }

// SaleUsers is a hash user -> units won in a sale (the per-user limit).
func SaleUsers(sale string) string { return salePrefix + sale + "}:users" }

// SaleResult is the result record of one attempt (ticket) of a sale: a hash.
func SaleResult(sale, ticket string) string {
	return salePrefix + sale + "}:result:" + ticket
}

// SaleToken is a seckill token: a hash bound to user and sale, with a TTL.
func SaleToken(sale, token string) string { return salePrefix + sale + "}:token:" + token }

// SaleDeadlines is the sorted set of reservations (token) scored by expiry (unix ms) that the
// sweeper works from.
func SaleDeadlines(sale string) string { return salePrefix + sale + "}:deadlines" }

// AttemptStream is the stream of admitted flash-sale attempts consumed by the workers.
func AttemptStream() string { return prefix + "stream:attempts" }

// Blacklist marks a client (ip or user) refused until the key expires.
func Blacklist(kind, subject string) string { return prefix + "bl:" + kind + ":{" + subject + "}" }

// CatalogSeedLock is held (SET NX with a TTL) by the one catalog process that seeds the demo
// catalog, so replicas starting together do not seed it twice.
func CatalogSeedLock() string { return prefix + "lock:catalog-seed" }

// SaleClaim holds the fingerprint of the create request that claimed a sale id, so an interrupted
// create can be retried with the same body and a different body is refused.
func SaleClaim(sale string) string { return salePrefix + sale + "}:claim" }

// SaleChallenge marks a flash-sale challenge id (shared/challenge) spent, until the id expires; in
// the sale's slot so the admission script spends it in the same call as the gate.
func SaleChallenge(sale, id string) string {
	return salePrefix + sale + "}:challenge:" + id
}

// SaleIdempotency is the first answer to an attempt made with an Idempotency-Key, per user and sale,
// in the sale's slot so the admission script writes it atomically with the gate counter. The key
// must not contain ':' so the user part stays unambiguous.
func SaleIdempotency(sale, user, key string) string {
	return salePrefix + sale + "}:idem:" + user + ":" + key
}

// SaleInflight is a hash user -> attempts admitted and not yet decided in a sale.
func SaleInflight(sale string) string { return salePrefix + sale + "}:inflight" }

// SaleQueue is the sorted set of admitted tickets not yet decided, scored by when they were
// (re)enqueued (unix ms): the admission backlog and the journal stranded tickets are requeued from.
func SaleQueue(sale string) string { return salePrefix + sale + "}:queue" }

// SaleClosing is the sorted set of a sale's tickets decided without a win whose shard claims are
// still to be closed (a unit taken is given back, a shard not visited is closed to the ticket),
// scored by decision time (unix ms): written in the same script as the decision, so the sweep
// finishes what a dead closer started.
func SaleClosing(sale string) string { return salePrefix + sale + "}:closing" }

// ShardClaims is a hash ticket -> claim state for shard i of a sale, in the shard's slot: the
// marker that makes the worker's decrement, and every later move of that unit, happen once.
func ShardClaims(sale string, i int) string {
	return prefix + "salestock:{s:" + sale + ":" + strconv.Itoa(i) + "}:claims"
}

// ShardStats is a hash of counters (reserved, ordered, returned, released) for shard i of a sale,
// in the shard's slot, changed in the same script as the shard's stock.
func ShardStats(sale string, i int) string {
	return prefix + "salestock:{s:" + sale + ":" + strconv.Itoa(i) + "}:stats"
}

// WaitRoom is a sale's waiting-room state, a hash in the sale's slot that changes once per
// admission batch (edges read it through the client-side cache): serving (every position <=
// it is admitted), presize (the frozen pre-queue's size), shuffled, seed (revealed at the
// start), commitment, last_ms, made_up, batches.
func WaitRoom(sale string) string { return salePrefix + sale + "}:wr" }

// WaitRoomSeed is the secret shuffle seed (hex) until the start reveals it in WaitRoom.
func WaitRoomSeed(sale string) string { return salePrefix + sale + "}:wr:seed" }

// WaitRoomPre is the pre-queue: a hash user -> join time (unix ms).
func WaitRoomPre(sale string) string { return salePrefix + sale + "}:wr:pre" }

// WaitRoomTail counts later joiners (their positions follow the pre-queue's).
func WaitRoomTail(sale string) string { return salePrefix + sale + "}:wr:tail" }

// WaitRoomPlace is a hash user -> position (pre-queue joiners after the shuffle, later joiners
// at their join).
func WaitRoomPlace(sale string) string { return salePrefix + sale + "}:wr:place" }

// WaitRoomPass is a hash user -> expiry (unix ms) of the user's admission pass, written once.
func WaitRoomPass(sale string) string { return salePrefix + sale + "}:wr:pass" }

// WaitRoomLost is a hash user -> when the place was lost (unix ms).
func WaitRoomLost(sale string) string { return salePrefix + sale + "}:wr:lost" }

// WaitRoomSeen is a hash user -> the last sign of life the store saw (unix ms): a join, or a
// look-up without a queue token. Polls with a token are not recorded (they cost the store
// nothing); the token carries their time.
func WaitRoomSeen(sale string) string { return salePrefix + sale + "}:wr:seen" }

// WaitRoomUsed is the sorted set of users who made an attempt with their pass, scored by position.
func WaitRoomUsed(sale string) string { return salePrefix + sale + "}:wr:used" }

// WaitRoomBatches is the sorted set of serving values scored by when they were reached (unix ms),
// from which unused admissions are counted and made up.
func WaitRoomBatches(sale string) string { return salePrefix + sale + "}:wr:batches" }

// WaitRoomOrder is the shuffled pre-queue: user ids in position order, one per line.
func WaitRoomOrder(sale string) string { return salePrefix + sale + "}:wr:order" }

// WaitRoomLock is held (SET NX with a TTL) by the one admitter shuffling a sale's pre-queue.
func WaitRoomLock(sale string) string { return salePrefix + sale + "}:wr:lock" }

// WaitRooms is the sorted set of sale ids with a waiting room scored by their end (unix ms), the
// admitters' work list.
func WaitRooms() string { return prefix + "waitrooms" }

// The inverse parsers: what a key the store names (in an invalidation push) is about.

// tagged returns the hash-tag id of key after pre and what follows the tag.
func tagged(key, pre string) (id, rest string, ok bool) {
	after, ok := strings.CutPrefix(key, pre)
	if !ok {
		return "", "", false
	}
	i := strings.IndexByte(after, '}')
	if i <= 0 {
		return "", "", false
	}
	return after[:i], after[i+1:], true
}

// ProductOf returns the product id of Product(id) or ProductStock(id).
func ProductOf(key string) (id string, ok bool) {
	id, rest, ok := tagged(key, productPrefix)
	if !ok || (rest != "" && rest != ":stock") {
		return "", false
	}
	return id, true
}

// SaleStateOf returns the sale id of Sale(id) or SoldOut(id): the keys a sale's public state is
// derived from.
func SaleStateOf(key string) (id string, ok bool) {
	id, rest, ok := tagged(key, salePrefix)
	if !ok || (rest != "" && rest != ":soldout") {
		return "", false
	}
	return id, true
}

// IsSaleIdempotency reports whether key is a SaleIdempotency key of some sale.
func IsSaleIdempotency(key string) bool {
	_, rest, ok := tagged(key, salePrefix)
	return ok && strings.HasPrefix(rest, ":idem:")
}
