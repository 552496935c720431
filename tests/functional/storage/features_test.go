//go:build functional

package storage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// agentStorage builds the storage reconciler as the daemon does, with its
// config-drive dir and nsid memory under dir (so a rebuild is an agent restart).
func agentStorage(t *testing.T, sock, dir string) (*storage.Reconciler, *spdk.Client) {
	t.Helper()
	cl := spdk.NewUnix(sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	d, err := sim.NewStorage(cl, nodeUUID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := storage.New(storage.Options{Client: cl, NodeUUID: nodeUUID, Driver: d, NSIDFile: filepath.Join(dir, "nsids.json"),
		Storage: storage.Settings{HostNQN: hostNQN, Multipath: "multipath", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5,
			ConfigDriveDir: filepath.Join(dir, "config-drive"), ConfigDriveMaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	return r, cl
}

func configDrive(t *testing.T) *nodestate.ConfigDrive {
	t.Helper()
	img := make([]byte, 6000)
	copy(img[1:], "CD001")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(img)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	return &nodestate.ConfigDrive{SHA256: hex.EncodeToString(sum[:]), Data: base64.StdEncoding.EncodeToString(buf.Bytes())}
}

func limits(t *testing.T, cl *spdk.Client, bdev string) spdk.QoSLimits {
	t.Helper()
	bs, err := cl.GetBdevs(context.Background(), bdev)
	if err != nil {
		t.Fatal(err)
	}
	return bs[0].RateLimits
}

// The config drive and a volume's QoS come back by themselves after SPDK is
// killed and restarted empty and the agent restarted too: the drive at the
// nsid the host knew, the limits on the new bdev. Removing the drive from
// the state takes it off the host.
func TestConfigDriveAndQoSSurviveSPDKCrashAndAgentRestart(t *testing.T) {
	ctx := context.Background()
	emu := startEmu(t)
	dir := t.TempDir()
	r, cl := agentStorage(t, emu.sock, dir)
	d := volumes()
	d.Volumes[1].ConnectionInfo.Data["qos_specs"] = map[string]any{"total_iops_sec": "2500", "write_bytes_sec": "10485760"}
	d.ConfigDrive = configDrive(t)
	if err := r.Validate(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := r.Admit(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	cdBdev := storage.ConfigDriveBdevName(d.ConfigDrive.SHA256)
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1", 4: cdBdev}
	if got := namespaces(t, cl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("namespaces = %v, want %v", got, want)
	}
	wantQoS := spdk.QoSLimits{RwIOsPerSec: 3000, WMBytesPerSec: 10}
	if got := limits(t, cl, "idpu-"+data1ID+"n1"); got != wantQoS {
		t.Fatalf("qos %+v, want %+v", got, wantQoS)
	}

	emu.kill()
	emu.start()
	r, cl = agentStorage(t, emu.sock, dir) // the agent restarted too
	// The restarted agent's state has the sha256 only.
	d.ConfigDrive.Data = ""
	if err := r.Validate(ctx, d); err != nil {
		t.Fatalf("sha-only state after restart: %v", err)
	}
	// Volumes listed in another order: the host still gets its layout.
	d.Volumes = []nodestate.Volume{d.Volumes[2], d.Volumes[0], d.Volumes[1]}
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, cl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after crash+restart = %v, want %v", got, want)
	}
	if got := limits(t, cl, "idpu-"+data1ID+"n1"); got != wantQoS {
		t.Fatalf("qos after crash %+v, want %+v", got, wantQoS)
	}
	var obs nodestate.Observed
	r.Observe(ctx, &obs)
	if c := obs.ConfigDrive; c == nil || c.State != nodestate.StateAttached || c.NSID != 4 {
		t.Fatalf("observed config drive %+v", obs.ConfigDrive)
	}
	emu.reset(cl)
	if err := r.Reconcile(ctx, d); err != nil || emu.mutating(cl) != 0 {
		t.Fatalf("converged reconcile: %v, %d mutating", err, emu.mutating(cl))
	}

	d.ConfigDrive = nil
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, cl); len(got) != 3 || got[4] != "" {
		t.Fatalf("config drive still exposed: %v", got)
	}
	if _, err := cl.GetBdevs(ctx, cdBdev); err == nil {
		t.Fatal("config drive bdev left")
	}
}

// An in-use extend on the Cinder target shows as the new size_bytes without
// any reconcile, through the same target+DPU emulator pair the OpenStack
// end-to-end test runs (tests/openstack/spdkpair, its own process).
func TestSizeFollowsTargetResize(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "spdkpair")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	root, err := agentproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "spdkpair")
	build := exec.Command("go", "build", "-o", bin, "./tests/openstack/spdkpair")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build spdkpair: %v\n%s", err, out)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tsock, dsock := filepath.Join(dir, "t.sock"), filepath.Join(dir, "d.sock")
	cmd := exec.Command(bin, "-target-socket", tsock, "-dpu-socket", dsock, "-password-file", pw, "-http", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unix", dsock); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc := spdk.NewUnix(tsock, nil)
	t.Cleanup(func() { _ = tc.Close() })
	nqn := "nqn.2010-10.org.openstack:volume-" + data1ID
	lvol := "cinder-volumes/volume-" + data1ID
	if err := spdktest.Run(ctx, tc, append(spdktest.LvstoreSetup(128), spdktest.LvolExport(data1ID, 32, "4430")...)); err != nil {
		t.Fatal(err)
	}
	r, _ := agentStorage(t, dsock, t.TempDir())
	d := &nodestate.Desired{Generation: 1, NodeUUID: nodeUUID, VIFs: []nodestate.VIF{}, Volumes: []nodestate.Volume{{VolumeID: data1ID,
		BootIndex: nodestate.IntPtr(-1), ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
			"target_nqn": nqn, "vol_uuid": data1ID, "portals": []any{[]any{"127.0.0.1", float64(4430), "tcp"}}}}}}}
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		var obs nodestate.Observed
		r.Observe(ctx, &obs)
		if obs.Volumes[0].NSID != 2 {
			t.Fatalf("data disk (boot_index -1) at nsid %d, want 2", obs.Volumes[0].NSID)
		}
		return obs.Volumes[0].SizeBytes
	}
	if s := size(); s != 32<<20 {
		t.Fatalf("size_bytes %d, want 32 MiB", s)
	}
	if err := tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": lvol, "size_in_mib": 48}, nil); err != nil {
		t.Fatal(err)
	}
	if s := size(); s != 48<<20 {
		t.Fatalf("size_bytes %d after extend, want 48 MiB", s)
	}
}
