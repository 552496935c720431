//go:build functional

package agent_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	quiesceHostNQN = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
	quiesceBootVol = "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"
)

type quiesceStatus struct {
	Quiesced       bool      `json:"quiesced"`
	Supported      bool      `json:"supported"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	Functions      []string  `json:"functions"`
	MaxHoldSeconds float64   `json:"max_hold_seconds"`
	ResumeReason   string    `json:"resume_reason"`
	LastError      string    `json:"last_error"`
}

// The real agent (sim driver, SPDK emulator) serves quiesce/unquiesce of
// RPC API 1.3 to Python oslo.messaging: the host's controller is paused
// (the sim's record of what the host sees) until unquiesce, the hold's end,
// or the agent's stop or restart, whichever comes first; get_status and
// get_state show it.
func TestQuiesceOverOsloMessaging(t *testing.T) {
	emu := spdktest.StartT(t, spdktest.Options{Remotes: []spdktest.RemoteSubsystem{spdktest.CinderVolume(quiesceBootVol, quiesceHostNQN, "4420")}})
	stateDir := filepath.Join(t.TempDir(), "state")
	dir := t.TempDir()
	p := agentproc.StartT(t, bin, map[string]map[string]string{
		"DEFAULT":   {"transport_url": broker.URL(), "node_uuid": node, "state_dir": stateDir, "reconcile_interval": "2s"},
		"dpu":       {"driver": "sim"},
		"spdk":      {"rpc_socket": emu.Socket()},
		"ovs":       {"ovsdb_connection": "unix:" + filepath.Join(dir, "no-ovsdb.sock")},
		"storage":   {"host_nqn": quiesceHostNQN, "quiesce_max_hold": "1h"}, // only hold_seconds ends a pause within the test
		"spdk_nvmf": {"transport": "TCP", "listen_address": "127.0.0.1", "listen_port": "4430"},
	})
	c := client(t)
	if st := waitServing(t, c); st["rpc_api_version"] != "1.3" {
		t.Fatalf("get_status: %v", st)
	}
	pf0 := drivers.HostSubsystemNQN(node, nodestate.Function{PF: 0})
	paused := func() map[string]string {
		m, err := sim.ReadPauseFile(filepath.Join(stateDir, sim.PauseFileName))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	status := func() quiesceStatus {
		var st struct {
			Quiesce *quiesceStatus `json:"quiesce"`
		}
		if err := c.Call(osloclient.Req{Method: "get_status"}, &st); err != nil || st.Quiesce == nil {
			t.Fatalf("get_status: %+v %v", st, err)
		}
		return *st.Quiesce
	}
	call := func(method string, args map[string]any) (quiesceStatus, error) {
		var st quiesceStatus
		err := c.Call(osloclient.Req{Method: method, Version: "1.3", Args: args}, &st)
		return st, err
	}

	// Nothing to pause yet: the host has no controller.
	if _, err := call("quiesce", nil); remoteErr(t, err).Class != "Conflict" {
		t.Fatalf("quiesce without a controller: %v", err)
	}
	vol := map[string]any{"volume_id": quiesceBootVol, "boot_index": 0, "connection_info": map[string]any{
		"driver_volume_type": "nvmeof", "data": map[string]any{"nqn": "nqn.2010-10.org.openstack:volume-" + quiesceBootVol,
			"target_portal": "127.0.0.1", "target_port": 4420, "transport_type": "tcp", "ns_id": 1}}}
	if err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": map[string]any{
		"generation": 1, "node_uuid": node, "volumes": []any{vol}, "vifs": []any{}}}}, nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, 100*time.Millisecond, "boot volume attached", func() bool {
		var v struct {
			Observed struct {
				Volumes []struct {
					State string `json:"state"`
				} `json:"volumes"`
			} `json:"observed"`
		}
		_ = c.Call(osloclient.Req{Method: "get_state"}, &v)
		return len(v.Observed.Volumes) == 1 && v.Observed.Volumes[0].State == "attached"
	})

	t.Run("quiesce and unquiesce", func(t *testing.T) {
		st, err := call("quiesce", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Quiesced || !st.Supported || !reflect.DeepEqual(st.Functions, []string{"pf0"}) || st.MaxHoldSeconds != 3600 ||
			st.Until.Sub(st.Since) != time.Hour {
			t.Fatalf("quiesce: %+v", st)
		}
		if got := paused(); !reflect.DeepEqual(got, map[string]string{"pf0": pf0}) {
			t.Fatalf("host after quiesce: %v", got)
		}
		if s := status(); !s.Quiesced || !s.Until.Equal(st.Until) {
			t.Fatalf("get_status: %+v", s)
		}
		var v struct {
			Observed struct {
				Quiesce quiesceStatus `json:"quiesce"`
			} `json:"observed"`
		}
		if err := c.Call(osloclient.Req{Method: "get_state"}, &v); err != nil || !v.Observed.Quiesce.Quiesced {
			t.Fatalf("get_state: %+v %v", v, err)
		}
		// idempotent both ways
		if st2, err := call("quiesce", nil); err != nil || !st2.Since.Equal(st.Since) || len(paused()) != 1 {
			t.Fatalf("second quiesce: %+v %v", st2, err)
		}
		for range 2 {
			st, err = call("unquiesce", nil)
			if err != nil || st.Quiesced || st.ResumeReason != "unquiesce" || len(paused()) != 0 {
				t.Fatalf("unquiesce: %+v %v, host %v", st, err, paused())
			}
		}
	})

	t.Run("bad holds refused", func(t *testing.T) {
		for _, h := range []any{0, 3601, "5"} {
			if re := remoteErr(t, func() error { _, err := call("quiesce", map[string]any{"hold_seconds": h}); return err }()); re.Class != "InvalidParameterValue" ||
				!strings.Contains(re.Message, "hold_seconds") {
				t.Fatalf("hold %v: %+v", h, re)
			}
		}
		if len(paused()) != 0 {
			t.Fatalf("a refused quiesce paused %v", paused())
		}
	})

	t.Run("resumes by itself at the hold's end", func(t *testing.T) {
		start := time.Now()
		if _, err := call("quiesce", map[string]any{"hold_seconds": 1.5}); err != nil || len(paused()) != 1 {
			t.Fatalf("quiesce: %v, host %v", err, paused())
		}
		// A watchdog: the max hold (an hour) cannot resume it within it.
		poll.Until(t, time.Minute, 50*time.Millisecond, "resume at the hold's end", func() bool { return len(paused()) == 0 && !status().Quiesced })
		// A lower bound: load can delay the resume, never advance it.
		if took := time.Since(start); took < 1400*time.Millisecond {
			t.Fatalf("resumed after %v", took)
		}
		if s := status(); s.Quiesced || s.ResumeReason != "hold expired" {
			t.Fatalf("status: %+v", s)
		}
	})

	t.Run("a crashed agent's pause is resumed at start, a stopped agent's at stop", func(t *testing.T) {
		if _, err := call("quiesce", nil); err != nil {
			t.Fatal(err)
		}
		p.Stop(syscall.SIGKILL)
		if got := paused(); len(got) != 1 {
			t.Fatalf("the crash itself resumed: %v", got)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		waitServing(t, c)
		poll.Until(t, 10*time.Second, 50*time.Millisecond, "resume after restart", func() bool { return len(paused()) == 0 && !status().Quiesced })
		if s := status(); s.Quiesced || s.ResumeReason != "agent restart" {
			t.Fatalf("status after restart: %+v", s)
		}
		if _, err := call("quiesce", nil); err != nil || len(paused()) != 1 {
			t.Fatalf("quiesce: %v %v", err, paused())
		}
		p.Stop(syscall.SIGTERM)
		if got := paused(); len(got) != 0 {
			t.Fatalf("still paused after a clean stop: %v", got)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		waitServing(t, c)
	})

	t.Run("a call of 1.4 is refused before anything is paused", func(t *testing.T) {
		re := remoteErr(t, c.Call(osloclient.Req{Method: "quiesce", Version: "1.4"}, nil))
		if re.Class != "UnsupportedVersion" || len(paused()) != 0 {
			t.Fatalf("1.4: %+v, host %v", re, paused())
		}
	})
}
