// Package state is the agent's durable store of the desired state
// (nodestate.Desired) in state_dir, with the record of the admission that
// made its generation.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// FileName is the desired-state file inside state_dir.
const FileName = "desired.json"

// SchemaVersion is the layout Save writes, "major.minor". Load reads every
// earlier major (1: the bare desired state, commit d75592a and before) and
// any minor of this major (a newer minor only adds fields: they are
// reported in Loaded.Unknown and dropped by the next save); a newer major
// changes meaning and is refused.
const SchemaVersion = "2.1"

// History: 2.0 (RPC API 1.1) wraps the state with its admission record;
// 2.1 (RPC API 1.2) adds config_drive.size and config_drive.url, kept until
// the image is fetched (a 2.0 agent drops them and needs the image on disk).

// SchemaMajor is SchemaVersion's major.
const SchemaMajor = 2

// Admission records what admitted the stored generation: which call, with
// which request ids and when, so an operator can follow one request from
// the conductor's log to the DPU (get_state shows it).
type Admission struct {
	Generation int64 `json:"generation"`
	// Method is the RPC method, or "ironic" for a state pulled from Ironic.
	Method          string    `json:"method,omitempty"`
	RequestID       string    `json:"request_id,omitempty"`
	GlobalRequestID string    `json:"global_request_id,omitempty"`
	Time            time.Time `json:"time"`
}

// file is schema 2's layout.
type file struct {
	SchemaVersion string             `json:"schema_version"`
	Desired       *nodestate.Desired `json:"desired"`
	Admission     *Admission         `json:"admission,omitempty"`
}

// Loaded is what Load read.
type Loaded struct {
	Desired *nodestate.Desired
	// Admission is nil when none was recorded (schema 1, or no state).
	Admission *Admission
	// Schema is the file's schema version ("" when there was no file; "1"
	// for the unversioned layout, which the next Save migrates).
	Schema string
	// Unknown lists fields the file has and this agent does not know
	// (written by a newer agent of the same major): ignored, to be logged.
	Unknown []string
}

// Store persists the desired state atomically (internal/atomicfile): a crash
// at any point leaves either the old or the new state, never a torn one.
type Store struct {
	dir string
}

// NewStore makes sure dir exists (0700: the state names volumes and ports).
func NewStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state_dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state_dir: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load returns the stored state, or an empty generation-0 state if none was
// ever saved. Leftover temp files from an interrupted save are removed. A
// file of a newer schema major is an errdefs.ErrConflict error that says
// so; nothing else is read or changed.
func (s *Store) Load() (Loaded, error) {
	if tmps, _ := filepath.Glob(atomicfile.TempPrefix(s.Path()) + "*"); len(tmps) > 0 {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return Loaded{Desired: &nodestate.Desired{Volumes: []nodestate.Volume{}, VIFs: []nodestate.VIF{}}}, nil
	}
	if err != nil {
		return Loaded{}, fmt.Errorf("read state: %w", err)
	}
	out, err := decode(b)
	if err != nil {
		return Loaded{}, fmt.Errorf("decode %s: %w", s.Path(), err)
	}
	d := out.Desired
	if d.Volumes == nil {
		d.Volumes = []nodestate.Volume{}
	}
	if d.VIFs == nil {
		d.VIFs = []nodestate.VIF{}
	}
	d.Normalize() // a state saved before MACs were lower-cased at admission
	return out, nil
}

// decode reads any known layout of the file.
func decode(b []byte) (Loaded, error) {
	var f file
	ver, unknown, err := jsonx.DecodeVersioned(b, SchemaMajor, SchemaVersion, &f)
	if err != nil {
		return Loaded{}, err
	}
	if ver == "" {
		// Schema 1 (d75592a and before): the bare desired state.
		var d nodestate.Desired
		unknown, err := jsonx.Decode(b, &d)
		if err != nil {
			return Loaded{}, err
		}
		return Loaded{Desired: &d, Schema: "1", Unknown: unknown}, nil
	}
	if f.Desired == nil {
		return Loaded{}, errors.New(`no "desired" object`)
	}
	return Loaded{Desired: f.Desired, Admission: f.Admission, Schema: ver, Unknown: unknown}, nil
}

// Save writes d durably in the current schema, with adm (may be nil) as
// the record of what admitted it.
func (s *Store) Save(d *nodestate.Desired, adm *Admission) error {
	b, err := json.MarshalIndent(file{SchemaVersion: SchemaVersion, Desired: d, Admission: adm}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return atomicfile.Write(s.Path(), append(b, '\n'), 0o600)
}
