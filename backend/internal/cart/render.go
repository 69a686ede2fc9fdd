package cart

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// appendView appends the cart of lines, prods[i] being the product of lines[i], as the JSON of a
// View with the newline httpapi.WriteJSON ends with: the same bytes, without reflection or
// allocation. Lines whose product has an empty ID (withdrawn from the catalog) are left out.
// Line product ids are product.ValidID (linesOf keeps no other), so they need no escaping.
func appendView(b []byte, lines []Line, prods []Product) []byte {
	b = append(b, `{"items":[`...)
	var total int64
	first := true
	for i, l := range lines {
		p := &prods[i]
		if p.ID == "" {
			continue // withdrawn from the catalog: nothing to show or to charge
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"product_id":"`...)
		b = append(b, l.ProductID...)
		b = append(b, `","name":`...)
		if p.nameJSON != nil {
			b = append(b, p.nameJSON...)
		} else {
			b = appendJSONString(b, p.Name)
		}
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(l.Quantity), 10)
		b = append(b, `,"price":`...)
		b = strconv.AppendInt(b, p.Price, 10)
		b = append(b, '}')
		total += p.Price * int64(l.Quantity)
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, total, 10)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string exactly as httpapi.WriteJSON's encoder writes it
// (HTML characters kept, invalid UTF-8 replaced, U+2028 and U+2029 escaped). It allocates; the
// hot path uses Product.nameJSON, encoded once per product document.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil { // a string always encodes
		return append(b, `""`...)
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// quickQuantity reads a PUT body of exactly the form {"quantity":N}, N a whole number of at most
// three digits without sign, leading zero or exponent (what clients send), without a JSON
// decoder. ok is false for any other body, which then goes through httpapi.DecodeJSON and its
// answers; for the bodies it takes it gives what DecodeJSON gives.
func quickQuantity(body []byte) (n int, ok bool) {
	const pre = `{"quantity":`
	if len(body) < len(pre)+2 || len(body) > len(pre)+4 || string(body[:len(pre)]) != pre || body[len(body)-1] != '}' {
		return 0, false
	}
	digits := body[len(pre) : len(body)-1]
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
