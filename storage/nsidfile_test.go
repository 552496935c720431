package storage_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// The nsids file d75592a wrote (schema 1, a bare map) is honoured after
// the upgrade, and the next save writes the current schema.
func TestNSIDFileWrittenByD75592aIsHonoured(t *testing.T) {
	old, err := os.ReadFile("testdata/d75592a/nsids.json")
	if err != nil {
		t.Fatal(err)
	}
	layout := func(withFile bool) map[int]string {
		emu := newEmu(t)
		file := filepath.Join(t.TempDir(), "nsids.json")
		if withFile {
			if err := os.WriteFile(file, old, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		g := &rig{t: t, emu: emu, r: persistent(t, emu, storageOpts(), file)}
		g.cl = spdk.NewUnix(emu.Socket(), nil)
		t.Cleanup(func() { _ = g.cl.Close() })
		// In list order data2 would come before data1; the old file says
		// data1 is nsid 2.
		g.reconcile(desired(bootVol(), data2(), data1()))
		if withFile {
			var f struct {
				SchemaVersion string         `json:"schema_version"`
				NSIDs         map[string]int `json:"nsids"`
			}
			b, _ := os.ReadFile(file)
			if err := json.Unmarshal(b, &f); err != nil || f.SchemaVersion != storage.NSIDSchemaVersion ||
				f.NSIDs[data1ID+"/pf0"] != 2 || f.NSIDs[data2ID+"/pf0"] != 3 {
				t.Fatalf("rewritten file %s (%v)", b, err)
			}
		}
		return g.namespaces(pf0NQN)
	}
	if ns := layout(true); ns[1] != "idpu-"+bootID+"n1" || ns[2] != "idpu-"+data1ID+"n1" || ns[3] != "idpu-"+data2ID+"n1" {
		t.Fatalf("with d75592a's file: %v", ns)
	}
	if ns := layout(false); ns[2] != "idpu-"+data2ID+"n1" {
		t.Fatalf("control: without the file data2 should take nsid 2, got %v", ns)
	}
}

func TestNSIDFileSchemas(t *testing.T) {
	build := func(body string) error {
		file := filepath.Join(t.TempDir(), "nsids.json")
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cl := spdk.NewUnix(filepath.Join(t.TempDir(), "none.sock"), nil)
		defer func() { _ = cl.Close() }()
		_, err := storage.New(storage.Options{Client: cl, Storage: storage.Settings{HostNQN: hostNQN}, NodeUUID: nodeUUID,
			Driver: simDriver(t)(cl), NSIDFile: file})
		return err
	}
	// A newer major: refused, the agent does not start with it.
	err := build(`{"schema_version":"3.0","nsids":{}}`)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "schema version 3.0 is newer than this agent's 2.0") {
		t.Fatalf("newer major: %v", err)
	}
	// A version that is not major.minor: refused too (who wrote it is unknown).
	if err := build(`{"schema_version":"2","nsids":{}}`); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("malformed version: %v", err)
	}
	// A newer minor and a torn file: start (the latter without memory).
	for _, ok := range []string{`{"schema_version":"2.4","nsids":{"x/pf0":1},"hint":1}`, `{"x/pf0":`} {
		if err := build(ok); err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
	}
}
