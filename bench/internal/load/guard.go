package load

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Target is a checked base URL: plain HTTP on a loopback address.
type Target struct {
	// Base is the URL without a trailing slash, such as "http://127.0.0.1:8000".
	Base string
	// Addr is host:port to dial.
	Addr string
	// Host is the Host header to send.
	Host string
}

// ParseTarget accepts only http:// URLs whose host is "localhost" or a loopback IP address
// (127.0.0.0/8, ::1), with no path beyond "/": this tool generates load, and load goes to this
// machine only. Anything else is refused with an error saying so.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("load: target %q: %v", raw, err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("load: target %q: only http:// on loopback is supported", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return Target{}, fmt.Errorf("load: target %q: give the base URL only, such as http://127.0.0.1:8000", raw)
	}
	host := u.Hostname()
	if !IsLoopbackHost(host) {
		return Target{}, fmt.Errorf("load: refusing target %q: %q is not a loopback address; load is only ever sent to this machine (127.0.0.1, ::1 or localhost)", raw, host)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	dial := host
	if strings.EqualFold(host, "localhost") {
		dial = "127.0.0.1" // never trust a resolver with where the load goes
	}
	addr := net.JoinHostPort(dial, port)
	return Target{Base: "http://" + u.Host, Addr: addr, Host: u.Host}, nil
}

// IsLoopbackHost reports whether host (without port or brackets) is "localhost" or a loopback
// IP literal. Other names are refused without resolving them: a name's address can change.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
