package sale_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"flashedge/shared/sale"
	"flashedge/shared/waitroom"
)

// encodingJSON renders v the way encoding/json does with HTML escaping off: the reference the
// hand-written renderer must match byte for byte.
func encodingJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	tests := []struct{ name, in string }{
		{"plain", "Tai nghe"},
		{"empty", ""},
		{"quotes and backslash", `say "hi" \ there`},
		{"html stays", "<b>&amp;</b>"},
		{"controls", "a\x00b\x01c\nd\re\tf\bg\fh\x1f"},
		{"non-ASCII", "tiếng Việt — 日本"},
		{"line separators", "a\u2028b\u2029c"},
		{"invalid UTF-8", "a\xffb\xc3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(sale.AppendString(nil, tt.in))
			if want := encodingJSON(t, tt.in); got != want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, want)
			}
		})
	}
}

func TestRenderMatchesEncodingJSON(t *testing.T) {
	s := &sale.Sale{ID: "s1", ProductID: "00000001", ProductName: "Tai nghe \"Pro\" é", Price: 99000, Stock: 12,
		Shards: 4, StartsAt: time.UnixMilli(1_800_000_000_250).UTC(), EndsAt: time.UnixMilli(1_800_003_600_000).UTC(),
		PerUserLimit: 2, Difficulty: 8}
	want := encodingJSON(t, struct {
		ID           string `json:"id"`
		ProductID    string `json:"product_id"`
		ProductName  string `json:"product_name"`
		Price        int64  `json:"price"`
		Stock        int64  `json:"stock"`
		StartsAt     string `json:"starts_at"`
		EndsAt       string `json:"ends_at"`
		PerUserLimit int64  `json:"per_user_limit"`
		State        string `json:"state"`
		Shards       int    `json:"shards"`
		Difficulty   int    `json:"difficulty"`
	}{"s1", "00000001", s.ProductName, 99000, 12, "2027-01-15T08:00:00.250Z", "2027-01-15T09:00:00.000Z", 2, "live", 4, 8})
	if got := string(sale.Render(s).AppendJSON(nil, sale.StateLive)); got != want {
		t.Errorf("Render = %s\nwant     %s", got, want)
	}
}

func TestHashRoundTrip(t *testing.T) {
	s := &sale.Sale{ID: "s1", ProductID: "p", ProductName: "n", Price: 5, Stock: 7, Shards: 3,
		StartsAt: time.UnixMilli(1_000).UTC(), EndsAt: time.UnixMilli(2_000).UTC(), PerUserLimit: 1, Difficulty: 4,
		CreatedAt: time.UnixMilli(500).UTC()}
	f := s.HashFields()
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	got, ok := sale.FromHash(m)
	if !ok || *got != *s {
		t.Fatalf("FromHash(HashFields) = %+v, %v; want %+v", got, ok, s)
	}
	m[sale.FieldPrice] = "x"
	if _, ok := sale.FromHash(m); ok {
		t.Error("FromHash accepted a malformed price")
	}
	if _, ok := sale.FromHash(map[string]string{}); ok {
		t.Error("FromHash accepted a missing sale")
	}
}

func TestStateAt(t *testing.T) {
	tests := []struct {
		name    string
		now     int64
		soldOut bool
		want    string
	}{
		{"before the start", 999, false, sale.StateUpcoming},
		{"at the start", 1000, false, sale.StateLive},
		{"sold out", 1500, true, sale.StateSoldOut},
		{"at the end", 2000, true, sale.StateEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sale.StateAt(tt.now, 1000, 2000, tt.soldOut); got != tt.want {
				t.Errorf("StateAt(%d, soldOut %v) = %s, want %s", tt.now, tt.soldOut, got, tt.want)
			}
		})
	}
}

func TestTicket(t *testing.T) {
	tests := []struct {
		name string
		hash map[string]string
		user string
		ok   bool
		want string
	}{
		{"won", map[string]string{"status": "won", "user": "al", "token": "tk", "expires_at": "1800000000250"}, "al", true,
			`{"status":"won","token":"tk","expires_at":"2027-01-15T08:00:00.250Z"}`},
		{"lost", map[string]string{"status": "lost", "user": "al", "reason": "sold_out"}, "al", true, `{"status":"lost","reason":"sold_out"}`},
		{"queued", map[string]string{"status": "queued", "user": "al", "token": "ignored"}, "al", true, `{"status":"queued"}`},
		{"another user's", map[string]string{"status": "won", "user": "bo"}, "al", false, ""},
		{"missing", map[string]string{}, "al", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, ok := sale.TicketFromHash(tt.hash, tt.user)
			if ok != tt.ok {
				t.Fatalf("TicketFromHash ok = %v, want %v", ok, tt.ok)
			}
			if ok {
				if got := string(tk.AppendJSON(nil)); got != tt.want {
					t.Errorf("ticket JSON %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestRefusalBodiesAreJSON(t *testing.T) {
	for name, b := range map[string][]byte{"sold out": sale.SoldOutBody, "ended": sale.EndedBody,
		"not started": sale.NotStartedBody, "unknown sale": sale.UnknownSaleBody, "unknown ticket": sale.UnknownTicketBody} {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s body %s: %v", name, b, err)
		}
	}
}

func TestRenderWaitingRoom(t *testing.T) {
	s := &sale.Sale{ID: "w", ProductID: "p", StartsAt: time.UnixMilli(2_000_000).UTC(), EndsAt: time.UnixMilli(3_000_000).UTC(),
		WaitingRoom: waitroom.Config{OpensAt: time.UnixMilli(1_000_500).UTC(), AdmitPerSecond: 50, PassSeconds: 60, HoldSeconds: 30}}
	got := string(sale.Render(s).AppendJSON(nil, sale.StateUpcoming))
	want := `"difficulty":0,"waiting_room":{"opens_at":"1970-01-01T00:16:40.500Z","admit_per_second":50,"pass_seconds":60,"hold_seconds":30}}`
	if !strings.HasSuffix(got, want) {
		t.Errorf("Render = %s\nwant it to end with %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("not JSON: %s: %v", got, err)
	}
}
