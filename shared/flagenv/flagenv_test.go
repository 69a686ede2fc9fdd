package flagenv

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrecedenceAndHelp(t *testing.T) {
	type conf struct {
		name  string
		addrs []string
		wait  time.Duration
		token string
	}
	define := func(getenv func(string) string, out io.Writer) (*Set, *conf) {
		var c conf
		s := New("tool", "FLASHEDGE_TOOL_", getenv, out)
		s.String(&c.name, "name", "def", "a name")
		s.Addrs(&c.addrs, "peers", "a:1, b:2", "peers").Env("FLASHEDGE_PEERS")
		s.Duration(&c.wait, "wait", time.Second, "a wait")
		s.Alias("old-wait", "wait")
		s.Secret(&c.token, "FLASHEDGE_TOOL_TOKEN", "a token")
		return s, &c
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    conf
		wantErr string
	}{
		{name: "defaults", want: conf{"def", []string{"a:1", "b:2"}, time.Second, ""}},
		{name: "environment", env: map[string]string{"FLASHEDGE_TOOL_NAME": "e", "FLASHEDGE_PEERS": "c:3", "FLASHEDGE_TOOL_WAIT": "2s", "FLASHEDGE_TOOL_TOKEN": "t"},
			want: conf{"e", []string{"c:3"}, 2 * time.Second, "t"}},
		{name: "flags win", args: []string{"-name", "f", "-old-wait", "3s"}, env: map[string]string{"FLASHEDGE_TOOL_NAME": "e", "FLASHEDGE_TOOL_WAIT": "2s"},
			want: conf{"f", []string{"a:1", "b:2"}, 3 * time.Second, ""}},
		{name: "empty variable is unset", env: map[string]string{"FLASHEDGE_TOOL_NAME": ""}, want: conf{"def", []string{"a:1", "b:2"}, time.Second, ""}},
		{name: "bad variable", env: map[string]string{"FLASHEDGE_TOOL_WAIT": "soon"}, wantErr: `FLASHEDGE_TOOL_WAIT="soon" (-wait)`},
		{name: "stray argument", args: []string{"x"}, wantErr: "flags only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := define(func(k string) string { return tt.env[k] }, io.Discard)
			err := s.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) with %v = %v, want an error containing %q", tt.args, tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) with %v: %v", tt.args, tt.env, err)
			}
			if c.name != tt.want.name || !slices.Equal(c.addrs, tt.want.addrs) || c.wait != tt.want.wait || c.token != tt.want.token {
				t.Errorf("Parse(%q) with %v = %+v, want %+v", tt.args, tt.env, *c, tt.want)
			}
		})
	}

	var out bytes.Buffer
	s, _ := define(func(string) string { return "" }, &out)
	s.Synopsis("usage: tool [flags]")
	if err := s.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, want := range []string{"usage: tool [flags]", "-name string", "(env FLASHEDGE_TOOL_NAME)", "(env FLASHEDGE_PEERS)", "(default a:1,b:2)", "Environment only:", "FLASHEDGE_TOOL_TOKEN"} {
		if !strings.Contains(help, want) {
			t.Errorf("-h lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "old-wait") {
		t.Errorf("-h shows the hidden alias -old-wait:\n%s", help)
	}
}

func TestAllowArgs(t *testing.T) {
	s := New("probe", "FLASHEDGE_PROBE_", func(string) string { return "" }, io.Discard)
	s.AllowArgs()
	if err := s.Parse([]string{"http://x/ready"}); err != nil || !slices.Equal(s.Args(), []string{"http://x/ready"}) {
		t.Fatalf("Parse = %v, Args = %q", err, s.Args())
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{{nil, 0}, {flag.ErrHelp, 0}, {errors.New("boom"), 1}} {
		var out bytes.Buffer
		if got := ExitCode("tool", tt.err, &out); got != tt.want || (tt.want == 1) != strings.Contains(out.String(), "tool: boom") {
			t.Errorf("ExitCode(%v) = %d, stderr %q; want %d", tt.err, got, out.String(), tt.want)
		}
	}
}
