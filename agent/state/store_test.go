package state_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
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
		l, err := st.Load()
		if err != nil {
			os.Exit(4)
		}
		for g := l.Desired.Generation + 1; ; g++ {
			if err := st.Save(bigState(g), &state.Admission{Generation: g, Method: "apply_state", Time: time.Now()}); err != nil {
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
	l, err := st.Load()
	if d := l.Desired; err != nil || d.Generation != 0 || d.Volumes == nil || d.VIFs == nil || l.Admission != nil {
		t.Fatalf("empty load: %+v %v", l, err)
	}
	at := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	adm := &state.Admission{Generation: 7, Method: "apply_state", RequestID: "req-1", GlobalRequestID: "req-g", Time: at}
	if err := st.Save(bigState(7), adm); err != nil {
		t.Fatal(err)
	}
	l, err = st.Load()
	if got := l.Desired; err != nil || got.Generation != 7 || len(got.VIFs) != 200 || got.VIFs[199].MTU != 1699 {
		t.Fatalf("load: %v %+v", err, got.Generation)
	}
	if l.Schema != state.SchemaVersion || l.Admission == nil || *l.Admission != *adm || len(l.Unknown) != 0 {
		t.Fatalf("schema %q admission %+v unknown %v", l.Schema, l.Admission, l.Unknown)
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
		l, err := st.Load()
		if err != nil {
			t.Fatalf("kill %d: state unreadable: %v", i, err)
		}
		d := l.Desired
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
	l, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Desired; d.VIFs[0].MAC != "fa:16:3e:0a:bb:01" {
		t.Fatalf("loaded mac %q", d.VIFs[0].MAC)
	}
}

// The file d75592a's agent wrote (schema 1, the bare desired state) loads
// unchanged, and the next save writes the current schema with it.
func TestLoadsStateWrittenByD75592a(t *testing.T) {
	old, err := os.ReadFile("testdata/d75592a/desired.json")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := state.NewStore(t.TempDir())
	if err := os.WriteFile(st.Path(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	d := l.Desired
	if l.Schema != "1" || l.Admission != nil || len(l.Unknown) != 0 {
		t.Fatalf("schema %q admission %+v unknown %v", l.Schema, l.Admission, l.Unknown)
	}
	if d.Generation != 5 || d.NodeUUID != "3f9b6c1e-2a4d-4e8f-9b7a-1c2d3e4f5a6b" || len(d.Volumes) != 2 || len(d.VIFs) != 2 {
		t.Fatalf("desired %+v", d)
	}
	if *d.Volumes[0].BootIndex != 0 || d.Volumes[1].ConnectionInfo.Data["vol_uuid"] != "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f" {
		t.Fatalf("volumes %+v", d.Volumes)
	}
	if d.VIFs[1].Function == nil || d.VIFs[1].Function.SF == nil || *d.VIFs[1].Function.SF != 10 || d.VIFs[1].MTU != 9000 {
		t.Fatalf("vifs %+v", d.VIFs)
	}
	// Migrated by the next save: same state, current schema.
	if err := st.Save(d, nil); err != nil {
		t.Fatal(err)
	}
	again, err := st.Load()
	if err != nil || again.Schema != state.SchemaVersion {
		t.Fatalf("after save: schema %q, %v", again.Schema, err)
	}
	a, _ := json.Marshal(d)
	b, _ := json.Marshal(again.Desired)
	if string(a) != string(b) {
		t.Fatalf("state changed by the migration:\n%s\n%s", a, b)
	}
}

// A newer major is refused with a message that says what to do, and the
// file is left as it is.
func TestRefusesNewerSchemaMajor(t *testing.T) {
	st, _ := state.NewStore(t.TempDir())
	newer := `{"schema_version":"3.0","desired":{"generation":9,"volumes":[],"vifs":[]}}`
	if err := os.WriteFile(st.Path(), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := st.Load()
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "schema version 3.0 is newer than this agent's 2.0") ||
		!strings.Contains(err.Error(), "touches nothing on the DPU") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(st.Path()); string(b) != newer {
		t.Fatalf("file changed: %s", b)
	}
}

// A newer minor only adds fields: they are reported, the rest loads.
func TestNewerSchemaMinorLoadsAndReportsUnknownFields(t *testing.T) {
	st, _ := state.NewStore(t.TempDir())
	newer := `{"schema_version":"2.7","desired":{"generation":9,"volumes":[],"vifs":[],"hugepages":4},
		"admission":{"generation":9,"time":"2026-12-07T04:00:00Z","trace":"x"},"checksum":"abc"}`
	if err := os.WriteFile(st.Path(), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if l.Desired.Generation != 9 || l.Admission.Generation != 9 || l.Schema != "2.7" ||
		strings.Join(l.Unknown, ",") != "admission.trace,checksum,desired.hugepages" {
		t.Fatalf("loaded %+v %+v %v", l.Desired, l.Admission, l.Unknown)
	}
}

func TestRefusesMalformedSchemaVersionAndKnownFieldOfWrongType(t *testing.T) {
	for name, body := range map[string]string{
		"not major.minor": `{"schema_version":"2","desired":{"generation":1}}`,
		"not a string":    `{"schema_version":2,"desired":{"generation":1}}`,
		"no desired":      `{"schema_version":"2.0"}`,
		"wrong type":      `{"schema_version":"2.0","desired":{"generation":"one"}}`,
		"v1 wrong type":   `{"generation":"one"}`,
	} {
		st, _ := state.NewStore(t.TempDir())
		if err := os.WriteFile(st.Path(), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(); err == nil {
			t.Errorf("%s: loaded %s", name, body)
		}
	}
}
