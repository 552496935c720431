//go:build functional

package stack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
)

// linesWith returns the agent log lines holding every one of subs.
func linesWith(log string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// One request is traceable on the DPU: the request_id and global_request_id
// a Python oslo.messaging caller puts in the message context are on the
// RPC line, the admission line, the SPDK and OVSDB changes of the reconcile
// it caused, and in the generation record get_state shows.
func TestRequestIDsTraceAdmissionAndReconcile(t *testing.T) {
	ctx := context.Background()
	const port = "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a07"
	for _, cmd := range [][]string{
		{"--may-exist", "ls-add", "net-trace"},
		{"--may-exist", "lsp-add", "net-trace", port}, {"lsp-set-addresses", port, "fa:16:3e:00:00:07 10.0.7.11"},
	} {
		if out, err := stack.Nbctl(ctx, cmd...); err != nil {
			t.Fatalf("ovn-nbctl %v: %v %s", cmd, err, out)
		}
	}
	p := startAgent(t)
	c := pyClient(t)
	const rid, grid = "req-3b1f6a2e-0c4d-4e8f-9a7b-1d2c3e4f5a61", "req-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c61"
	boot := 0
	state := map[string]any{"generation": 1, "volumes": []any{oldFormat(volA, &boot)},
		"vifs": []any{map[string]any{"port_id": port, "mac": "fa:16:3e:00:00:07", "function": map[string]any{"pf": 0, "vf": 5}}}}
	var view struct {
		Observed struct {
			Generation int64 `json:"generation"`
		} `json:"observed"`
		Admission struct {
			Generation      int64  `json:"generation"`
			Method          string `json:"method"`
			RequestID       string `json:"request_id"`
			GlobalRequestID string `json:"global_request_id"`
			Time            string `json:"time"`
		} `json:"admission"`
	}
	// API 1.1: the answer waits for the reconcile.
	if err := c.Call(osloclient.Req{Method: "apply_state", Version: "1.1", Args: map[string]any{"state": state, "wait": 15},
		RequestID: rid, GlobalRequestID: grid}, &view); err != nil {
		t.Fatal(err)
	}
	if view.Observed.Generation != 1 {
		t.Fatalf("apply_state(wait) answered before converging: %+v", view)
	}
	a := view.Admission
	if a.Generation != 1 || a.Method != "apply_state" || a.RequestID != rid || a.GlobalRequestID != grid || a.Time == "" {
		t.Fatalf("admission record %+v", a)
	}
	log := p.Log()
	for _, msg := range []string{"rpc method done", "desired state admitted", "exposing", "plugged vif", "reconciled"} {
		if len(linesWith(log, msg, rid, grid)) == 0 {
			t.Errorf("no %q line with both request ids; lines with %q:\n%s", msg, msg, strings.Join(linesWith(log, msg), "\n"))
		}
	}
	// The SPDK and OVSDB changes carry the ids of the request behind them:
	// a detach by another request logs that request's ids.
	const rid2, grid2 = "req-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c41", "req-5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d11"
	if err := c.Call(osloclient.Req{Method: "unplug_vif", Args: map[string]any{"port_id": port}, RequestID: rid2, GlobalRequestID: grid2}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unplug's log line", 10e9, func() bool { return len(linesWith(p.Log(), "unplugged vif", port)) > 0 })
	if got := linesWith(p.Log(), "unplugged vif", rid2, grid2); len(got) == 0 {
		t.Fatalf("unplug line without the unplug's ids:\n%s", strings.Join(linesWith(p.Log(), "unplugged vif"), "\n"))
	}
	if got := linesWith(p.Log(), "unplugged vif", rid); len(got) != 0 {
		t.Fatalf("unplug line with the earlier request's id: %s", got[0])
	}
}
