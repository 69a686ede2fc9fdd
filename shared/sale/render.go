package sale

import (
	"strconv"
	"unicode/utf8"

	"flashedge/shared/httpapi"
)

// View is a sale's public JSON rendered once without its state, so an answer is two appends
// and the state (which moves with the clock and the sold-out flag) is filled in per request.
// It is immutable and safe for concurrent use.
type View struct {
	head, tail []byte
}

// Render renders s's public view:
//
//	{"id","product_id","product_name","price","stock","starts_at","ends_at","per_user_limit",
//	 "state","shards","difficulty","waiting_room"?}
//
// where "waiting_room" is {"opens_at","admit_per_second","pass_seconds","hold_seconds"}, present
// only for a sale with one (the page then queues before attempting),
// with times in httpapi.TimeLayout. It is the only place the public sale is rendered: the edge
// and the order service both answer with it.
func Render(s *Sale) View {
	b := make([]byte, 0, 256+len(s.ProductName))
	b = append(b, `{"id":`...)
	b = AppendString(b, s.ID)
	b = append(b, `,"product_id":`...)
	b = AppendString(b, s.ProductID)
	b = append(b, `,"product_name":`...)
	b = AppendString(b, s.ProductName)
	b = append(b, `,"price":`...)
	b = strconv.AppendInt(b, s.Price, 10)
	b = append(b, `,"stock":`...)
	b = strconv.AppendInt(b, s.Stock, 10)
	b = append(b, `,"starts_at":"`...)
	b = httpapi.AppendTime(b, s.StartsAt)
	b = append(b, `","ends_at":"`...)
	b = httpapi.AppendTime(b, s.EndsAt)
	b = append(b, `","per_user_limit":`...)
	b = strconv.AppendInt(b, s.PerUserLimit, 10)
	b = append(b, `,"state":"`...)
	head := b[:len(b):len(b)]
	tail := append([]byte(`","shards":`), strconv.Itoa(s.Shards)...)
	tail = append(tail, `,"difficulty":`...)
	tail = strconv.AppendInt(tail, int64(s.Difficulty), 10)
	if wr := s.WaitingRoom; wr.Enabled() {
		tail = append(tail, `,"waiting_room":{"opens_at":"`...)
		tail = httpapi.AppendTime(tail, wr.OpensAt)
		tail = append(tail, `","admit_per_second":`...)
		tail = strconv.AppendInt(tail, wr.AdmitPerSecond, 10)
		tail = append(tail, `,"pass_seconds":`...)
		tail = strconv.AppendInt(tail, wr.PassSeconds, 10)
		tail = append(tail, `,"hold_seconds":`...)
		tail = strconv.AppendInt(tail, wr.HoldSeconds, 10)
		tail = append(tail, '}')
	}
	tail = append(tail, '}')
	return View{head: head, tail: tail}
}

// AppendJSON appends the view with state (one of the State constants) to dst.
func (v View) AppendJSON(dst []byte, state string) []byte {
	dst = append(dst, v.head...)
	dst = append(dst, state...)
	return append(dst, v.tail...)
}

// ListOpen and ListClose wrap the views of a sale list: {"items":[view,view,...]}.
const (
	ListOpen  = `{"items":[`
	ListClose = `]}`
)

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json does with HTML escaping off:
// quotes, backslashes and control characters escaped, U+2028 and U+2029 escaped, invalid UTF-8
// replaced by U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
