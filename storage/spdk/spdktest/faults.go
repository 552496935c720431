package spdktest

import (
	"encoding/json"
	"time"
)

// Lost paths over time, as c-faults.jsonl (c) recorded them. A path whose
// target stops listening is "reconnect_is_delayed" (reconnect_delay_sec > 0,
// retried every delay) or "failed" (delay 0); a finite ctrlr_loss_timeout_sec
// deletes the path that long after the failure, and with its last path the
// controller, its bdevs and the namespaces exporting them. A path whose
// target is back is "enabled" again at its next reconnect. The state moves
// when a request arrives, which is when a client can see it.

// listenKey is one subsystem on one transport address.
type listenKey struct{ nqn, trtype, traddr, trsvcid string }

func addListening(set map[listenKey]bool, rs []RemoteSubsystem) {
	for _, r := range rs {
		for _, l := range r.Listeners {
			tt, _ := canonTrtype(l.Trtype)
			set[listenKey{r.NQN, tt, l.Traddr, l.Trsvcid}] = true
		}
	}
}

// listening is what the targets serve now. It takes each emulator's lock in
// turn, never two at once.
func (e *Emulator) listening() map[listenKey]bool {
	set := map[listenKey]bool{}
	e.mu.Lock()
	addListening(set, e.remotes)
	addListening(set, e.st.exportedTCP())
	e.mu.Unlock()
	for _, p := range e.opts.Peers {
		p.mu.Lock()
		addListening(set, p.st.exportedTCP())
		p.mu.Unlock()
	}
	return set
}

// pathTick is the default of how often pathLoop looks at the targets: a target that comes
// back is noticed within it, as bdev_nvme's pollers would.
const pathTick = 25 * time.Millisecond

// pathLoop moves the path states while the emulator runs, so a controller is
// deleted on time even when nobody asks.
func (e *Emulator) pathLoop(stop chan struct{}) {
	defer e.wg.Done()
	tick := e.opts.PathTick
	if tick <= 0 {
		tick = pathTick
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			e.advancePaths(now)
		}
	}
}

// advancePaths brings every path state to now.
func (e *Emulator) advancePaths(now time.Time) {
	e.mu.Lock()
	idle := len(e.st.ctrlrs) == 0
	e.mu.Unlock()
	if idle { // no bdev_nvme controller (a target, an idle DPU): no path to move
		return
	}
	up := e.listening()
	e.mu.Lock()
	defer e.mu.Unlock()
	var gone []string
	keep := e.st.ctrlrs[:0]
	for _, c := range e.st.ctrlrs {
		paths := c.paths[:0]
		for _, p := range c.paths {
			t := p.trid
			if p.advance(up[listenKey{t.Subnqn, t.Trtype, t.Traddr, t.Trsvcid}], now) {
				paths = append(paths, p)
			}
		}
		c.paths = paths
		if len(paths) == 0 {
			gone = append(gone, c.bdevs...)
			continue
		}
		keep = append(keep, c)
	}
	e.st.ctrlrs = keep
	if len(gone) > 0 {
		e.st.removeBdevs(gone)
	}
}

// advance moves one path; false means ctrlr_loss_timeout_sec deleted it.
func (p *nvmePath) advance(reachable bool, now time.Time) bool {
	if !reachable {
		p.upSince = time.Time{}
		if p.downSince.IsZero() {
			p.downSince = now
		}
		if p.loss > 0 && now.Sub(p.downSince) >= time.Duration(p.loss)*time.Second {
			return false
		}
		p.state = "failed"
		if p.delay > 0 {
			p.state = "reconnect_is_delayed"
		}
		return true
	}
	if p.downSince.IsZero() {
		return true
	}
	if p.upSince.IsZero() {
		p.upSince = now
	}
	if p.delay > 0 {
		// Reconnects are tried every delay from the failure: the first one
		// after the target came back succeeds.
		d := time.Duration(p.delay) * time.Second
		k := (p.upSince.Sub(p.downSince) + d - 1) / d
		if now.Before(p.downSince.Add(k * d)) {
			return true
		}
	}
	p.state = "enabled"
	p.downSince, p.upSince = time.Time{}, time.Time{}
	return true
}

// debugRemote serves spdktest_remove_remote {"nqn"} and spdktest_add_remote
// (a RemoteSubsystem), so a test can take a Cinder target away from an
// emulator run as a process.
func (e *Emulator) debugRemote(method string, params json.RawMessage) (any, error) {
	if method == "spdktest_remove_remote" {
		var p struct {
			NQN *string `json:"nqn"`
		}
		if err := decodeStrict(params, &p); err != nil || p.NQN == nil {
			return nil, errInvalidParams
		}
		e.RemoveRemote(*p.NQN)
		return true, nil
	}
	var r RemoteSubsystem
	if err := decodeStrict(params, &r); err != nil || r.NQN == "" {
		return nil, errInvalidParams
	}
	e.AddRemote(r)
	return true, nil
}
