package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"sync"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
)

// PauseFileName is where the sim driver records its paused controllers,
// inside the agent's state_dir: tests read it as "what the host sees"
// (upstream SPDK has no pause RPC to emulate, docs/spdk-nvmf.md).
const PauseFileName = "sim-paused.json"

// PauseSchemaVersion is the layout of the pause file.
const PauseSchemaVersion = "1.0"

// PauseFile is the pause file's layout: function -> controller id.
type PauseFile struct {
	SchemaVersion string            `json:"schema_version"`
	Paused        map[string]string `json:"paused"`
}

// Storage is the sim drivers.StorageDriver: spdk-nvmf storage whose
// controllers can also be "paused" (storage.Quiescer). A pause changes
// nothing in SPDK; it is recorded, in memory and in the pause file when
// one is set, so tests see what a real pause would do.
type Storage struct {
	*spdkgeneric.Storage

	mu     sync.Mutex
	file   string
	paused map[string]string
}

// WithPauseFile makes s record its paused controllers in path.
func (s *Storage) WithPauseFile(path string) *Storage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file = path
	return s
}

// Paused returns the paused controllers by function (pf0 -> NQN).
func (s *Storage) Paused() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.paused)
	if out == nil {
		out = map[string]string{}
	}
	return out
}

// ReadPauseFile reads a pause file (absent: nothing paused).
func ReadPauseFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f PauseFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Paused == nil {
		f.Paused = map[string]string{}
	}
	return f.Paused, nil
}

// SuspendController implements storage.Quiescer (recorded only).
func (s *Storage) SuspendController(_ context.Context, c drivers.HostController) error {
	if c.ID == "" {
		return fmt.Errorf("%w: sim: no controller on %s to pause", errdefs.ErrInvalidArgument, c.Function)
	}
	return s.change(func(m map[string]string) { m[c.Function.String()] = c.ID })
}

// ResumeController implements storage.Quiescer (recorded only).
func (s *Storage) ResumeController(_ context.Context, c drivers.HostController) error {
	return s.change(func(m map[string]string) { delete(m, c.Function.String()) })
}

func (s *Storage) change(fn func(map[string]string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == nil {
		s.paused = map[string]string{}
		if s.file != "" {
			// A previous agent's pauses: the record outlives the process,
			// as a real controller's paused state would.
			m, err := ReadPauseFile(s.file)
			if err != nil {
				return fmt.Errorf("%w: sim pause file: %v", errdefs.ErrStorage, err)
			}
			s.paused = m
		}
	}
	fn(s.paused)
	if s.file == "" {
		return nil
	}
	b, err := json.Marshal(PauseFile{SchemaVersion: PauseSchemaVersion, Paused: s.paused})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.file, b, 0o600); err != nil {
		return fmt.Errorf("%w: sim pause file: %v", errdefs.ErrStorage, err)
	}
	return nil
}
