package storage_test

// The quiesce hold (pause and resume of the host's controllers) with the
// BlueField SNAP driver on the SNAP emulator and with the sim driver.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

var (
	_ agent.HostQuiescer = (*storage.Hold)(nil)
	_ storage.Quiescer   = (*bluefield.Storage)(nil)
	_ storage.Quiescer   = (*sim.Storage)(nil)
)

// snapNode is one agent process on the SNAP emulator: driver, hold and
// reconciler sharing the hold's file (a new snapNode on the same dir is an
// agent restart).
type snapNode struct {
	drv  *bluefield.Storage
	hold *storage.Hold
	r    *storage.Reconciler
}

func newSNAPNode(t *testing.T, emu *spdktest.Emulator, dir string, maxHold time.Duration) *snapNode {
	t.Helper()
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	drv, err := bluefield.NewStorage(bluefield.StorageOptions{Client: cl, NodeUUID: nodeUUID})
	if err != nil {
		t.Fatal(err)
	}
	hold, err := storage.NewHold(storage.HoldOptions{Driver: drv, DriverName: "bluefield",
		File: filepath.Join(dir, storage.QuiesceFileName), MaxHold: maxHold, RetryMax: 200 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := storage.New(storage.Options{Client: cl, Storage: storageOpts(), NodeUUID: nodeUUID, Driver: drv, Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	return &snapNode{drv: drv, hold: hold, r: r}
}

func runHold(t *testing.T, h *storage.Hold) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// Quiesce suspends every SNAP controller of the node with the documented
// call and key alone, unquiesce resumes them; both are idempotent; a
// restart resumes what the crashed agent left paused, and its first
// reconcile does not resume a function the record still holds.
func TestQuiesceSNAP(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPNoInitConfig: true, SNAPPFs: 1, SNAPVFs: 4})
	if err := emu.EnableSRIOV(0, 4); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := newSNAPNode(t, emu, dir, time.Minute)
	if err := n.r.Reconcile(context.Background(), desired(bootVol(), onVF(data2(), 0, 2))); err != nil {
		t.Fatal(err)
	}
	states := func() map[string]string {
		out := map[string]string{}
		for k, v := range host(emu) {
			out[k] = strings.Fields(v)[1]
		}
		return out
	}
	if got := states(); !reflect.DeepEqual(got, map[string]string{"pf0": "running", "pf0vf2": "running"}) {
		t.Fatalf("before quiesce: %v", got)
	}
	ctx := context.Background()
	before := time.Now()
	st, err := n.hold.Quiesce(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := states(); !reflect.DeepEqual(got, map[string]string{"pf0": "suspended", "pf0vf2": "suspended"}) {
		t.Fatalf("after quiesce: %v", got)
	}
	if !st.Quiesced || !st.Supported || st.Until == nil || st.Since == nil || st.Until.Sub(*st.Since) != time.Minute || st.Since.Before(before.Add(-time.Second)) ||
		!reflect.DeepEqual(st.Functions, []string{"pf0", "pf0vf2"}) || st.MaxHoldSeconds != 60 {
		t.Fatalf("status: %+v", st)
	}
	for _, p := range emu.Params("nvme_controller_suspend") {
		if k := paramKeys(t, p); !reflect.DeepEqual(k, []string{"ctrl_id"}) {
			t.Fatalf("nvme_controller_suspend sent %s", p)
		}
	}
	// A repeat suspends nothing again and moves the deadline.
	emu.ResetCalls()
	st2, err := n.hold.Quiesce(ctx, 30*time.Second)
	if err != nil || emu.Calls("nvme_controller_suspend") != 0 || !st2.Until.Before(*st.Until) || !st2.Since.Equal(*st.Since) {
		t.Fatalf("repeat: %+v %v, %d suspend calls", st2, err, emu.Calls("nvme_controller_suspend"))
	}
	// A reconcile meanwhile leaves the host paused.
	if err := n.r.Reconcile(ctx, desired(bootVol(), onVF(data2(), 0, 2))); err != nil {
		t.Fatal(err)
	}
	if emu.Calls("nvme_controller_resume") != 0 {
		t.Fatalf("reconcile resumed a quiesced controller: %v", emu.CallCounts())
	}

	// The agent crashes: the next one restores the record, its reconcile
	// (a fresh driver knows of no resumed controller) leaves the held
	// functions alone, and Run resumes them.
	m := newSNAPNode(t, emu, dir, time.Minute)
	if st := m.hold.Status(); !st.Quiesced || !reflect.DeepEqual(st.Functions, []string{"pf0", "pf0vf2"}) {
		t.Fatalf("restored status: %+v", st)
	}
	emu.ResetCalls()
	if err := m.r.Reconcile(ctx, desired(bootVol(), onVF(data2(), 0, 2))); err != nil {
		t.Fatal(err)
	}
	if got := states(); emu.Calls("nvme_controller_resume") != 0 || got["pf0"] != "suspended" {
		t.Fatalf("reconcile after restart: %v, calls %v", got, emu.CallCounts())
	}
	runHold(t, m.hold)
	poll.Until(t, 5*time.Second, 20*time.Millisecond, "restart resumes", func() bool { return !m.hold.Status().Quiesced })
	if got := states(); !reflect.DeepEqual(got, map[string]string{"pf0": "running", "pf0vf2": "running"}) {
		t.Fatalf("after restart: %v", got)
	}
	if st := m.hold.Status(); st.ResumeReason != storage.ResumeRestart || st.ResumedAt == nil {
		t.Fatalf("restart status: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.QuiesceFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("record left after the resume: %v", err)
	}

	// quiesce, then unquiesce twice.
	if _, err := m.hold.Quiesce(ctx, 0); err != nil {
		t.Fatal(err)
	}
	st, err = m.hold.Unquiesce(ctx)
	if err != nil || st.Quiesced || st.ResumeReason != storage.ResumeUnquiesce {
		t.Fatalf("unquiesce: %+v %v", st, err)
	}
	if got := states(); got["pf0"] != "running" || got["pf0vf2"] != "running" {
		t.Fatalf("after unquiesce: %v", got)
	}
	emu.ResetCalls()
	if st, err := m.hold.Unquiesce(ctx); err != nil || st.Quiesced || emu.TotalCalls() != 0 {
		t.Fatalf("second unquiesce: %+v %v, calls %v", st, err, emu.CallCounts())
	}
}

// A pause that fails resumes everything and reports the error; a resume
// that fails keeps the record, says so, and is retried until it works.
func TestQuiesceFailures(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPNoInitConfig: true, SNAPPFs: 1})
	n := newSNAPNode(t, emu, t.TempDir(), time.Minute)
	ctx := context.Background()
	if err := n.r.Reconcile(ctx, desired(bootVol())); err != nil {
		t.Fatal(err)
	}
	emu.InjectError("nvme_controller_suspend", -5, "Input/output error")
	st, err := n.hold.Quiesce(ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "pause host controller pf0") || st.Quiesced ||
		st.ResumeReason != storage.ResumeFailed || !strings.Contains(st.LastError, "Input/output error") {
		t.Fatalf("failed pause: %+v %v", st, err)
	}
	if h := host(emu)["pf0"]; !strings.Contains(h, "running") {
		t.Fatalf("host after a failed pause: %s", h)
	}

	runHold(t, n.hold)
	if _, err := n.hold.Quiesce(ctx, 0); err != nil {
		t.Fatal(err)
	}
	emu.InjectError("nvme_controller_resume", -5, "Input/output error")
	st, err = n.hold.Unquiesce(ctx)
	if err == nil || !st.Quiesced || !strings.Contains(st.LastError, "resume host controller pf0") {
		t.Fatalf("failed resume: %+v %v", st, err)
	}
	poll.Until(t, 5*time.Second, 20*time.Millisecond, "resume retried", func() bool { return !n.hold.Status().Quiesced })
	if st := n.hold.Status(); st.ResumeReason != storage.ResumeUnquiesce || st.LastError != "" || !strings.Contains(host(emu)["pf0"], "running") {
		t.Fatalf("after the retry: %+v, host %v", st, host(emu))
	}
}

// simNode is the sim driver (spdk-nvmf on the emulator) with a pause file.
func simNode(t *testing.T, emu *spdktest.Emulator, dir string, maxHold time.Duration) (*sim.Storage, *storage.Hold, *storage.Reconciler) {
	t.Helper()
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	drv, err := sim.NewStorage(cl, nodeUUID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	drv.WithPauseFile(filepath.Join(dir, sim.PauseFileName))
	hold, err := storage.NewHold(storage.HoldOptions{Driver: drv, DriverName: "sim", File: filepath.Join(dir, storage.QuiesceFileName), MaxHold: maxHold})
	if err != nil {
		t.Fatal(err)
	}
	r, err := storage.New(storage.Options{Client: cl, Storage: storageOpts(), NodeUUID: nodeUUID, Driver: drv, Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	return drv, hold, r
}

// The agent resumes by itself once the max hold passed (a crashed Nova
// never sends unquiesce), and when it stops; a hold longer than the max is
// refused before anything is paused.
func TestQuiesceMaxHoldAndStop(t *testing.T) {
	emu := newEmu(t)
	dir := t.TempDir()
	drv, hold, r := simNode(t, emu, dir, 400*time.Millisecond)
	ctx := context.Background()
	if err := r.Reconcile(ctx, desired(bootVol())); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Second, -time.Second} {
		if _, err := hold.Quiesce(ctx, d); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "quiesce_max_hold") {
			t.Fatalf("hold %v: %v", d, err)
		}
	}
	if len(drv.Paused()) != 0 {
		t.Fatalf("refused hold paused %v", drv.Paused())
	}
	stop := runHold(t, hold)
	start := time.Now()
	if _, err := hold.Quiesce(ctx, 0); err != nil {
		t.Fatal(err)
	}
	onDisk, err := sim.ReadPauseFile(filepath.Join(dir, sim.PauseFileName))
	if err != nil || !reflect.DeepEqual(onDisk, map[string]string{"pf0": pf0NQN}) {
		t.Fatalf("pause file: %v %v", onDisk, err)
	}
	// The driver resumes first, then the hold forgets the record.
	poll.Until(t, 5*time.Second, 10*time.Millisecond, "max hold resumes", func() bool {
		return len(drv.Paused()) == 0 && !hold.Status().Quiesced
	})
	if took := time.Since(start); took < 350*time.Millisecond {
		t.Fatalf("resumed after %v, before the hold", took)
	}
	if st := hold.Status(); st.Quiesced || st.ResumeReason != storage.ResumeExpired {
		t.Fatalf("after max hold: %+v", st)
	}

	if _, err := hold.Quiesce(ctx, 0); err != nil || len(drv.Paused()) != 1 {
		t.Fatalf("quiesce: %v %v", err, drv.Paused())
	}
	stop()
	if st := hold.Status(); st.Quiesced || st.ResumeReason != storage.ResumeStop || len(drv.Paused()) != 0 {
		t.Fatalf("after stop: %+v, paused %v", st, drv.Paused())
	}
}

// spdk-generic: upstream SPDK has no pause RPC, so both calls are
// NotSupported and SPDK sees no call.
func TestQuiesceNotSupported(t *testing.T) {
	emu := newEmu(t)
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	drv, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: cl, NodeUUID: nodeUUID, Transport: "TCP", ListenAddress: "127.0.0.1", ListenPort: "4430"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := drivers.StorageDriver(drv).(storage.Quiescer); ok {
		t.Fatal("spdk-generic claims a pause it cannot do")
	}
	hold, err := storage.NewHold(storage.HoldOptions{Driver: drv, DriverName: "spdk-generic"})
	if err != nil {
		t.Fatal(err)
	}
	if st := hold.Status(); st.Supported || st.Quiesced {
		t.Fatalf("status: %+v", st)
	}
	emu.ResetCalls()
	_, err = hold.Quiesce(context.Background(), 0)
	if !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "spdk-generic") {
		t.Fatalf("quiesce: %v", err)
	}
	if _, err := hold.Unquiesce(context.Background()); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("unquiesce: %v", err)
	}
	if emu.TotalCalls() != 0 {
		t.Fatalf("calls: %v", emu.CallCounts())
	}
}

// The record is versioned: a newer minor's extra fields are read (and the
// controllers resumed), a newer major is refused before anything runs.
func TestQuiesceRecordSchema(t *testing.T) {
	emu := newEmu(t)
	dir := t.TempDir()
	file := filepath.Join(dir, storage.QuiesceFileName)
	rec := map[string]any{"schema_version": "1.7", "hold": map[string]any{
		"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:01:00Z", "reason_v17": "snapshot",
		"controllers": []any{map[string]any{"function": map[string]any{"pf": 0}, "id": pf0NQN}}}}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sim.PauseFileName), []byte(`{"schema_version":"1.0","paused":{"pf0":"`+pf0NQN+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	drv, hold, _ := simNode(t, emu, dir, time.Minute)
	if st := hold.Status(); !st.Quiesced || !reflect.DeepEqual(st.Functions, []string{"pf0"}) {
		t.Fatalf("1.7 record: %+v", st)
	}
	runHold(t, hold)
	poll.Until(t, 5*time.Second, 10*time.Millisecond, "resumed", func() bool { return !hold.Status().Quiesced })
	if len(drv.Paused()) != 0 {
		t.Fatalf("still paused: %v", drv.Paused())
	}

	if err := os.WriteFile(file, []byte(`{"schema_version":"2.0","hold":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := storage.NewHold(storage.HoldOptions{Driver: drv, File: file})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "newer than this agent's 1.0") {
		t.Fatalf("2.0 record: %v", err)
	}
	// Every layout of the record is versioned: one without is not ours.
	if err := os.WriteFile(file, []byte(`{"hold":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.NewHold(storage.HoldOptions{Driver: drv, File: file}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unversioned record: %v", err)
	}
}
