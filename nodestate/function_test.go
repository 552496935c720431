package nodestate_test

import (
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func TestFunctionStringParseRoundTrip(t *testing.T) {
	ip := nodestate.IntPtr
	cases := []struct {
		f    nodestate.Function
		name string
	}{
		{nodestate.Function{PF: 0}, "pf0"},
		{nodestate.Function{PF: 1}, "pf1"},
		{nodestate.Function{PF: 15}, "pf15"},
		{nodestate.Function{PF: 0, VF: ip(0)}, "pf0vf0"},
		{nodestate.Function{PF: 1, VF: ip(3)}, "pf1vf3"},
		{nodestate.Function{PF: 0, VF: ip(1023)}, "pf0vf1023"},
		{nodestate.Function{PF: 0, SF: ip(88)}, "pf0sf88"},
		{nodestate.Function{PF: 2, SF: ip(65535)}, "pf2sf65535"},
	}
	for _, c := range cases {
		if got := c.f.String(); got != c.name {
			t.Errorf("%+v.String() = %q, want %q", c.f, got, c.name)
		}
		got, err := nodestate.ParseFunction(c.name)
		if err != nil || !got.Equal(c.f) {
			t.Errorf("ParseFunction(%q) = %+v, %v; want %+v", c.name, got, err, c.f)
		}
	}
}

func TestParseFunctionRefusesNonCanonical(t *testing.T) {
	for _, bad := range []string{
		"", "pf", "p0", "eth0", "vf3", "sf1",
		"c1pf0vf3", // the controller prefix is the representor's business
		"pf01", "pf0vf03", "pf-1", "pf+1", "pf0vf", "pf0sf", "pf0vf-1",
		"pf0vf3x", "pf0vf1sf2", "pf0sf1vf2", "pf0xf1", "PF0", " pf0", "pf0\n",
	} {
		if f, err := nodestate.ParseFunction(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseFunction(%q) = %+v, %v; want ErrInvalidArgument", bad, f, err)
		}
	}
}
