package connlimit

import (
	"net"
	"testing"
	"time"
)

func TestCapPerAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, 3)
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range 3 {
		dial("127.0.0.5")
		held = append(held, <-accepted)
	}
	over := dial("127.0.0.5")
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("a fourth connection from one address was kept open")
	}
	if l.Refused() != 1 {
		t.Fatalf("Refused() = %d, want 1", l.Refused())
	}
	dial("127.0.0.6") // another address is not affected
	select {
	case c := <-accepted:
		held = append(held, c)
	case <-time.After(5 * time.Second):
		t.Fatal("another address's connection was not accepted")
	}
	held[0].Close() // a slot frees up
	dial("127.0.0.5")
	select {
	case c := <-accepted:
		held = append(held, c)
	case <-time.After(5 * time.Second):
		t.Fatal("a connection after one closed was not accepted")
	}
	for _, c := range held {
		c.Close()
	}
	if n := l.Tracked(); n != 0 {
		t.Fatalf("%d addresses tracked after every connection closed", n)
	}
}
