package rpcapi

import "testing"

func TestVersionCompatible(t *testing.T) {
	for _, c := range []struct {
		imp, req string
		ok       bool
	}{
		{"1.0", "1.0", true}, {"1.3", "1.0", true}, {"1.3", "1.3", true}, {"1.3", "1.4", false},
		{"1.3", "2.0", false}, {"2.0", "1.0", false}, {"1.3.2", "1.3.1", true}, {"1.3.1", "1.3.2", false},
		{"1.3", "1.2.9", true}, {"1.0", "x.y", false}, {"1", "1.0", false}, {"2.0", "2.0", true},
	} {
		if got := VersionCompatible(c.imp, c.req); got != c.ok {
			t.Errorf("VersionCompatible(%s, %s) = %v, want %v", c.imp, c.req, got, c.ok)
		}
	}
}
