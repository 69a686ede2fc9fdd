package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestAdmitFigures checks the arithmetic of an admit row: CPU per admission summed over the
// processes and split by process, store commands and scripts per admission, and the printed
// ratio to the peer.
func TestAdmitFigures(t *testing.T) {
	a := admitSnap{cpu: map[string]time.Duration{"edge": time.Second, "store": 0}, cmds: 100, scripts: 10, storeCountsRead: true}
	b := admitSnap{cpu: map[string]time.Duration{"edge": 3 * time.Second, "store": time.Second}, cmds: 100 + 4000, scripts: 10 + 1000, storeCountsRead: true}
	var row AdmitRow
	row.fill(a, b, 1000)
	if row.CPUPerAdmissionUS != 3000 || row.CPUByProcessUS["edge"] != 2000 || row.CPUByProcessUS["store"] != 1000 {
		t.Errorf("CPU per admission %v by process %v, want 3000 (edge 2000, store 1000)", row.CPUPerAdmissionUS, row.CPUByProcessUS)
	}
	if row.StoreCmdsPerAdmission != 4 || row.StoreScriptsPerAdmission != 1 {
		t.Errorf("store commands %v scripts %v per admission, want 4 and 1", row.StoreCmdsPerAdmission, row.StoreScriptsPerAdmission)
	}
	var none AdmitRow
	none.fill(a, b, 0)
	if none.CPUPerAdmissionUS != 0 || none.CPUByProcessUS != nil {
		t.Errorf("no admissions: got %+v, want no figures", none)
	}
	var out bytes.Buffer
	peer := row
	peer.Name, peer.CPUPerAdmissionUS = "peer", 1500
	WriteAdmit(&out, &AdmitReport{Rows: []AdmitRow{row, peer, {Name: "gone", Skipped: "nginx missing"}}, Ratio: 0.5, CPURatio: 2})
	for _, want := range []string{"edge 2000.0, store 1000.0", "0.50x admissions per second", "2.00x CPU per admission", "gone", "skipped: nginx missing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
