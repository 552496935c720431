package nodestate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Function is a host-visible PCIe function: a PF, a VF of a PF, or an SF of a PF.
// Exactly one of VF and SF may be set; neither means the PF itself.
type Function struct {
	PF int  `json:"pf"`
	VF *int `json:"vf,omitempty"`
	SF *int `json:"sf,omitempty"`
}

// IsSF reports whether f names a scalable function.
func (f Function) IsSF() bool { return f.SF != nil }

// Equal compares two functions by value.
func (f Function) Equal(g Function) bool {
	eq := func(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return f.PF == g.PF && eq(f.VF, g.VF) && eq(f.SF, g.SF)
}

// IntPtr is a helper for building functions in code and tests.
func IntPtr(i int) *int { return &i }

// String is the function's short name, the one every component uses for it:
// pf0, pf0vf3, pf0sf88. It is the kernel's phys_port_name without the
// "c<N>" controller prefix, the suffix of the agent's NVMe subsystem NQNs
// and the key in OVS external_ids. Component-specific forms (BlueField's
// "pf0hpf" netdev, "c1pf0vf3") add to it where they are built.
func (f Function) String() string {
	s := "pf" + strconv.Itoa(f.PF)
	switch {
	case f.VF != nil:
		s += "vf" + strconv.Itoa(*f.VF)
	case f.SF != nil:
		s += "sf" + strconv.Itoa(*f.SF)
	}
	return s
}

// ParseFunction is the inverse of String. It accepts the canonical form only
// (no controller prefix, no sign, no leading zeros), so every function has
// exactly one name; bounds are ValidateFunction's job.
func ParseFunction(s string) (Function, error) {
	bad := func() (Function, error) {
		return Function{}, fmt.Errorf("%w: %q is not a host function name like pf0, pf0vf3 or pf0sf88", errdefs.ErrInvalidArgument, s)
	}
	rest, ok := strings.CutPrefix(s, "pf")
	if !ok {
		return bad()
	}
	pfs, sub, kind := rest, "", ""
	for _, k := range []string{"vf", "sf"} {
		if a, b, found := strings.Cut(rest, k); found {
			pfs, sub, kind = a, b, k
			break
		}
	}
	pf, ok := canonicalInt(pfs)
	if !ok {
		return bad()
	}
	f := Function{PF: pf}
	if kind == "" {
		return f, nil
	}
	n, ok := canonicalInt(sub)
	if !ok {
		return bad()
	}
	if kind == "vf" {
		f.VF = &n
	} else {
		f.SF = &n
	}
	return f, nil
}

// canonicalInt parses a non-negative decimal written without sign or
// leading zeros.
func canonicalInt(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && strconv.Itoa(n) == s
}
