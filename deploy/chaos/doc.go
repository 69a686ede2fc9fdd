// Package chaos holds the fault-injection tests of flashedge (issue 5): they run the real
// binaries through deploy/stack on loopback, break something on purpose (SIGKILL a service,
// put a shared/netfault proxy with latency, resets or a black hole between two processes,
// restart the store, SIGTERM a service in the middle of its work) and check over real HTTP
// what shoppers and admins get while it is broken and how fast it heals. Each test prints its
// measured figures in one summary line (t.Logf), so `go test -v ./deploy/chaos/` is the
// source of the figures quoted in the README.
//
// Every test is bounded in request count and wall time; the package runs in about a minute on
// two cores. TestStaleIfErrorBound, which waits out the edge's 60s stale-if-error bound, runs
// only with FLASHEDGE_CHAOS_FULL=1. The package has no code besides the tests.
package chaos
