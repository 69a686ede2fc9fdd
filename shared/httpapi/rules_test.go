package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

func TestValidUserID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"alice", true}, {"u-1_2.x", true}, {strings.Repeat("a", 80), true},
		{"", false}, {"Alice", false}, {"a{b}", false}, {"a:b", false}, {"a@b", false}, {strings.Repeat("a", 81), false},
	} {
		if got := httpapi.ValidUserID([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidUserID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidIdempotencyKey(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"3f2a-uuid", true}, {"a:b.c_d", true}, {strings.Repeat("k", 128), true},
		{"", false}, {"a b", false}, {"a{b}", false}, {strings.Repeat("k", 129), false},
	} {
		if got := httpapi.ValidIdempotencyKey([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidIdempotencyKey(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSetRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {30 * time.Second, "30"}} {
		var ctx fasthttp.RequestCtx
		httpapi.SetRetryAfter(&ctx, tt.wait)
		if got := string(ctx.Response.Header.Peek("Retry-After")); got != tt.want {
			t.Errorf("SetRetryAfter(%v) = %q, want %q", tt.wait, got, tt.want)
		}
	}
}

func TestAdmin(t *testing.T) {
	h := httpapi.Admin("0123456789abcdef")(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"right token", "Bearer 0123456789abcdef", 204},
		{"scheme in lower case", "bearer 0123456789abcdef", 204},
		{"wrong token", "Bearer 0123456789abcdeg", 401},
		{"prefix of the token", "Bearer 0123", 401},
		{"no scheme", "0123456789abcdef", 401},
		{"nothing", "", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if tt.auth != "" {
				ctx.Request.Header.Set("Authorization", tt.auth)
			}
			h(&ctx)
			if got := ctx.Response.StatusCode(); got != tt.want {
				t.Fatalf("status %d, want %d (%s)", got, tt.want, ctx.Response.Body())
			}
			if tt.want == 401 && !strings.Contains(string(ctx.Response.Body()), `"unauthorized"`) {
				t.Errorf("refusal body %s", ctx.Response.Body())
			}
		})
	}
}

func TestCheckBudget(t *testing.T) {
	if err := httpapi.CheckBudget("outer", 5*time.Second, "-inner", 4*time.Second); err != nil {
		t.Errorf("4s inside 5s: %v", err)
	}
	err := httpapi.CheckBudget("the edge's budget", 5*time.Second, "-checkout-timeout", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "lower -checkout-timeout") {
		t.Errorf("5s inside 5s: %v, want an error naming -checkout-timeout", err)
	}
}
