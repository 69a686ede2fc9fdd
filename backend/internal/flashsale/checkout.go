package flashsale

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/backend/internal/order"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	publicsale "flashedge/shared/sale"
)

// A flash-sale checkout writes an order.Order document (the one order type, which the order
// service lists and answers) at keyspace.Order(user, id) (a JSON string, indexed in
// keyspace.UserOrders(user) by creation time in unix ms), with status "paid" and flash_sale_id set.

// OrderID is the id of the order a seckill token buys: derived from sale and token so every retry
// of a checkout, and the sweeper finishing a checkout that stopped half way, write the same order.
// It does not reveal the token.
func OrderID(sale, token string) string {
	h := sha256.Sum256([]byte("flashedge-order|" + sale + "|" + token))
	return "fs-" + hex.EncodeToString(h[:12])
}

// paidToken is what token_pay.lua and token_expire.lua return about a paid token.
type paidToken struct {
	user, ticket, shardS, priceS, productID, paidAtS string
}

// Checkout buys the unit reserved by token for user: the token is consumed atomically (reserved ->
// paid, only before its expiry; the sweeper's expiry moves the same state field, so exactly one
// of them happens), the order is written idempotently, the shard's ledger moves the unit to
// ordered, and only then is the token deleted. It returns the stored order JSON, which the caller
// may keep. Errors: ErrTokenNotFound (unknown, or another user's), ErrTokenUsed (its order exists),
// ErrTokenExpired, or a store error. A token paid before whose order is not finished yet (a retry
// after a failure half way) finishes and returns the same order.
func (s *Service) Checkout(ctx context.Context, user, saleID, token string) ([]byte, error) {
	if !publicsale.ValidTicketID(token) || !product.ValidID([]byte(saleID)) || !httpapi.ValidUserID([]byte(user)) {
		return nil, ErrTokenNotFound
	}
	rep, err := strs(s.lua.tokenPay.Exec(ctx, s.c,
		[]string{keyspace.SaleToken(saleID, token), keyspace.SaleStats(saleID)}, []string{user, ms(s.now())}))
	if err != nil {
		return nil, fmt.Errorf("flashsale: pay token: %w", err)
	}
	switch rep[0] {
	case "foreign":
		return nil, ErrTokenNotFound
	case "expired":
		return nil, ErrTokenExpired
	case "missing":
		n, err := s.c.Do(ctx, s.c.B().Exists().Key(keyspace.Order(user, OrderID(saleID, token))).Build()).AsInt64()
		if err != nil {
			return nil, fmt.Errorf("flashsale: look up order: %w", err)
		}
		if n == 1 {
			return nil, ErrTokenUsed
		}
		return nil, ErrTokenNotFound
	}
	p := paidToken{user: user, ticket: rep[1], shardS: rep[2], priceS: rep[3], productID: rep[4], paidAtS: rep[5]}
	return s.completeOrder(ctx, saleID, token, p)
}

// completeOrder does the steps after the pay transition, each idempotent: write the order (the
// first document stays), move the shard's unit to ordered, delete the token.
func (s *Service) completeOrder(ctx context.Context, sale, token string, p paidToken) ([]byte, error) {
	shard, err1 := strconv.Atoi(p.shardS)
	price, err2 := strconv.ParseInt(p.priceS, 10, 64)
	paidAt, err3 := strconv.ParseInt(p.paidAtS, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, fmt.Errorf("flashsale: token %s of sale %s is malformed", token, sale)
	}
	var name string
	if sl, err := s.loadSale(ctx, sale); err == nil {
		name = sl.ProductName
	}
	id := OrderID(sale, token)
	doc, err := json.Marshal(order.Order{
		ID: id, UserID: p.user, Items: []order.Item{{ProductID: p.productID, Name: name, Quantity: 1, Price: price}},
		Total: price, Status: "paid", FlashSaleID: sale, CreatedAt: httpapi.FormatTime(time.UnixMilli(paidAt)),
	})
	if err != nil {
		return nil, fmt.Errorf("flashsale: encode order: %w", err)
	}
	stored, err := s.lua.orderWrite.Exec(ctx, s.c,
		[]string{keyspace.Order(p.user, id), keyspace.UserOrders(p.user)},
		[]string{string(doc), p.paidAtS, id}).AsBytes()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("flashsale: write order: %w", err)
	}
	res, err := s.settle(ctx, sale, shard, p.ticket, "order")
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(res, "bad:") {
		return nil, fmt.Errorf("flashsale: order unit of ticket %s in shard %d: claim is %s", p.ticket, shard, res)
	}
	fin, err := s.tokenFinish(ctx, sale, token, "paid")
	if err != nil {
		return nil, err
	}
	if fin == "ok" { // the token is gone now, once
		s.o.Metrics.TokensConsumed.Inc()
	}
	return stored, nil
}
