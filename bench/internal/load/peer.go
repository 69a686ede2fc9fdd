package load

import (
	"context"
	"os"
	"time"

	"flashedge/bench/internal/nginxpeer"
)

// peerRun is the nginx + Lua peer (bench/internal/nginxpeer) started by a scenario on the run's
// store, pinned like the spawned stack (-server-cpu). Stop it with Stop.
type peerRun struct {
	*nginxpeer.Peer
	// target is the write server (admissions, cart adds); lru the lrucache product reads.
	target, lru Target
	dir         string
}

// Stop stops nginx and removes its directory.
func (p *peerRun) Stop() {
	p.Peer.Stop()
	os.RemoveAll(p.dir)
}

// cpu is the CPU time used so far by nginx (master and worker) and, when the stack was spawned,
// the store: the processes on the peer's path.
func (p *peerRun) cpu(cfg Config) func() map[string]time.Duration {
	return func() map[string]time.Duration {
		out := map[string]time.Duration{"nginx": procCPU(p.Pid())}
		if cfg.CPUByProcess != nil {
			out["store"] = cfg.CPUByProcess()["store"]
		}
		return out
	}
}

// startPeer starts the peer for scenario what with nc's settings (Dir, StoreAddr and CPU are
// filled in). It returns the peer and a copy of cfg whose CPUByProcess reports the peer's
// processes, or nil and why the peer cannot run.
func startPeer(ctx context.Context, cfg Config, what string, nc nginxpeer.Config) (*peerRun, Config, string) {
	if cfg.StoreAddr == "" {
		return nil, cfg, "no store address (run with -spawn, or -store)"
	}
	if err := nginxpeer.Check(nc); err != nil {
		return nil, cfg, err.Error()
	}
	dir, err := os.MkdirTemp("", "flashedge-"+what+"-nginx-*")
	if err != nil {
		return nil, cfg, err.Error()
	}
	nc.Dir, nc.StoreAddr, nc.CPU = dir, cfg.StoreAddr, cfg.ServerCPU
	p, err := nginxpeer.Start(ctx, nc)
	if err != nil {
		os.RemoveAll(dir)
		return nil, cfg, err.Error()
	}
	run := &peerRun{Peer: p, dir: dir}
	if run.target, err = ParseTarget(p.AdmitBase); err == nil {
		run.lru, err = ParseTarget(p.LRUBase)
	}
	if err != nil {
		run.Stop()
		return nil, cfg, err.Error()
	}
	pcfg := cfg
	pcfg.CPUByProcess = run.cpu(cfg)
	return run, pcfg, ""
}
