package nvmeof

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// maxQoSValue keeps values exact in JSON doubles and far from SPDK's
// uint64 overflow clamp.
const (
	mib         = 1 << 20
	maxQoSValue = 1 << 53
)

// ParseQoS reads connection_info.data.qos_specs into bdev_set_qos_limit's
// limits (SPDK v24.09 has no separate read/write IOPS limit). It reads (Cinder's front-end keys;
// values are integers or numeric strings). Absent or null gives nil. Other
// keys (burst *_max, per-GB sizes Cinder already folded in) are ignored.
func ParseQoS(data map[string]any) (*spdk.QoSLimits, error) {
	raw, ok := data["qos_specs"]
	if !ok || raw == nil {
		return nil, nil
	}
	specs, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("connection_info.data.qos_specs must be an object, not %T", raw)
	}
	val := func(k string) (uint64, error) {
		v, ok := specs[k]
		if !ok || v == nil {
			return 0, nil
		}
		n, err := toUint(v)
		if err != nil {
			return 0, invalid("qos_specs.%s %v: %v (want a non-negative integer below 2^53)", k, v, err)
		}
		return n, nil
	}
	var vals [6]uint64
	keys := [6]string{"total_iops_sec", "total_bytes_sec", "read_bytes_sec", "write_bytes_sec", "read_iops_sec", "write_iops_sec"}
	for i, k := range keys {
		n, err := val(k)
		if err != nil {
			return nil, err
		}
		vals[i] = n
	}
	for _, i := range []int{4, 5} {
		if vals[i] != 0 {
			return nil, fmt.Errorf("%w: qos_specs.%s: SPDK v24.09's bdev_set_qos_limit has no separate read or write IOPS limit; use total_iops_sec",
				errdefs.ErrNotSupported, keys[i])
		}
	}
	mb := func(b uint64) uint64 { return (b + mib - 1) / mib } // round up: never a looser limit
	return &spdk.QoSLimits{RwIOsPerSec: vals[0], RwMBytesPerSec: mb(vals[1]), RMBytesPerSec: mb(vals[2]), WMBytesPerSec: mb(vals[3])}, nil
}

func toUint(v any) (uint64, error) {
	var n uint64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = strconv.ParseUint(string(x), 10, 64)
	case string:
		n, err = strconv.ParseUint(x, 10, 64)
	case float64:
		if x < 0 || x != float64(uint64(x)) {
			return 0, fmt.Errorf("not a non-negative integer")
		}
		n = uint64(x)
	case int:
		if x < 0 {
			return 0, fmt.Errorf("negative")
		}
		n = uint64(x)
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("negative")
		}
		n = uint64(x)
	default:
		return 0, fmt.Errorf("not a number")
	}
	if err != nil {
		return 0, fmt.Errorf("not a non-negative integer")
	}
	if n > maxQoSValue {
		return 0, fmt.Errorf("too large")
	}
	return n, nil
}
