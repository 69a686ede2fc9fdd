package flashsale

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// fuzzSend sends one request to e's handler and fails t unless the answer is a success or a
// 4xx whose body is a JSON error with a code (never a 5xx or a dropped connection).
func fuzzSend(t *testing.T, e *env, method, path, user, admin, idem string, body []byte) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://flashsale.test" + path)
	if user != "" {
		req.Header.Set(httpapi.HeaderUserID, user)
	}
	if admin != "" {
		req.Header.Set("Authorization", "Bearer "+admin)
	}
	if idem != "" {
		req.Header.Set(httpapi.HeaderIdempotencyKey, idem)
	}
	req.SetBody(body)
	if err := e.http.DoTimeout(req, resp, 20*time.Second); err != nil {
		t.Fatalf("%s %s %q: %v", method, path, body, err)
	}
	status, answer := resp.StatusCode(), append([]byte(nil), resp.Body()...)
	if status >= 200 && status < 300 {
		return status, answer
	}
	var er struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if status < 400 || status >= 500 || json.Unmarshal(answer, &er) != nil || er.Error.Code == "" {
		t.Fatalf("%s %s with %q (key %q): %d %q, want a success or a 4xx JSON error with a code", method, path, body, idem, status, answer)
	}
	return status, answer
}

// FuzzSaleCreate sends arbitrary bodies to the admin sale creation against a real store: a
// success or a 4xx JSON error, and a sale accepted is one the rules allow.
func FuzzSaleCreate(f *testing.F) {
	e := newEnv(f, Options{})
	e.putProduct("p-fuzz")
	now := e.clock.Now().UTC()
	good, _ := json.Marshal(map[string]any{"id": "s-fuzz", "product_id": "p-fuzz", "price": 990000, "stock": 10, "shards": 2,
		"starts_at": now.Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339), "per_user_limit": 1, "difficulty": 4})
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"stock":10`), []byte(`"stock":-1`), 1))
	f.Add(bytes.Replace(good, []byte(`"shards":2`), []byte(`"shards":100000`), 1))
	f.Add(bytes.Replace(good, []byte(`"s-fuzz"`), []byte(`"a}b{c"`), 1))
	f.Add(bytes.Replace(good, []byte(`"difficulty":4`), []byte(`"difficulty":99`), 1))
	f.Add([]byte(`{"id":"x","product_id":"nope","stock":1,"starts_at":"2026-13-01T00:00:00Z"}`))
	f.Add([]byte(`{"waiting_room":{"opens_at":"x","admit_per_second":-5}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		status, answer := fuzzSend(t, e, "POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body)
		if status/100 != 2 {
			return
		}
		var s saleJSON
		if err := json.Unmarshal(answer, &s); err != nil {
			t.Fatalf("sale %q: %d with a body that is not a sale: %q", body, status, answer)
		}
		if s.Stock < 0 || s.Stock > MaxStock || s.PerUserLimit < 1 {
			t.Fatalf("sale %q accepted outside the rules: %q", body, answer)
		}
	})
}

// FuzzAttempt sends arbitrary attempt bodies, Idempotency-Keys and sale ids to the attempt
// route against a real store and a live sale. The word CHALLENGE in a body is replaced by a
// challenge id minted for that attempt (as the edge mints them), so the fuzzer reaches past the challenge check.
func FuzzAttempt(f *testing.F) {
	e := newEnv(f, Options{})
	e.createSale(saleSpec{id: "s-fuzz", stock: 1_000_000, shards: 2, limit: 1_000_000})
	f.Add([]byte(`{"challenge_id":"CHALLENGE","answer":"0"}`), "k-1", "s-fuzz")
	f.Add([]byte(`{"challenge_id":"CHALLENGE","answer":""}`), "", "s-fuzz")
	f.Add([]byte(`{"challenge_id":"nope","answer":"1"}`), "k-2", "s-fuzz")
	f.Add([]byte(`{"challenge_id":"CHALLENGE","answer":"0","pass":"x"}`), "k:{}", "s-fuzz")
	f.Add([]byte(`{"challenge_id":"CHALLENGE","answer":"0","user":"someone-else"}`), "k-3", "s-fuzz")
	f.Add([]byte(`{"challenge_id":"CHALLENGE"}`), strings.Repeat("k", 200), "no-such-sale")
	f.Add([]byte(`{}`), "k-4", "a}b")
	f.Add([]byte(``), "k-5", "")
	f.Fuzz(func(t *testing.T, body []byte, key, sale string) {
		if !utf8Path(sale) {
			return
		}
		path := "/api/v1/flash-sales/" + url.PathEscape(sale)
		if bytes.Contains(body, []byte("CHALLENGE")) {
			if ch, err := e.svc.mintChallenge(context.Background(), "u-fuzz", sale, 0); err == nil {
				body = bytes.ReplaceAll(body, []byte("CHALLENGE"), []byte(ch.ID))
			}
		}
		status, answer := fuzzSend(t, e, "POST", path+"/attempts", "u-fuzz", "", key, body)
		if status == 202 && !bytes.Contains(answer, []byte(`"ticket"`)) {
			t.Fatalf("attempt %q: 202 without a ticket: %q", body, answer)
		}
	})
}

// utf8Path reports whether s can name a path segment at all (the router sees the decoded path;
// an empty or dot segment is another route, not a sale id).
func utf8Path(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// FuzzAttemptBody holds parseAttemptBody to encoding/json's verdict: whatever it accepts,
// httpapi.DecodeJSON's rules (known fields only, nothing after the value) accept with the same
// fields; what it leaves to the decoder is decided there.
func FuzzAttemptBody(f *testing.F) {
	for _, b := range attemptBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := parseAttemptBody(body)
		if !ok {
			return
		}
		var slow attemptBody
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("parseAttemptBody accepted %q, encoding/json refuses it: %v", body, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("parseAttemptBody accepted %q, which has data after the value (%v)", body, err)
		}
		if fast != slow {
			t.Fatalf("parseAttemptBody(%q) = %+v, encoding/json %+v", body, fast, slow)
		}
	})
}

var attemptBodies = []string{
	`{"challenge_id":"k1.1700000000000.8.00112233445566778899aabb.00112233445566778899aabbccddeeff","answer":"123"}`,
	` { "challenge_id" : "c" , "answer" : "" , "pass" : "p.q_r-s" } ` + "\n",
	`{}`, `{"answer":"1"}`, `{"challenge_id":"a","challenge_id":"b"}`, `{"Challenge_ID":"a"}`,
	`{"challenge_id":"a\"b"}`, `{"challenge_id":"a\u0041"}`, `{"challenge_id":1}`, `{"challenge_id":null}`,
	`{"challenge_id":"a",}`, `{"challenge_id":"a"}}`, `{"challenge_id":"a"} x`, `{"user":"x"}`, "{\"answer\":\"\xff\"}",
	`[]`, ``, `{"answer":"1"`, `{"answer" "1"}`,
}

// TestParseAttemptBody: the usual bodies are read without the decoder, the rest left to it.
func TestParseAttemptBody(t *testing.T) {
	for _, tt := range []struct {
		body string
		ok   bool
		want attemptBody
	}{
		{attemptBodies[0], true, attemptBody{ChallengeID: "k1.1700000000000.8.00112233445566778899aabb.00112233445566778899aabbccddeeff", Answer: "123"}},
		{attemptBodies[1], true, attemptBody{ChallengeID: "c", Pass: "p.q_r-s"}},
		{`{}`, true, attemptBody{}},
		{`{"challenge_id":"a","challenge_id":"b"}`, false, attemptBody{}},
		{`{"Challenge_ID":"a"}`, false, attemptBody{}},
		{`{"challenge_id":"a\"b"}`, false, attemptBody{}},
		{`{"challenge_id":1}`, false, attemptBody{}},
		{`{"challenge_id":"a",}`, false, attemptBody{}},
		{`{"challenge_id":"a"} x`, false, attemptBody{}},
		{`{"user":"x"}`, false, attemptBody{}},
		{``, false, attemptBody{}},
	} {
		got, ok := parseAttemptBody([]byte(tt.body))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseAttemptBody(%q) = %+v, %v; want %+v, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseAttemptBodyAllocs(t *testing.T) {
	body := []byte(attemptBodies[0])
	// The two strings the attempt keeps; nothing else.
	if n := testing.AllocsPerRun(100, func() { parseAttemptBody(body) }); n > 2 {
		t.Errorf("parseAttemptBody allocates %.1f times, want at most 2", n)
	}
}
