package nodestate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func TestAssignFunctionsKeepsAndFills(t *testing.T) {
	prev := &nodestate.Desired{VIFs: []nodestate.VIF{
		{PortID: "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", MAC: "fa:16:3e:00:00:01", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(4)}},
	}}
	next := &nodestate.Desired{VIFs: []nodestate.VIF{
		{PortID: "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02", MAC: "fa:16:3e:00:00:02"},
		{PortID: "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", MAC: "fa:16:3e:00:00:01"},
		{PortID: "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a03", MAC: "fa:16:3e:00:00:03", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}},
	}}
	if err := nodestate.AssignFunctions(prev, next, 1); err != nil {
		t.Fatal(err)
	}
	got := []int{*next.VIFs[0].Function.SF, *next.VIFs[1].Function.SF, *next.VIFs[2].Function.SF}
	if got[0] != 2 || got[1] != 4 || got[2] != 1 {
		t.Fatalf("sfs %v, want [2 4 1]", got)
	}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateFunctionBounds(t *testing.T) {
	for _, f := range []nodestate.Function{{PF: -1}, {PF: 16}, {PF: 0, VF: nodestate.IntPtr(-2)}, {PF: 0, SF: nodestate.IntPtr(1 << 20)}} {
		if err := nodestate.ValidateFunction(f); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("%+v accepted", f)
		}
	}
	if err := nodestate.ValidateFunction(nodestate.Function{PF: 1, VF: nodestate.IntPtr(7)}); err != nil {
		t.Fatal(err)
	}
}

// The conductor sends VIFs without functions, in Ironic's port order; a new
// port listed before existing ones must not take their SFs (that would move
// a running host's NICs to other SFs).
func TestAssignFunctionsNewPortFirstKeepsExistingSFs(t *testing.T) {
	const a, x, y = "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02", "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a03"
	prev := &nodestate.Desired{VIFs: []nodestate.VIF{
		{PortID: a, MAC: "fa:16:3e:00:00:01", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}},
		{PortID: x, MAC: "fa:16:3e:00:00:02", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(2)}},
	}}
	next := &nodestate.Desired{VIFs: []nodestate.VIF{
		{PortID: y, MAC: "fa:16:3e:00:00:03"},
		{PortID: a, MAC: "fa:16:3e:00:00:01"},
		{PortID: x, MAC: "fa:16:3e:00:00:02"},
	}}
	if err := nodestate.AssignFunctions(prev, next, 1); err != nil {
		t.Fatal(err)
	}
	got := []int{*next.VIFs[0].Function.SF, *next.VIFs[1].Function.SF, *next.VIFs[2].Function.SF}
	if got[0] != 3 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("sfs %v, want [3 1 2]: existing ports keep their SFs", got)
	}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
}

func vol(id string, boot *int) nodestate.Volume {
	return nodestate.Volume{VolumeID: id, BootIndex: boot, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof",
		Data: map[string]any{"target_nqn": "nqn.2010-10.org.openstack:volume-" + id, "portals": []any{[]any{"192.0.2.10", 4420, "tcp"}}}}}
}

// Nova marks every data disk boot_index -1: several of them are fine, and
// none is the boot disk.
func TestValidateNegativeBootIndexIsDataDisk(t *testing.T) {
	d := &nodestate.Desired{Volumes: []nodestate.Volume{
		vol("6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11", nodestate.IntPtr(0)),
		vol("a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f", nodestate.IntPtr(-1)),
		vol("3c9e7b1d-5a2f-4e8c-b6d4-7f0a9e2c1b35", nodestate.IntPtr(-1)),
	}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	d.Volumes[2].BootIndex = nodestate.IntPtr(0)
	if err := d.Validate(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("two boot_index 0 accepted: %v", err)
	}
}

func TestValidateConfigDriveSHA(t *testing.T) {
	for _, sha := range []string{"", "abc", "ZZ" + string(make([]byte, 62)), "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"} {
		d := &nodestate.Desired{ConfigDrive: &nodestate.ConfigDrive{SHA256: sha}}
		if err := d.Validate(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("sha %q accepted", sha)
		}
	}
	d := &nodestate.Desired{ConfigDrive: &nodestate.ConfigDrive{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The URL form (RPC API 1.2): http(s) with a host, a size, no data beside
// it; a refusal never quotes the URL's path or query (its secret).
func TestValidateConfigDriveURL(t *testing.T) {
	const sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	const secret = "tok3n-sig"
	bad := map[string]nodestate.ConfigDrive{
		"no size":        {SHA256: sha, URL: "http://h/" + secret},
		"negative size":  {SHA256: sha, Size: -1, URL: "http://h/" + secret},
		"url and data":   {SHA256: sha, Size: 10, URL: "http://h/" + secret, Data: "AAAA"},
		"size, no url":   {SHA256: sha, Size: 10},
		"ftp":            {SHA256: sha, Size: 10, URL: "ftp://h/" + secret},
		"file":           {SHA256: sha, Size: 10, URL: "file:///etc/" + secret},
		"no host":        {SHA256: sha, Size: 10, URL: "http:///" + secret},
		"user info":      {SHA256: sha, Size: 10, URL: "https://u:" + secret + "@h/x"},
		"not a URL":      {SHA256: sha, Size: 10, URL: "%%" + secret},
		"relative":       {SHA256: sha, Size: 10, URL: "/dpu-configdrive/" + secret},
		"query, no host": {SHA256: sha, Size: 10, URL: "https://?temp_url_sig=" + secret},
	}
	for name, c := range bad {
		err := (&nodestate.Desired{ConfigDrive: &c}).Validate()
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s accepted: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the refusal quotes the URL's secret: %v", name, err)
		}
	}
	for _, u := range []string{"http://192.0.2.10:8080/dpu-configdrive/x.gz", "https://swift.example/v1/AUTH_a/c/o?temp_url_sig=s&temp_url_expires=1"} {
		if err := (&nodestate.Desired{ConfigDrive: &nodestate.ConfigDrive{SHA256: sha, Size: 4096, URL: u}}).Validate(); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	if got := nodestate.RedactURL("https://swift.example:443/v1/AUTH_a/c/o?temp_url_sig=" + secret); got != "https://swift.example:443/..." {
		t.Errorf("RedactURL = %q", got)
	}
}

func TestValidateMACRefusesNonUnicastAndZero(t *testing.T) {
	for _, mac := range []string{"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "FF:FF:FF:FF:FF:FF", "01:00:5e:00:00:01", "33:33:00:00:00:01", "fa:16:3e:00:00", "fa-16-3e-00-00-01"} {
		if err := nodestate.ValidateMAC(mac); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s accepted: %v", mac, err)
		}
	}
	for _, mac := range []string{"fa:16:3e:00:00:01", "FA:16:3E:0A:BB:01", "02:00:00:00:00:00"} {
		if err := nodestate.ValidateMAC(mac); err != nil {
			t.Errorf("%s refused: %v", mac, err)
		}
	}
}

func TestCheckLimits(t *testing.T) {
	d := &nodestate.Desired{VIFs: make([]nodestate.VIF, nodestate.DefaultMaxVIFs), Volumes: make([]nodestate.Volume, nodestate.DefaultMaxVolumes)}
	if err := d.CheckLimits(nodestate.Limits{}); err != nil {
		t.Fatalf("defaults are inclusive: %v", err)
	}
	if err := d.CheckLimits(nodestate.Limits{MaxVIFs: 3}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("configured vif limit: %v", err)
	}
	d.Volumes = append(d.Volumes, nodestate.Volume{})
	if err := d.CheckLimits(nodestate.Limits{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("volume limit: %v", err)
	}
	if err := d.CheckLimits(nodestate.Limits{MaxVolumes: 100}); err != nil {
		t.Fatalf("raised volume limit: %v", err)
	}
}
