package spdktest

import (
	"encoding/json"
	"sort"
	"strings"
)

const discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

type nsJSON struct {
	NSID     int    `json:"nsid"`
	BdevName string `json:"bdev_name"`
	Name     string `json:"name"`
	NGUID    string `json:"nguid,omitempty"`
	EUI64    string `json:"eui64,omitempty"`
	UUID     string `json:"uuid,omitempty"`
}

type subsystem struct {
	nqn, serial, model string
	allowAnyHost       bool
	hosts              []string // newest first
	hostKeys           map[string]hostKeys
	maxNamespaces      int
	listeners          []Listener // newest first, as SPDK lists them
	namespaces         []nsJSON
}

// handlers is the method table. It is never modified after initialisation.
var handlers = map[string]handler{
	// lvol.go: what Cinder's SPDK driver calls on its target.
	"bdev_lvol_create_lvstore": bdevLvolCreateLvstore,
	"bdev_lvol_delete_lvstore": bdevLvolDeleteLvstore,
	"bdev_lvol_get_lvstores":   bdevLvolGetLvstores,
	"bdev_lvol_create":         bdevLvolCreate,
	"bdev_lvol_delete":         bdevLvolDelete,
	"bdev_lvol_resize":         bdevLvolResize,
	// lvolsnap.go: Cinder's snapshots and volumes from snapshots.
	"bdev_lvol_snapshot":        bdevLvolSnapshot,
	"bdev_lvol_clone":           bdevLvolClone,
	"bdev_lvol_inflate":         bdevLvolInflate,
	"bdev_lvol_decouple_parent": bdevLvolDecoupleParent,

	"spdk_get_version":               spdkGetVersion,
	"rpc_get_methods":                rpcGetMethods,
	"bdev_nvme_attach_controller":    bdevNVMeAttach,
	"bdev_nvme_get_controllers":      bdevNVMeGetControllers,
	"bdev_nvme_detach_controller":    bdevNVMeDetach,
	"bdev_get_bdevs":                 bdevGetBdevs,
	"bdev_malloc_create":             bdevMallocCreate,
	"bdev_malloc_delete":             bdevDelete("malloc"),
	"bdev_aio_create":                bdevAIOCreate,
	"bdev_aio_delete":                bdevDelete("aio"),
	"bdev_aio_rescan":                bdevAIORescan,
	"bdev_set_qos_limit":             bdevSetQoSLimit,
	"nvmf_create_transport":          nvmfCreateTransport,
	"nvmf_get_transports":            nvmfGetTransports,
	"nvmf_create_subsystem":          nvmfCreateSubsystem,
	"nvmf_delete_subsystem":          nvmfDeleteSubsystem,
	"nvmf_get_subsystems":            nvmfGetSubsystems,
	"nvmf_subsystem_add_ns":          nvmfAddNS,
	"nvmf_subsystem_remove_ns":       nvmfRemoveNS,
	"nvmf_subsystem_add_listener":    nvmfListener(true),
	"nvmf_subsystem_remove_listener": nvmfListener(false),
	"nvmf_subsystem_add_host":        nvmfHost(true),
	"nvmf_subsystem_remove_host":     nvmfHost(false),
	"nvmf_subsystem_allow_any_host":  nvmfAllowAnyHost,
	"keyring_file_add_key":           keyringFileAddKey,
	"keyring_file_remove_key":        keyringFileRemoveKey,
	"keyring_get_keys":               keyringGetKeys,
	"emulation_function_list":        snapFunctionList,
	"nvme_subsystem_create":          snapSubsystemCreate,
	"nvme_subsystem_destroy":         snapSubsystemDestroy,
	"nvme_subsystem_list":            snapSubsystemList,
	"nvme_namespace_create":          snapNamespaceCreate,
	"nvme_namespace_destroy":         snapNamespaceDestroy,
	"nvme_namespace_list":            snapNamespaceList,
	"nvme_controller_create":         snapControllerCreate,
	"nvme_controller_destroy":        snapControllerDestroy,
	"nvme_controller_list":           snapControllerList,
	"nvme_controller_attach_ns":      snapControllerNS(true),
	"nvme_controller_detach_ns":      snapControllerNS(false),
	"nvme_controller_resume":         snapControllerSuspend(false),
	"nvme_controller_suspend":        snapControllerSuspend(true),
}

func nvmfCreateTransport(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Trtype *string `json:"trtype"`
		// Tuning knobs are accepted and ignored.
		TgtName               string `json:"tgt_name"`
		MaxQueueDepth         int    `json:"max_queue_depth"`
		MaxIOQpairsPerCtrlr   int    `json:"max_io_qpairs_per_ctrlr"`
		InCapsuleDataSize     int    `json:"in_capsule_data_size"`
		MaxIOSize             int    `json:"max_io_size"`
		IOUnitSize            int    `json:"io_unit_size"`
		MaxAQDepth            int    `json:"max_aq_depth"`
		NumSharedBuffers      int    `json:"num_shared_buffers"`
		BufCacheSize          int    `json:"buf_cache_size"`
		DisableMappableBar0   bool   `json:"disable_mappable_bar0"`
		DisableAdaptiveIRQ    bool   `json:"disable_adaptive_irq"`
		DisableShadowDoorbell bool   `json:"disable_shadow_doorbells"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Trtype == nil {
		return nil, errInvalidParams
	}
	tt := strings.ToUpper(*p.Trtype)
	if tt != "TCP" && tt != "VFIOUSER" {
		// The emulator has no RDMA device (nor vendor transports).
		return nil, errf(-32603, "Transport type '%s' does not exist", *p.Trtype)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.st.transports {
		if t == tt {
			return nil, errf(-32603, "Transport type '%s' already exists", tt)
		}
	}
	e.st.transports = append(e.st.transports, tt)
	return true, nil
}

func nvmfGetTransports(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		TgtName string `json:"tgt_name"`
		Trtype  string `json:"trtype"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []any{}
	for _, t := range e.st.transports {
		if p.Trtype != "" && !strings.EqualFold(p.Trtype, t) {
			continue
		}
		switch t {
		case "TCP": // defaults seen in a-setup.jsonl
			out = append(out, struct {
				Trtype              string `json:"trtype"`
				MaxQueueDepth       int    `json:"max_queue_depth"`
				MaxIOQpairsPerCtrlr int    `json:"max_io_qpairs_per_ctrlr"`
				InCapsuleDataSize   int    `json:"in_capsule_data_size"`
				MaxIOSize           int    `json:"max_io_size"`
				IOUnitSize          int    `json:"io_unit_size"`
				MaxAQDepth          int    `json:"max_aq_depth"`
				NumSharedBuffers    int    `json:"num_shared_buffers"`
				BufCacheSize        uint32 `json:"buf_cache_size"`
				DifInsertOrStrip    bool   `json:"dif_insert_or_strip"`
				Zcopy               bool   `json:"zcopy"`
				C2HSuccess          bool   `json:"c2h_success"`
				SockPriority        int    `json:"sock_priority"`
				AbortTimeoutSec     int    `json:"abort_timeout_sec"`
				AckTimeout          int    `json:"ack_timeout"`
				DataWrPoolSize      int    `json:"data_wr_pool_size"`
			}{"TCP", 128, 127, 4096, 131072, 131072, 128, 511, 4294967295, false, false, true, 0, 1, 0, 0})
		case "VFIOUSER": // defaults seen in b-dpu.jsonl
			out = append(out, struct {
				Trtype              string `json:"trtype"`
				MaxQueueDepth       int    `json:"max_queue_depth"`
				MaxIOQpairsPerCtrlr int    `json:"max_io_qpairs_per_ctrlr"`
				InCapsuleDataSize   int    `json:"in_capsule_data_size"`
				MaxIOSize           int    `json:"max_io_size"`
				IOUnitSize          int    `json:"io_unit_size"`
				MaxAQDepth          int    `json:"max_aq_depth"`
				NumSharedBuffers    int    `json:"num_shared_buffers"`
				BufCacheSize        int    `json:"buf_cache_size"`
				DifInsertOrStrip    bool   `json:"dif_insert_or_strip"`
				Zcopy               bool   `json:"zcopy"`
				AbortTimeoutSec     int    `json:"abort_timeout_sec"`
				AckTimeout          int    `json:"ack_timeout"`
				DataWrPoolSize      int    `json:"data_wr_pool_size"`
			}{"VFIOUSER", 256, 127, 0, 131072, 131072, 32, 0, 0, false, false, 0, 0, 0})
		}
	}
	return out, nil
}

func nvmfCreateSubsystem(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN                   *string `json:"nqn"`
		TgtName               string  `json:"tgt_name"`
		SerialNumber          *string `json:"serial_number"`
		ModelNumber           *string `json:"model_number"`
		MaxNamespaces         int     `json:"max_namespaces"`
		AllowAnyHost          bool    `json:"allow_any_host"`
		AnaReporting          bool    `json:"ana_reporting"`
		MinCntlid             int     `json:"min_cntlid"`
		MaxCntlid             int     `json:"max_cntlid"`
		MaxDiscardSizeKiB     int     `json:"max_discard_size_kib"`
		MaxWriteZeroesSizeKiB int     `json:"max_write_zeroes_size_kib"`
		Passthrough           bool    `json:"passthrough"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.st.subsys[*p.NQN]; dup || *p.NQN == discoveryNQN || !strings.HasPrefix(*p.NQN, "nqn.") {
		return nil, errf(-32603, "Unable to create subsystem %s", *p.NQN)
	}
	s := &subsystem{nqn: *p.NQN, serial: "00000000000000000000", model: "SPDK bdev Controller",
		allowAnyHost: p.AllowAnyHost, maxNamespaces: 32}
	if p.SerialNumber != nil {
		s.serial = *p.SerialNumber
	}
	if p.ModelNumber != nil {
		s.model = *p.ModelNumber
	}
	if p.MaxNamespaces > 0 {
		s.maxNamespaces = p.MaxNamespaces
	}
	e.st.subsys[s.nqn] = s
	return true, nil
}

func nvmfDeleteSubsystem(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN     *string `json:"nqn"`
		TgtName string  `json:"tgt_name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.subsys[*p.NQN]
	if !ok {
		return nil, errInvalidParams
	}
	for _, l := range s.listeners {
		if l.Trtype == "VFIOUSER" {
			e.closeVFIOUser(l.Traddr, true)
		}
	}
	delete(e.st.subsys, *p.NQN)
	return true, nil
}

func (s *subsystem) json() any {
	hosts := []any{}
	for _, h := range s.hosts {
		hosts = append(hosts, s.hostJSON(h))
	}
	ls := append([]Listener{}, s.listeners...)
	nss := append([]nsJSON{}, s.namespaces...)
	sort.Slice(nss, func(i, j int) bool { return nss[i].NSID < nss[j].NSID })
	return struct {
		NQN             string     `json:"nqn"`
		Subtype         string     `json:"subtype"`
		ListenAddresses []Listener `json:"listen_addresses"`
		AllowAnyHost    bool       `json:"allow_any_host"`
		Hosts           []any      `json:"hosts"`
		SerialNumber    string     `json:"serial_number"`
		ModelNumber     string     `json:"model_number"`
		MaxNamespaces   int        `json:"max_namespaces"`
		MinCntlid       int        `json:"min_cntlid"`
		MaxCntlid       int        `json:"max_cntlid"`
		Namespaces      []nsJSON   `json:"namespaces"`
	}{s.nqn, "NVMe", ls, s.allowAnyHost, hosts, s.serial, s.model, s.maxNamespaces, 1, 65519, nss}
}

func nvmfGetSubsystems(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		TgtName string  `json:"tgt_name"`
		NQN     *string `json:"nqn"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.NQN != nil {
		s, ok := e.st.subsys[*p.NQN]
		if !ok {
			return nil, errENODEV
		}
		return []any{s.json()}, nil
	}
	nqns := []string{discoveryNQN}
	for n := range e.st.subsys {
		nqns = append(nqns, n)
	}
	sort.Strings(nqns)
	out := []any{}
	for _, n := range nqns {
		if n == discoveryNQN {
			out = append(out, struct {
				NQN             string `json:"nqn"`
				Subtype         string `json:"subtype"`
				ListenAddresses []any  `json:"listen_addresses"`
				AllowAnyHost    bool   `json:"allow_any_host"`
				Hosts           []any  `json:"hosts"`
			}{discoveryNQN, "Discovery", []any{}, true, []any{}})
			continue
		}
		out = append(out, e.st.subsys[n].json())
	}
	return out, nil
}

// nguidFromUUID is SPDK's derivation of an NGUID from a bdev UUID.
func nguidFromUUID(u string) string {
	return strings.ToUpper(strings.ReplaceAll(u, "-", ""))
}

func nvmfAddNS(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN       *string `json:"nqn"`
		TgtName   string  `json:"tgt_name"`
		Namespace *struct {
			BdevName      *string `json:"bdev_name"`
			NSID          int64   `json:"nsid"`
			NGUID         string  `json:"nguid"`
			EUI64         string  `json:"eui64"`
			UUID          string  `json:"uuid"`
			PtplFile      string  `json:"ptpl_file"`
			Anagrpid      int     `json:"anagrpid"`
			NoAutoVisible bool    `json:"no_auto_visible"`
		} `json:"namespace"`
		NoAutoVisible bool `json:"no_auto_visible"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.Namespace == nil || p.Namespace.BdevName == nil {
		return nil, errInvalidParams
	}
	ns := p.Namespace
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.subsys[*p.NQN]
	if !ok {
		return nil, errInvalidParams // "Unable to find subsystem"
	}
	b := e.st.bdev(*ns.BdevName)
	if b == nil || e.st.claimed(b.name) {
		return nil, errInvalidParams // cannot be opened / already claimed
	}
	used := map[int]bool{}
	for _, n := range s.namespaces {
		used[n.NSID] = true
	}
	nsid := int(ns.NSID)
	if ns.NSID < 0 || ns.NSID > 0xFFFFFFFE || used[nsid] || nsid > s.maxNamespaces {
		return nil, errInvalidParams
	}
	if nsid == 0 {
		for nsid = 1; used[nsid]; nsid++ {
		}
		if nsid > s.maxNamespaces {
			return nil, errInvalidParams
		}
	}
	j := nsJSON{NSID: nsid, BdevName: b.name, Name: b.name, NGUID: strings.ToUpper(ns.NGUID), EUI64: ns.EUI64, UUID: ns.UUID}
	if ns.NGUID == "" && ns.EUI64 == "" && ns.UUID == "" {
		j.UUID, j.NGUID = b.uuid, nguidFromUUID(b.uuid)
	}
	s.namespaces = append(s.namespaces, j)
	return nsid, nil
}

func nvmfRemoveNS(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN     *string `json:"nqn"`
		NSID    *int    `json:"nsid"`
		TgtName string  `json:"tgt_name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.NSID == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.subsys[*p.NQN]
	if !ok {
		return nil, errInvalidParams
	}
	for i, n := range s.namespaces {
		if n.NSID == *p.NSID {
			s.namespaces = append(s.namespaces[:i], s.namespaces[i+1:]...)
			return true, nil
		}
	}
	return nil, errInvalidParams
}

func nvmfListener(add bool) handler {
	return func(e *Emulator, params json.RawMessage, _ bool) (any, error) {
		var p struct {
			NQN           *string   `json:"nqn"`
			ListenAddress *Listener `json:"listen_address"`
			TgtName       string    `json:"tgt_name"`
			SecureChannel bool      `json:"secure_channel"`
			SockImpl      string    `json:"sock_impl"`
		}
		if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.ListenAddress == nil ||
			p.ListenAddress.Trtype == "" || p.ListenAddress.Traddr == "" {
			return nil, errInvalidParams
		}
		l := *p.ListenAddress
		tt, ok := canonTrtype(l.Trtype)
		if !ok {
			return nil, errInvalidParams
		}
		l.Trtype = tt
		if l.Adrfam == "" {
			l.Adrfam = "IPv4" // what SPDK reports, even for VFIOUSER
		} else if af, ok := canonAdrfam(l.Adrfam); ok {
			l.Adrfam = af
		} else {
			return nil, errInvalidParams
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		s, ok := e.st.subsys[*p.NQN]
		if !ok {
			return nil, errInvalidParams
		}
		idx := -1
		for i, x := range s.listeners {
			if x.Trtype == l.Trtype && x.Traddr == l.Traddr && x.Trsvcid == l.Trsvcid {
				idx = i
			}
		}
		if !add {
			if idx < 0 {
				return nil, errInvalidParams // "Unable to remove listener, rc -2"
			}
			if l.Trtype == "VFIOUSER" {
				e.closeVFIOUser(l.Traddr, true)
			}
			s.listeners = append(s.listeners[:idx], s.listeners[idx+1:]...)
			return true, nil
		}
		if idx >= 0 {
			return nil, errInvalidParams // "Listener already exists"
		}
		haveTransport := false
		for _, t := range e.st.transports {
			haveTransport = haveTransport || t == tt
		}
		if !haveTransport {
			return nil, errInvalidParams
		}
		if tt == "VFIOUSER" {
			if err := e.listenVFIOUser(l.Traddr); err != nil {
				return nil, err // the failed listener is not kept
			}
		}
		s.listeners = append([]Listener{l}, s.listeners...)
		return true, nil
	}
}
