package flashsale

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// keyless are commands that take no key; any other command's first argument is a key.
var keyless = map[string]bool{"TIME": true, "PING": true, "ECHO": true}

// multiKey are commands whose every argument is a key.
var multiKey = map[string]bool{"DEL": true, "EXISTS": true, "UNLINK": true, "MGET": true, "TOUCH": true}

// subcommand are commands whose key follows a subcommand (XGROUP DELCONSUMER key ...).
var subcommand = map[string]bool{"XGROUP": true, "XINFO": true, "OBJECT": true}

var (
	callRe = regexp.MustCompile(`redis\.p?call\s*\(`)
	keyRe  = regexp.MustCompile(`^KEYS\[\d+\]$`)
)

// undeclaredKeys returns a description of every redis.call in src whose key arguments are not
// literally KEYS[n]. Redis runs such scripts; Dragonfly refuses keys not passed in KEYS.
func undeclaredKeys(src string) []string {
	var bad []string
	for _, loc := range callRe.FindAllStringIndex(src, -1) {
		args := splitArgs(src[loc[1]:])
		line := strings.Count(src[:loc[0]], "\n") + 1
		if len(args) == 0 {
			bad = append(bad, fmt.Sprintf("line %d: call without arguments", line))
			continue
		}
		cmd := strings.ToUpper(strings.Trim(args[0], `'"`))
		if cmd == strings.ToUpper(args[0]) { // not a string literal: the command itself is computed
			bad = append(bad, fmt.Sprintf("line %d: command name %q is not a literal", line, args[0]))
			continue
		}
		if keyless[cmd] {
			continue
		}
		if len(args) < 2 {
			bad = append(bad, fmt.Sprintf("line %d: %s without a key", line, cmd))
			continue
		}
		keys := args[1:2]
		if subcommand[cmd] && len(args) > 2 {
			keys = args[2:3]
		}
		if multiKey[cmd] {
			keys = args[1:]
		}
		for _, k := range keys {
			if !keyRe.MatchString(k) {
				bad = append(bad, fmt.Sprintf("line %d: %s key argument %q is not KEYS[n]", line, cmd, k))
			}
		}
	}
	return bad
}

// splitArgs splits the argument list that starts right after "(" at its top-level commas,
// respecting nested brackets and string literals, up to the matching ")".
func splitArgs(s string) []string {
	var args []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			if depth == 0 {
				if a := strings.TrimSpace(s[start:i]); a != "" {
					args = append(args, a)
				}
				return args
			}
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return args
}

// TestScriptsDeclareKeys reads every embedded .lua file and fails on any redis.call whose key is
// not passed in KEYS (Redis would not notice; Dragonfly would refuse the script).
func TestScriptsDeclareKeys(t *testing.T) {
	names, err := fs.Glob(luaFiles, "*.lua")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded scripts: %v", err)
	}
	calls := 0
	for _, name := range names {
		src := lua(name)
		calls += len(callRe.FindAllString(src, -1))
		for _, b := range undeclaredKeys(src) {
			t.Errorf("%s: %s", name, b)
		}
	}
	if calls < 50 {
		t.Errorf("found only %d redis.call sites in %d scripts: is the parser blind?", calls, len(names))
	}
}

// TestUndeclaredKeysCatches proves the checker above fails the scripts it must fail.
func TestUndeclaredKeysCatches(t *testing.T) {
	tests := []struct {
		name string
		src  string
		bad  bool
	}{
		{"declared", `redis.call('HSET', KEYS[2], ARGV[1], 'x')`, false},
		{"declared pcall", `redis.pcall("GET", KEYS[10])`, false},
		{"nested args", `redis.call('HSET', KEYS[1], 'a', tostring(redis.call('GET', KEYS[2])))`, false},
		{"keyless", `redis.call('TIME')`, false},
		{"built key", `redis.call('GET', KEYS[1] .. ':x')`, true},
		{"argv key", `redis.call('GET', ARGV[1])`, true},
		{"literal key", `redis.call('INCR', 'fe:counter')`, true},
		{"aliased key", "local k = KEYS[1]\nredis.call('GET', k)", true},
		{"computed index", `redis.call('GET', KEYS[i])`, true},
		{"second key of DEL", `redis.call('DEL', KEYS[1], 'other')`, true},
		{"subcommand", `redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])`, false},
		{"subcommand built key", `redis.call('XGROUP', 'DELCONSUMER', ARGV[1], 'g', 'c')`, true},
		{"computed command", `redis.call(cmd, KEYS[1])`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := undeclaredKeys(tt.src)
			if (len(got) > 0) != tt.bad {
				t.Errorf("undeclaredKeys(%q) = %q, want bad=%v", tt.src, got, tt.bad)
			}
		})
	}
}

func TestSplitStock(t *testing.T) {
	tests := []struct {
		stock int64
		n     int
		want  string
	}{
		{0, 3, "[0 0 0]"},
		{7, 8, "[1 1 1 1 1 1 1 0]"},
		{9, 8, "[2 1 1 1 1 1 1 1]"},
		{100, 8, "[13 13 13 13 12 12 12 12]"},
		{5, 1, "[5]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(splitStock(tt.stock, tt.n)); got != tt.want {
			t.Errorf("splitStock(%d, %d) = %s, want %s", tt.stock, tt.n, got, tt.want)
		}
	}
}
