package compare

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// request is what a wrk script sends, repeated by probe once before and after a run.
type request struct {
	Method  string
	URL     string
	Headers map[string]string
	Body    string
}

// probeResult is one answer with its size on the wire, which should match wrk's bytes per
// response when every answer of the run was this one.
type probeResult struct {
	Status    int
	Body      string
	WireBytes int
}

// probe sends r once on a fresh connection and reads one answer, counting its bytes.
func probe(r request) (probeResult, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return probeResult{}, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		return probeResult{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, u.RequestURI(), u.Host)
	for k, v := range r.Headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if r.Body != "" || r.Method == http.MethodPost {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	}
	b.WriteString("\r\n")
	b.WriteString(r.Body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return probeResult{}, err
	}
	cr := &countingReader{r: conn}
	br := bufio.NewReader(cr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return probeResult{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return probeResult{}, err
	}
	return probeResult{Status: resp.StatusCode, Body: string(body), WireBytes: cr.n - br.Buffered()}, nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
