package bluefield

// Read-only views for `ironic-dpu-agent check --hardware`: what SNAP has,
// and what the driver would do for a state's functions. Neither changes
// anything on the card.

import (
	"context"
	"fmt"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Inventory is what SNAP reports about itself and the card.
type Inventory struct {
	// Version is spdk_get_version's "version" of the SNAP process (SNAP
	// serves SPDK's RPCs too).
	Version string `json:"version"`
	// Functions are all the functions emulation_function_list reports,
	// every emulation type, each PF followed by its VFs.
	Functions []EmulationFunction `json:"functions"`
}

// Inventory reads spdk_get_version and emulation_function_list.
func (s *Storage) Inventory(ctx context.Context) (Inventory, error) {
	var v spdk.Version
	if err := s.o.Client.Call(ctx, "spdk_get_version", nil, &v); err != nil {
		return Inventory{}, err
	}
	fns, err := s.listFunctions(ctx)
	if err != nil {
		return Inventory{}, err
	}
	return Inventory{Version: v.Version, Functions: fns}, nil
}

// PlanStep is what the driver would do for one function.
type PlanStep struct {
	Function nodestate.Function
	// Text says what would be created, adopted or kept, or why not.
	Text string
	// Problem is true when the function would be refused or fail.
	Problem bool
}

// Plan describes, one step per distinct function of fns (in their order),
// what the driver would create, adopt or keep for it, or why it would
// refuse it. It reads emulation_function_list and nvme_subsystem_list and
// changes nothing; an error means SNAP could not be read.
func (s *Storage) Plan(ctx context.Context, fns []nodestate.Function) ([]PlanStep, error) {
	have, err := s.listFunctions(ctx)
	if err != nil {
		return nil, err
	}
	subs, err := s.listSubsystems(ctx)
	if err != nil {
		return nil, err
	}
	var out []PlanStep
	seen := map[string]bool{}
	for _, f := range fns {
		if seen[f.String()] {
			continue
		}
		seen[f.String()] = true
		text, problem := s.planOne(f, have, subs)
		out = append(out, PlanStep{Function: f, Text: text, Problem: problem})
	}
	return out, nil
}

func (s *Storage) planOne(f nodestate.Function, have []EmulationFunction, subs []snapSubsystem) (string, bool) {
	if err := nodestate.ValidateFunction(f); err != nil {
		return fmt.Sprintf("%s: refused: %v", f, err), true
	}
	if f.SF != nil {
		return fmt.Sprintf("%s: refused: SNAP emulates NVMe on PFs and VFs, not SFs", f), true
	}
	fn, ok := nvmeFunction(have, f)
	if !ok {
		return fmt.Sprintf("%s: refused: %v", f, notEmulated(f, have)), true
	}
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, f)
	if fn.CtrlID != "" {
		owner := ownerOf(subs, fn.CtrlID)
		switch owner {
		case nqn:
			return fmt.Sprintf("%s: keep the agent's controller %s (subsystem %s) on %s", f, fn.CtrlID, nqn, fn.PCIBDF), false
		case "":
			return fmt.Sprintf("%s: fails: controller %s on %s is in no subsystem SNAP lists", f, fn.CtrlID, fn.PCIBDF), true
		}
		return fmt.Sprintf("%s: adopt controller %s of subsystem %s on %s, not created by the agent: "+
			"its namespaces go into that subsystem, the controller and subsystem are never destroyed; "+
			"if it was created admin-only (as NVIDIA's published configuration creates NVMeCtrl1), check that the host can do I/O through it",
			f, fn.CtrlID, owner, fn.PCIBDF), false
	}
	by := "pci_bdf " + fn.PCIBDF
	if fn.PCIBDF == "" || fn.PCIBDF == "00:00.0" {
		by = "vuid " + fn.VUID
	}
	return fmt.Sprintf("%s: create subsystem %s and a suspended controller on %s, attach the namespaces, resume it", f, nqn, by), false
}
