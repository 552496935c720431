package state_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func bigState(gen int64) *nodestate.Desired {
	d := &nodestate.Desired{Generation: gen, Volumes: []nodestate.Volume{}, VIFs: []nodestate.VIF{}}
	for i := 0; i < 200; i++ { // a few tens of KiB, so a kill often lands mid-write
		d.VIFs = append(d.VIFs, nodestate.VIF{PortID: "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", MAC: "fa:16:3e:00:00:01", MTU: 1500 + i})
	}
	return d
}

// TestMain doubles as the writer process for the torn-write test.
func TestMain(m *testing.M) {
	if dir := os.Getenv("STATE_SAVE_LOOP_DIR"); dir != "" {
		st, err := state.NewStore(dir)
		if err != nil {
			os.Exit(3)
		}
		d, err := st.Load()
		if err != nil {
			os.Exit(4)
		}
		for g := d.Generation + 1; ; g++ {
			if err := st.Save(bigState(g)); err != nil {
				os.Exit(5)
			}
		}
	}
	os.Exit(m.Run())
}

func TestSaveLoadRoundTrip(t *testing.T) {
	st, err := state.NewStore(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Load()
	if err != nil || d.Generation != 0 || d.Volumes == nil || d.VIFs == nil {
		t.Fatalf("empty load: %+v %v", d, err)
	}
	if err := st.Save(bigState(7)); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load()
	if err != nil || got.Generation != 7 || len(got.VIFs) != 200 || got.VIFs[199].MTU != 1699 {
		t.Fatalf("load: %v %+v", err, got.Generation)
	}
	fi, _ := os.Stat(filepath.Dir(st.Path()))
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestCorruptFileIsAnError(t *testing.T) {
	st, _ := state.NewStore(t.TempDir())
	if err := os.WriteFile(st.Path(), []byte(`{"generation": 3, "vifs": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(); err == nil {
		t.Fatal("a torn file must not load silently")
	}
}

// Kill a process that saves in a tight loop, many times; every load after a
// kill must succeed and never go backwards.
func TestKillDuringSaveNeverTearsState(t *testing.T) {
	dir := t.TempDir()
	st, _ := state.NewStore(dir)
	last := int64(0)
	for i := 0; i < 15; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "STATE_SAVE_LOOP_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+i*7) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		d, err := st.Load()
		if err != nil {
			t.Fatalf("kill %d: state unreadable: %v", i, err)
		}
		if d.Generation < last {
			t.Fatalf("kill %d: generation went back from %d to %d", i, last, d.Generation)
		}
		if d.Generation > 0 && len(d.VIFs) != 200 {
			t.Fatalf("kill %d: partial state with %d vifs", i, len(d.VIFs))
		}
		last = d.Generation
		left, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(left) != 0 {
			t.Fatalf("temp files left after load: %v", left)
		}
	}
	if last == 0 {
		t.Fatal("writer never completed a save; test proves nothing")
	}
	t.Logf("survived 15 kills, last generation %s", strconv.FormatInt(last, 10))
}

// A state persisted before MACs were lower-cased at admission loads in the
// stored form, so reconcilers and idempotence checks see one spelling.
func TestLoadLowerCasesMACs(t *testing.T) {
	dir := t.TempDir()
	st, err := state.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"generation":3,"volumes":[],"vifs":[{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"FA:16:3E:0A:BB:01","function":{"pf":0,"sf":1}}]}`
	if err := os.WriteFile(st.Path(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.VIFs[0].MAC != "fa:16:3e:0a:bb:01" {
		t.Fatalf("loaded mac %q", d.VIFs[0].MAC)
	}
}
