package spdktest

import (
	"encoding/json"
	"time"
)

// maxQoSMB is the largest MB/s limit SPDK keeps: larger values would
// overflow bytes/s in a uint64 and are reset to it (c-qos.jsonl).
const maxQoSMB = 17592186044415

// qosLatency is how long a bdev_set_qos_limit takes to complete: SPDK
// answers it asynchronously, after every channel took the new limits.
const qosLatency = 3 * time.Millisecond

// qosParam decodes one optional limit as SPDK's spdk_json_decode_uint64:
// negative, string, float, bool and null are decode errors.
func qosParam(raw json.RawMessage) (uint64, bool, error) {
	if raw == nil {
		return 0, false, nil
	}
	var v uint64
	if string(raw) == "null" || json.Unmarshal(raw, &v) != nil {
		return 0, false, errDecode
	}
	return v, true, nil
}

// bdevSetQoSLimit follows c-qos.jsonl: limits not given keep their value,
// IOPS round up to a multiple of 1000, huge MB/s values are clamped, and a
// call while another is in progress on the bdev fails with -32602 EAGAIN.
func bdevSetQoSLimit(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name  *string         `json:"name"`
		RwIOs json.RawMessage `json:"rw_ios_per_sec"`
		RwMB  json.RawMessage `json:"rw_mbytes_per_sec"`
		RMB   json.RawMessage `json:"r_mbytes_per_sec"`
		WMB   json.RawMessage `json:"w_mbytes_per_sec"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Name == nil {
		return nil, errDecode
	}
	vals := [4]uint64{}
	given := [4]bool{}
	for i, raw := range []json.RawMessage{p.RwIOs, p.RwMB, p.RMB, p.WMB} {
		v, ok, err := qosParam(raw)
		if err != nil {
			return nil, err
		}
		vals[i], given[i] = v, ok
	}
	if !given[0] && !given[1] && !given[2] && !given[3] {
		return nil, errf(-22, "No rate limits specified")
	}
	if r := vals[0] % 1000; r != 0 {
		vals[0] += 1000 - r // "Round up the rate limit to ..."
	}
	for i := 1; i < 4; i++ {
		vals[i] = min(vals[i], maxQoSMB)
	}
	e.mu.Lock()
	b := e.st.bdev(*p.Name)
	if b == nil {
		e.mu.Unlock()
		return nil, errENODEV
	}
	if b.qosBusy {
		e.mu.Unlock()
		return nil, errf(-32602, "Failed to configure rate limit: Resource temporarily unavailable")
	}
	b.qosBusy = true
	e.mu.Unlock()
	return async(func(stop <-chan struct{}) (any, error) {
		select {
		case <-time.After(qosLatency):
		case <-stop:
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		b.qosBusy = false
		cur := []*uint64{&b.qos.RwIOs, &b.qos.RwMB, &b.qos.RMB, &b.qos.WMB}
		for i, ok := range given {
			if ok {
				*cur[i] = vals[i]
			}
		}
		return true, nil
	}), nil
}
