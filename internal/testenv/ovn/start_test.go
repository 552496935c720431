package ovn

import (
	"context"
	"strings"
	"testing"
)

// A missing daemon is a hard error naming the packages, so functional tests
// FAIL rather than skip on an incomplete machine.
func TestStartFailsWithoutBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "apt-get install openvswitch-switch ovn-central ovn-host") {
		t.Fatalf("err = %v", err)
	}
}

func TestStartRejectsUnknownDatapath(t *testing.T) {
	if _, err := Start(context.Background(), Options{Dir: t.TempDir(), Datapath: "system"}); err == nil {
		t.Fatal("datapath system accepted")
	}
}
