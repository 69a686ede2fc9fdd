package proc

import (
	"net"
	"strconv"
	"testing"
)

// Ports given out are distinct even while nothing binds them (the kernel's port 0 repeats), and
// each one can be bound.
func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < portLow || port >= portLow+portSpan {
			t.Fatalf("port %d outside [%d, %d)", port, portLow, portLow+portSpan)
		}
		if seen[port] {
			t.Fatalf("port %d given twice", port)
		}
		seen[port] = true
	}
	for port := range seen {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		l.Close()
		break
	}
}

// A claim is exclusive: the second caller for the same port is refused.
func TestClaimIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if !claim(dir, port) {
		t.Fatal("first claim refused")
	}
	if claim(dir, port) {
		t.Fatal("second claim of the same port granted")
	}
}
