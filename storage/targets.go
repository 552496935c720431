package storage

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
)

// targets remembers each volume's parsed connection info, so Cinder's data
// is parsed once at admission (Validate) and every reconcile reuses the
// result. An entry is keyed by volume id and holds a hash of the data it was
// parsed from: new data for the same volume is parsed again. A state that
// never went through Validate in this process (loaded from disk at start)
// is parsed on first use, with the same checks.
type targets struct {
	parse func(map[string]any) (nvmeof.Target, error) // nvmeof.Parse; tests count calls

	mu sync.Mutex
	m  map[string]parsedTarget
}

type parsedTarget struct {
	sum [sha256.Size]byte
	t   nvmeof.Target
}

func newTargets() *targets {
	return &targets{parse: nvmeof.Parse, m: map[string]parsedTarget{}}
}

// get returns v's target, parsing its connection info unless an entry for
// the same data exists.
func (c *targets) get(v nodestate.Volume) (nvmeof.Target, error) {
	// encoding/json writes map keys sorted: equal data, equal bytes (also
	// after Desired.Clone turns float64 into json.Number).
	b, err := json.Marshal(v.ConnectionInfo.Data)
	if err != nil {
		return nvmeof.Target{}, fmt.Errorf("connection_info.data: %w", err)
	}
	sum := sha256.Sum256(b)
	id := strings.ToLower(v.VolumeID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && e.sum == sum {
		return e.t, nil
	}
	t, err := c.parse(v.ConnectionInfo.Data)
	if err != nil {
		return nvmeof.Target{}, err
	}
	c.m[id] = parsedTarget{sum: sum, t: t}
	return t, nil
}

// keepOnly drops the entries of volumes d does not list (left by removed
// volumes or by candidates that were refused after Validate).
func (c *targets) keepOnly(d *nodestate.Desired) {
	want := make(map[string]bool, len(d.Volumes))
	for _, v := range d.Volumes {
		want[strings.ToLower(v.VolumeID)] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.m {
		if !want[id] {
			delete(c.m, id)
		}
	}
}
