package oneshot_test

import (
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/oneshot"
)

func TestOVSDBAddr(t *testing.T) {
	for ep, want := range map[string]struct {
		network, addr string
		secure, ok    bool
	}{
		"unix:/run/db.sock":  {"unix", "/run/db.sock", false, true},
		"tcp:127.0.0.1:6640": {"tcp", "127.0.0.1:6640", false, true},
		"ssl:192.0.2.1:6640": {"tcp", "192.0.2.1:6640", true, true},
		"ssl:[::1]:6640":     {"tcp", "[::1]:6640", true, true},
		"pssl:6640":          {ok: false},
		"/run/db.sock":       {ok: false},
	} {
		n, a, s, err := oneshot.OVSDBAddr(ep)
		if (err == nil) != want.ok || n != want.network || a != want.addr || s != want.secure {
			t.Errorf("%s: %q %q %v %v, want %+v", ep, n, a, s, err, want)
		}
	}
}
