package nvmeof_test

import (
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

const qosBase = `{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["192.0.2.10",4420,"tcp"]]`

func TestParseQoSMapsCinderKeys(t *testing.T) {
	tg, err := nvmeof.Parse(data(t, qosBase+`,"qos_specs":{"total_iops_sec":"1500","total_bytes_sec":1048577,
		"read_bytes_sec":"2097152","write_bytes_sec":1,"read_iops_sec":"0","total_iops_sec_max":"9000"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := spdk.QoSLimits{RwIOsPerSec: 1500, RwMBytesPerSec: 2, RMBytesPerSec: 2, WMBytesPerSec: 1}
	if tg.QoS == nil || *tg.QoS != want {
		t.Fatalf("qos %+v, want %+v", tg.QoS, want)
	}
	if got := tg.QoS.Effective(); got.RwIOsPerSec != 2000 || got.RwMBytesPerSec != 2 {
		t.Errorf("effective %+v: SPDK rounds IOPS up to a multiple of 1000", got)
	}
	if (spdk.QoSLimits{RwMBytesPerSec: 1 << 50}).Effective().RwMBytesPerSec != spdk.MaxQoSMBytes {
		t.Error("MB/s not clamped as SPDK does")
	}
	for _, s := range []string{qosBase + `}`, qosBase + `,"qos_specs":null}`} {
		if tg, err := nvmeof.Parse(data(t, s)); err != nil || tg.QoS != nil {
			t.Errorf("%s: qos %+v, err %v", s, tg.QoS, err)
		}
	}
}

func TestParseQoSRejects(t *testing.T) {
	for name, s := range map[string]string{
		"negative":     `{"total_iops_sec":-1}`,
		"neg string":   `{"total_bytes_sec":"-5"}`,
		"float":        `{"total_iops_sec":10.5}`,
		"word":         `{"total_iops_sec":"lots"}`,
		"bool":         `{"read_bytes_sec":true}`,
		"too large":    `{"write_bytes_sec":"18446744073709551615"}`,
		"specs a list": `[1]`,
	} {
		_, err := nvmeof.Parse(data(t, qosBase+`,"qos_specs":`+s+`}`))
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	for _, k := range []string{"read_iops_sec", "write_iops_sec"} {
		_, err := nvmeof.Parse(data(t, qosBase+`,"qos_specs":{"`+k+`":"500"}}`))
		if !errors.Is(err, errdefs.ErrNotSupported) {
			t.Errorf("%s: got %v, want NotSupported", k, err)
		}
	}
}
