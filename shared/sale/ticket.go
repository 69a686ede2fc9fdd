package sale

import (
	"strconv"
	"time"

	"flashedge/shared/httpapi"
)

// A ticket's result record is the hash keyspace.SaleResult(sale, ticket), written by the order
// service at admission and by the worker when it decides; the edge answers polls from it
// directly. Its fields: status, user, created_at, and once decided decided_at, plus token,
// expires_at (unix ms) and shard when won, or reason when lost.
const (
	ResultStatus    = "status"
	ResultUser      = "user"
	ResultToken     = "token"
	ResultExpiresAt = "expires_at"
	ResultReason    = "reason"
)

// TicketIDLen is the length of a ticket id and of a seckill token: 16 random bytes in lower-case
// hex, as the order service makes them.
const TicketIDLen = 32

// ValidTicketID reports whether id can be a ticket id or a seckill token (TicketIDLen lower-case
// hex digits). The edge and the order service both refuse anything else before a store call.
func ValidTicketID(id string) bool {
	if len(id) != TicketIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Statuses of a ticket.
const (
	StatusQueued  = "queued"
	StatusWon     = "won"
	StatusLost    = "lost"
	StatusSoldOut = "sold_out"
)

// Ticket is a ticket's result as a shopper sees it.
type Ticket struct {
	Status    string
	Token     string    // won only: the seckill token
	ExpiresAt time.Time // won only: the end of the reservation
	Reason    string    // lost only
}

// TicketFromHash reads a result record for user; ok is false when it is missing or another
// user's, which both sides answer as an unknown ticket.
func TicketFromHash(m map[string]string, user string) (t Ticket, ok bool) {
	if m[ResultStatus] == "" || m[ResultUser] != user {
		return Ticket{}, false
	}
	t = Ticket{Status: m[ResultStatus]}
	switch t.Status {
	case StatusWon:
		t.Token = m[ResultToken]
		exp, _ := strconv.ParseInt(m[ResultExpiresAt], 10, 64)
		t.ExpiresAt = time.UnixMilli(exp).UTC()
	case StatusLost:
		t.Reason = m[ResultReason]
	}
	return t, true
}

// AppendJSON appends the ticket's public answer to dst: {"status":"won","token","expires_at"},
// {"status":"lost","reason"}, or {"status"} for every other status. The answer to a decided
// ticket carries the token: callers send it with Cache-Control: no-store.
func (t Ticket) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"status":`...)
	dst = AppendString(dst, t.Status)
	switch t.Status {
	case StatusWon:
		dst = append(dst, `,"token":`...)
		dst = AppendString(dst, t.Token)
		dst = append(dst, `,"expires_at":"`...)
		dst = httpapi.AppendTime(dst, t.ExpiresAt)
		dst = append(dst, '"')
	case StatusLost:
		dst = append(dst, `,"reason":`...)
		dst = AppendString(dst, t.Reason)
	}
	return append(dst, '}')
}

// Refusal bodies both sides answer with (status codes beside each).
var (
	// SoldOutBody answers an attempt on a sold-out sale: 410.
	SoldOutBody = []byte(`{"status":"sold_out","error":{"code":"sold_out","message":"the flash sale is sold out"}}`)
	// EndedBody answers an attempt or challenge after the end: 410.
	EndedBody = []byte(`{"status":"ended","error":{"code":"ended","message":"the flash sale has ended"}}`)
	// NotStartedBody answers an attempt or challenge before the start: 425.
	NotStartedBody = []byte(`{"error":{"code":"not_started","message":"the flash sale has not started yet"}}`)
	// UnknownSaleBody answers a sale id that names no sale: 404.
	UnknownSaleBody = []byte(`{"error":{"code":"not_found","message":"no flash sale has this id"}}`)
	// UnknownTicketBody answers a poll of a ticket that is unknown or another user's (the two
	// are not told apart): 404.
	UnknownTicketBody = []byte(`{"error":{"code":"ticket_not_found","message":"no ticket of yours has this id"}}`)
)
