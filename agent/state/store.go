// Package state is the agent's durable store of the desired state
// (nodestate.Desired) in state_dir.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// FileName is the desired-state file inside state_dir.
const FileName = "desired.json"

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
// ever saved. Leftover temp files from an interrupted save are removed.
func (s *Store) Load() (*nodestate.Desired, error) {
	if tmps, _ := filepath.Glob(atomicfile.TempPrefix(s.Path()) + "*"); len(tmps) > 0 {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return &nodestate.Desired{Volumes: []nodestate.Volume{}, VIFs: []nodestate.VIF{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var d nodestate.Desired
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", s.Path(), err)
	}
	if d.Volumes == nil {
		d.Volumes = []nodestate.Volume{}
	}
	if d.VIFs == nil {
		d.VIFs = []nodestate.VIF{}
	}
	d.Normalize() // a state saved before MACs were lower-cased at admission
	return &d, nil
}

// Save writes d durably.
func (s *Store) Save(d *nodestate.Desired) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return atomicfile.Write(s.Path(), append(b, '\n'), 0o600)
}
