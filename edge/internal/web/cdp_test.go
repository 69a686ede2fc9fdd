//go:build linux

package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// browser is one headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on fd 3, answers and events on fd 4, NUL-terminated JSON).
// Unlike --dump-dom with a virtual-time budget, the page runs on the real clock, so a test can
// wait for what the servers do in their own time (an admission batch, a worker's decision) and
// poll the page's DOM with a generous deadline.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File // commands to Chromium
	session string   // the page's flattened session

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpReply
	console []string // console messages, uncaught exceptions and non-network log entries
	done    chan struct{}
	stderr  bytes.Buffer
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// newBrowser starts Chromium and opens one blank page, all stopped when the test ends.
func newBrowser(t *testing.T, bin string, width, height int) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, in: cmdW, waiting: map[int]chan cdpReply{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", fmt.Sprintf("--window-size=%d,%d", width, height),
		"about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, outW} // fd 3 and fd 4
	b.cmd.Stderr = &b.stderr
	// Chromium starts helper processes; its own process group lets the test stop all of them.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	cmdR.Close()
	outW.Close()
	go b.read(outR)
	t.Cleanup(b.close)

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		b.call(b.session, m, nil, nil)
	}
	b.call(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}, nil)
	return b
}

func (b *browser) close() {
	_ = b.in.Close()
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = b.cmd.Wait()
	<-b.done
}

// read dispatches answers to their callers and keeps what the page wrote to its console.
func (b *browser) read(r *os.File) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.waiting[m.ID]; ok {
				ch <- m.cdpReply
				delete(b.waiting, m.ID)
			}
		} else if line := consoleLine(m.Method, m.Params); line != "" {
			b.console = append(b.console, line)
		}
		b.mu.Unlock()
	}
}

// consoleLine renders an event that means the page wrote to the console, threw, or broke its
// Content-Security-Policy; "" for every other event. Failed loads (a 4xx or 5xx answer, which
// the page handles) are network log entries and not counted.
func consoleLine(method string, params json.RawMessage) string {
	switch method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value any `json:"value"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &p)
		return fmt.Sprintf("console.%s %v", p.Type, p.Args)
	case "Runtime.exceptionThrown":
		return "uncaught exception: " + string(params)
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Source, Level, Text, URL string
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &p)
		if p.Entry.Source == "network" {
			return ""
		}
		return fmt.Sprintf("log %s/%s: %s (%s)", p.Entry.Source, p.Entry.Level, p.Entry.Text, p.Entry.URL)
	}
	return ""
}

// call sends one command and decodes its result into out (when not nil); it fails the test
// when Chromium answers an error or nothing within 60 s.
func (b *browser) call(session, method string, params any, out any) {
	b.t.Helper()
	if err := b.callErr(session, method, params, out); err != nil {
		b.t.Fatalf("chromium %s: %v", method, err)
	}
}

// errNavigating is Chromium's answer to a command about a page that navigated (or whose script
// context went away) while the command ran: a form submitted before the page's script bound its
// handler reloads the page, and a poll sent meanwhile gets this. It says "not yet", not "broken".
type errNavigating struct{ msg string }

func (e errNavigating) Error() string { return e.msg }

// callErr is call returning Chromium's error answer instead of failing the test: errNavigating
// when the page navigated meanwhile.
func (b *browser) callErr(session, method string, params any, out any) error {
	b.t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(raw, 0)); err != nil {
		b.t.Fatalf("chromium %s: %v\n%s", method, err, tail(b.stderr.String(), 2000))
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.t.Fatalf("chromium exited during %s\n%s", method, tail(b.stderr.String(), 2000))
		}
		if r.Error != nil {
			for _, m := range []string{"navigated or closed", "Execution context was destroyed", "Cannot find context"} {
				if strings.Contains(r.Error.Message, m) {
					return errNavigating{r.Error.Message}
				}
			}
			return errors.New(r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				b.t.Fatalf("chromium %s: result %s: %v", method, r.Result, err)
			}
		}
	case <-time.After(60 * time.Second):
		b.t.Fatalf("chromium %s: no answer within 60 s", method)
	}
	return nil
}

// open navigates the page to url.
func (b *browser) open(url string) {
	b.t.Helper()
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// eval evaluates a JavaScript expression in the page (awaiting a promise) and decodes its value
// into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	if err := b.tryEval(expr, out); err != nil {
		b.t.Fatalf("evaluating %q: %v", expr, err)
	}
}

// tryEval is eval for a poll: it returns errNavigating when the page navigated while it ran
// (the caller polls again), and fails the test on any other error.
func (b *browser) tryEval(expr string, out any) error {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.callErr(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		if _, ok := err.(errNavigating); ok {
			return err
		}
		b.t.Fatalf("chromium Runtime.evaluate: %v", err)
	}
	if r.ExceptionDetails != nil {
		d := r.ExceptionDetails.Text
		if r.ExceptionDetails.Exception != nil {
			d = r.ExceptionDetails.Exception.Description
		}
		b.t.Fatalf("evaluating %q: %s", expr, d)
	}
	if out != nil && len(r.Result.Value) > 0 {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			b.t.Fatalf("evaluating %q: value %s: %v", expr, r.Result.Value, err)
		}
	}
	return nil
}

// text returns the string value of expr ("" for null or undefined).
func (b *browser) text(expr string) string {
	b.t.Helper()
	var s string
	b.eval("String(("+expr+") ?? '')", &s)
	return s
}

// waitText polls expr (a string-valued expression) every 100 ms until ok accepts it, failing the
// test after within (generous: the page and the servers share a busy machine). While the page
// loads, an expression that throws (an element not there yet) counts as "".
func (b *browser) waitText(ctx context.Context, what, expr string, within time.Duration, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var s string
		// A page navigating meanwhile counts as "" too.
		_ = b.tryEval("(() => { try { return String(("+expr+") ?? ''); } catch { return ''; } })()", &s)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.t.Fatalf("waiting for %s: still %q after %v\npage: %s", what, s, within, tail(b.dom(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// autotest waits for the page's self-test (#autotest) to finish and returns its last line.
func (b *browser) autotest(ctx context.Context, within time.Duration) string {
	b.t.Helper()
	return b.waitText(ctx, "the page's self-test", "document.getElementById('autotest').textContent", within, func(s string) bool {
		return strings.HasPrefix(s, "autotest: done") || strings.HasPrefix(s, "autotest: failed")
	})
}

// dom returns the page's current HTML.
func (b *browser) dom() string {
	b.t.Helper()
	return b.text("document.documentElement.outerHTML")
}

// screenshot returns a PNG of the viewport.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// checkConsole fails the test for everything the page wrote to its console (it writes nothing
// in normal use: any message is a script error, a CSP violation or a failed load of its own).
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.console {
		b.t.Errorf("the page wrote to the console: %s", l)
	}
	b.console = nil
}
