package load

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleRows returns rows with known answers: 1,000 requests of 1..1000 µs, 990 expected.
func sampleRows() []RowReport {
	a := NewRow("stress", "stress/100", 200)
	b := NewRow("rush", "rush/attempt", 202, 410)
	start := time.Now()
	for i := range 1000 {
		d := time.Duration(i+1) * time.Microsecond
		switch {
		case i < 990:
			a.Answer(200, start, d)
			b.Answer(410, start, 2*d)
		case i < 995:
			a.Answer(503, start, d)
			a.Unexpected(503, "service_unavailable")
			b.Answer(429, start, d)
		default:
			a.Fail(ErrKindTimeout, start, d)
			b.Fail(ErrKindConn, start, d)
		}
	}
	empty := NewRow("browse", "browse/page", 200)
	return []RowReport{a.Snapshot(2 * time.Second), b.Snapshot(time.Second), empty.Snapshot(time.Second)}
}

func TestRowSnapshot(t *testing.T) {
	rows := sampleRows()
	a := rows[0]
	if a.Requests != 1000 || a.OK != 990 || a.SuccessRate != 0.99 || a.RPS != 500 {
		t.Fatalf("row %+v: want 1000 requests, 990 ok, 99%%, 500/s", a)
	}
	if a.Answers["200"] != 990 || a.Errors["503 service_unavailable"] != 5 || a.Errors["503"] != 0 || a.Errors[ErrKindTimeout] != 5 {
		t.Fatalf("answers %v errors %v: want 200:990, 503 service_unavailable:5, timeout:5", a.Answers, a.Errors)
	}
	if a.Latency.P50US < 495 || a.Latency.P50US > 502 || a.Latency.MaxUS != 995 {
		t.Fatalf("latency %+v: want p50 near 498µs (of the 995 answered), max 995µs", a.Latency)
	}
	if b := rows[1]; b.Errors["429"] != 5 || b.Errors[ErrKindConn] != 5 || b.Answers["410"] != 990 {
		t.Fatalf("row b answers %v errors %v", b.Answers, b.Errors)
	}
	if len(a.Curve) == 0 || a.Curve[0].Percentile != 0 || a.Curve[len(a.Curve)-1].Percentile != 100 {
		t.Fatalf("curve %v: want points from 0 to 100 percent", a.Curve)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleRows()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"requests", "success", "mean", "p50", "p99", "p99.9", "req/s", "answers", "errors"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %q", lines[0], want)
		}
	}
	for i, want := range [][]string{
		{"stress/100", "1000", "99.00%", "500", "200:990", "503 service_unavailable:5", "timeout:5"},
		{"rush/attempt", "410:990", "429:5", "connection:5"},
		{"browse/page", "0", "-"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i, lines[i+1], w)
			}
		}
	}
	// Columns line up: "requests" ends where every count ends.
	end := strings.Index(lines[0], "requests") + len("requests")
	for _, l := range lines[1:] {
		if l[end-1] == ' ' {
			t.Errorf("requests column misaligned in %q", l)
		}
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	rep := NewReport("load -scenario rush", "http://127.0.0.1:8000", true)
	rep.Rows = sampleRows()
	rep.Rush = &RushReport{Sale: "s1", Stock: 10, Invariants: []Check{{Name: "winners", OK: true, Detail: "10"}}, InvariantsOK: true,
		Ledger: json.RawMessage(`{"initial":10}`)}
	rep.Note(io.Discard, "rate limits off")
	path := filepath.Join(t.TempDir(), "sub", "out.json")
	if err := WriteJSON(path, rep); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if len(back.Rows) != 3 || back.Rows[0].Name != "stress/100" || back.Rows[0].Requests != 1000 || back.Rows[0].Latency != rep.Rows[0].Latency {
		t.Fatalf("rows after the round trip: %+v", back.Rows)
	}
	var ledger bytes.Buffer
	if back.Rush != nil {
		_ = json.Compact(&ledger, back.Rush.Ledger)
	}
	if back.Rush == nil || back.Rush.Sale != "s1" || !back.Rush.InvariantsOK || ledger.String() != `{"initial":10}` {
		t.Fatalf("rush after the round trip: %+v", back.Rush)
	}
	if !back.OK || len(back.Notes) != 1 || back.Machine.CPUs < 1 || back.Target != "http://127.0.0.1:8000" {
		t.Fatalf("report after the round trip: %+v", back)
	}
}

// parseSVG checks doc is well-formed XML with an <svg> root and counts its elements by name.
func parseSVG(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	counts := map[string]int{}
	depth := 0
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = e.Name.Local
				if e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q, want the SVG namespace", e.Name.Space)
				}
			}
			depth++
			counts[e.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	if root != "svg" || depth != 0 {
		t.Fatalf("root %q, depth at the end %d: want a closed <svg>", root, depth)
	}
	return counts
}

func TestPlotSVG(t *testing.T) {
	rows := sampleRows()
	rows[0].Name = `stress/<100> & "more"` // names are escaped
	path := filepath.Join(t.TempDir(), "plot.svg")
	if err := WritePlot(path, "load: stress & rush", rows); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := parseSVG(t, doc)
	if counts["polyline"] != 2 {
		t.Errorf("%d polylines, want one per row with samples (2)", counts["polyline"])
	}
	if !bytes.Contains(doc, []byte("stress/&lt;100&gt; &amp; &#34;more&#34;")) {
		t.Errorf("row name not escaped:\n%s", doc)
	}

	var empty bytes.Buffer
	if err := Plot(&empty, "nothing", nil); err != nil {
		t.Fatal(err)
	}
	if c := parseSVG(t, empty.Bytes()); c["polyline"] != 0 || !strings.Contains(empty.String(), "no samples") {
		t.Errorf("empty plot: %v\n%s", c, empty.String())
	}
}
