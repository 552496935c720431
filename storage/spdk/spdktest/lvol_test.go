package spdktest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

func startLvolEmu(t *testing.T, opts Options) (*Emulator, *spdk.Client) {
	t.Helper()
	e := New(opts)
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	c := spdk.NewUnix(sock, zap.NewNop())
	t.Cleanup(func() { _ = c.Close() })
	return e, c
}

func call(t *testing.T, c *spdk.Client, method string, params, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		t.Fatalf("%s %v: %v", method, params, err)
	}
}

func callErr(t *testing.T, c *spdk.Client, method string, params any, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Call(ctx, method, params, nil)
	if !spdk.HasCode(err, code) {
		t.Fatalf("%s %v: want error code %d, got %v", method, params, code, err)
	}
}

type lvsInfo struct {
	UUID              string `json:"uuid"`
	Name              string `json:"name"`
	BaseBdev          string `json:"base_bdev"`
	TotalDataClusters int64  `json:"total_data_clusters"`
	FreeClusters      int64  `json:"free_clusters"`
	ClusterSize       int64  `json:"cluster_size"`
	BlockSize         int    `json:"block_size"`
}

// TestLvolCinderSequence runs what Cinder Zed's SPDK driver and its
// spdk-nvmeof target helper send for create -> export -> delete (see
// research/openstack-full-stack.md step 3), after the operator set-up.
func TestLvolCinderSequence(t *testing.T) {
	_, c := startLvolEmu(t, Options{})
	var s string
	call(t, c, "bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 2 * 1024 * 256, "block_size": 4096}, &s)
	var lvsUUID string
	call(t, c, "bdev_lvol_create_lvstore", map[string]any{"bdev_name": "Malloc0", "lvs_name": "lvs0"}, &lvsUUID)
	callErr(t, c, "bdev_lvol_create_lvstore", map[string]any{"bdev_name": "Malloc0", "lvs_name": "lvs1"}, -16)
	callErr(t, c, "bdev_lvol_create_lvstore", map[string]any{"bdev_name": "nope", "lvs_name": "lvs2"}, -19)

	var lvs []lvsInfo
	call(t, c, "bdev_lvol_get_lvstores", nil, &lvs)
	// 2 GiB / 4 MiB = 512 clusters, one kept for metadata.
	if len(lvs) != 1 || lvs[0].UUID != lvsUUID || lvs[0].Name != "lvs0" || lvs[0].BaseBdev != "Malloc0" ||
		lvs[0].TotalDataClusters != 511 || lvs[0].FreeClusters != 511 || lvs[0].ClusterSize != 4<<20 || lvs[0].BlockSize != 4096 {
		t.Fatalf("lvstores: %+v", lvs)
	}

	// Cinder Zed's "size" in bytes is unknown to v24.09.
	callErr(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size": 1 << 30}, -32603)
	callErr(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "lvs_name": "lvs0", "size_in_mib": 1024}, -22)
	callErr(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "lvs_name": "other", "size_in_mib": 1024}, -19)
	callErr(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 4096}, -28)

	var lvolUUID string
	call(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 1022}, &lvolUUID)
	callErr(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 4}, -17)
	call(t, c, "bdev_lvol_get_lvstores", map[string]any{"lvs_name": "lvs0"}, &lvs)
	if lvs[0].FreeClusters != 511-256 { // 1022 MiB rounds up to 256 clusters
		t.Fatalf("free clusters after create: %d", lvs[0].FreeClusters)
	}

	var bdevs []struct {
		Name           string   `json:"name"`
		Aliases        []string `json:"aliases"`
		ProductName    string   `json:"product_name"`
		NumBlocks      int64    `json:"num_blocks"`
		BlockSize      int      `json:"block_size"`
		DriverSpecific struct {
			Lvol struct {
				LvolStoreUUID string `json:"lvol_store_uuid"`
				BaseBdev      string `json:"base_bdev"`
				ThinProvision bool   `json:"thin_provision"`
			} `json:"lvol"`
		} `json:"driver_specific"`
	}
	call(t, c, "bdev_get_bdevs", map[string]any{"name": "lvs0/volume-1"}, &bdevs)
	b := bdevs[0]
	if b.Name != lvolUUID || len(b.Aliases) != 1 || b.Aliases[0] != "lvs0/volume-1" || b.ProductName != "Logical Volume" ||
		b.NumBlocks != 256*1024 || b.BlockSize != 4096 || b.DriverSpecific.Lvol.LvolStoreUUID != lvsUUID ||
		b.DriverSpecific.Lvol.BaseBdev != "Malloc0" || b.DriverSpecific.Lvol.ThinProvision {
		t.Fatalf("lvol bdev: %+v", b)
	}

	call(t, c, "bdev_lvol_resize", map[string]any{"name": "lvs0/volume-1", "size_in_mib": 1500}, nil)
	call(t, c, "bdev_get_bdevs", map[string]any{"name": lvolUUID}, &bdevs)
	if bdevs[0].NumBlocks != 375*1024 { // 1500 MiB -> 375 clusters
		t.Fatalf("resized num_blocks %d", bdevs[0].NumBlocks)
	}

	// Export it like the spdk-nvmeof target helper does.
	nqn := "nqn.2016-06.io.spdk:cnode1"
	call(t, c, "nvmf_create_transport", map[string]any{"trtype": "TCP"}, nil)
	call(t, c, "nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true, "serial_number": "TBPKIRMN38EA"}, nil)
	call(t, c, "nvmf_subsystem_add_listener", map[string]any{"nqn": nqn,
		"listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420"}}, nil)
	var nsid int
	call(t, c, "nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": lvolUUID, "nsid": 1}}, &nsid)
	if nsid != 1 {
		t.Fatalf("nsid %d", nsid)
	}
	call(t, c, "nvmf_delete_subsystem", map[string]any{"nqn": nqn}, nil)

	call(t, c, "bdev_lvol_delete", map[string]any{"name": lvolUUID}, nil)
	callErr(t, c, "bdev_lvol_delete", map[string]any{"name": lvolUUID}, -19)
	callErr(t, c, "bdev_lvol_delete", map[string]any{"name": "Malloc0"}, -19) // not an lvol
	call(t, c, "bdev_lvol_get_lvstores", nil, &lvs)
	if lvs[0].FreeClusters != 511 {
		t.Fatalf("free clusters after delete: %d", lvs[0].FreeClusters)
	}
	call(t, c, "bdev_lvol_delete_lvstore", map[string]any{"lvs_name": "lvs0"}, nil)
	call(t, c, "bdev_lvol_get_lvstores", nil, &lvs)
	if len(lvs) != 0 {
		t.Fatalf("lvstores after delete: %+v", lvs)
	}
}

// TestLvolExportedToPeer: a DPU emulator attaches, over its peer link, the
// namespace a "Cinder target" emulator exports from an lvol, and sees its size.
func TestLvolExportedToPeer(t *testing.T) {
	target, tc := startLvolEmu(t, Options{})
	_, dc := startLvolEmu(t, Options{Peers: []*Emulator{target}})
	var s, lvs, lv string
	call(t, tc, "bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 1 << 20, "block_size": 4096}, &s)
	call(t, tc, "bdev_lvol_create_lvstore", map[string]any{"bdev_name": "Malloc0", "lvs_name": "lvs0"}, &lvs)
	call(t, tc, "bdev_lvol_create", map[string]any{"lvol_name": "volume-x", "lvs_name": "lvs0", "size_in_mib": 1024, "thin_provision": true}, &lv)
	call(t, tc, "nvmf_create_transport", map[string]any{"trtype": "TCP"}, nil)
	nqn := "nqn.2016-06.io.spdk:cnode7"
	call(t, tc, "nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, nil)
	call(t, tc, "nvmf_subsystem_add_listener", map[string]any{"nqn": nqn,
		"listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420"}}, nil)
	call(t, tc, "nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": lv, "nsid": 1}}, nil)

	var names []string
	call(t, dc, "bdev_nvme_attach_controller", map[string]any{"name": "vol", "trtype": "tcp", "traddr": "127.0.0.1",
		"trsvcid": "4420", "subnqn": nqn, "adrfam": "ipv4"}, &names)
	if len(names) != 1 || names[0] != "voln1" {
		t.Fatalf("attached bdevs %v", names)
	}
	var bdevs []struct {
		UUID      string `json:"uuid"`
		NumBlocks int64  `json:"num_blocks"`
	}
	call(t, dc, "bdev_get_bdevs", map[string]any{"name": "voln1"}, &bdevs)
	if bdevs[0].UUID != lv || bdevs[0].NumBlocks != 1024*256 {
		t.Fatalf("remote namespace bdev %+v (lvol %s)", bdevs[0], lv)
	}
	// Thin lvols take no space until written.
	var info []lvsInfo
	call(t, tc, "bdev_lvol_get_lvstores", nil, &info)
	if info[0].FreeClusters != info[0].TotalDataClusters {
		t.Fatalf("thin lvol used clusters: %+v", info[0])
	}
	raw, _ := json.Marshal(info)
	t.Logf("lvstores %s", raw)
}
