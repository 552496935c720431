package spdktest

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Listener is an NVMe-oF listen address.
type Listener struct {
	Trtype  string `json:"trtype"`
	Adrfam  string `json:"adrfam,omitempty"`
	Traddr  string `json:"traddr"`
	Trsvcid string `json:"trsvcid,omitempty"`
}

// RemoteNamespace is a namespace of a remote subsystem.
type RemoteNamespace struct {
	NSID      int    `json:"nsid"`
	UUID      string `json:"uuid"`
	NGUID     string `json:"nguid,omitempty"`
	BlockSize int    `json:"block_size,omitempty"` // default 512
	NumBlocks int64  `json:"num_blocks,omitempty"` // default 131072
}

// RemoteSubsystem is an NVMe-oF subsystem on a remote target.
type RemoteSubsystem struct {
	NQN          string            `json:"nqn"`
	Serial       string            `json:"serial_number,omitempty"`
	Model        string            `json:"model_number,omitempty"`
	Listeners    []Listener        `json:"listeners"`
	AllowAnyHost bool              `json:"allow_any_host,omitempty"`
	Hosts        []string          `json:"hosts,omitempty"`
	Namespaces   []RemoteNamespace `json:"namespaces"`
}

type trid struct {
	Trtype  string `json:"trtype"`
	Adrfam  string `json:"adrfam,omitempty"`
	Traddr  string `json:"traddr"`
	Trsvcid string `json:"trsvcid,omitempty"`
	Subnqn  string `json:"subnqn,omitempty"`
}

type nvmePath struct {
	trid       trid
	alternates []trid
	cntlid     int
	state      string
	// The path's reconnect knobs and its outage (faults.go).
	loss               int32
	delay              uint32
	downSince, upSince time.Time
}

type nvmeCtrlr struct {
	name    string
	subnqn  string
	hostnqn string
	paths   []*nvmePath
	remote  RemoteSubsystem // what was seen at first connect
	bdevs   []string
}

type bdev struct {
	name, uuid, product string
	aliases             []string
	blockSize           int
	numBlocks           int64
	kind                string // nvme, malloc, aio
	ctrlr               string // nvme
	nsid                int    // nvme
	filename            string // aio
	bsOverride          bool   // aio
	readonly            bool   // aio
	qos                 rateLimits
	qosBusy             bool // a bdev_set_qos_limit is in progress
}

type state struct {
	bdevs      []*bdev // registration order
	ctrlrs     []*nvmeCtrlr
	cntlids    map[string]int
	transports []string
	subsys     map[string]*subsystem
	snapSubs   map[string]*snapSubsystem
	snapCtrls  []*snapCtrl
	snapNextID int
	lvstores   []*lvstore    // lvol.go
	keys       []*keyringKey // keyring.go
}

func newState() *state {
	return &state{cntlids: map[string]int{}, subsys: map[string]*subsystem{}, snapSubs: map[string]*snapSubsystem{}}
}

func (s *state) bdev(name string) *bdev {
	for _, b := range s.bdevs {
		if b.name == name {
			return b
		}
		for _, a := range b.aliases {
			if a == name {
				return b
			}
		}
	}
	return nil
}

func (s *state) ctrlr(name string) *nvmeCtrlr {
	for _, c := range s.ctrlrs {
		if c.name == name {
			return c
		}
	}
	return nil
}

// claimed reports whether an nvmf or SNAP namespace uses bdev name.
func (s *state) claimed(name string) bool {
	for _, ss := range s.subsys {
		for _, ns := range ss.namespaces {
			if ns.BdevName == name {
				return true
			}
		}
	}
	for _, ss := range s.snapSubs {
		for _, ns := range ss.namespaces {
			if ns.bdev == name {
				return true
			}
		}
	}
	return false
}

// removeBdevs unregisters bdevs; namespaces exporting them vanish with them
// (SPDK hot-removes the namespace: transcript "detach Nvme0 while exported").
func (s *state) removeBdevs(names []string) {
	gone := map[string]bool{}
	for _, n := range names {
		gone[n] = true
	}
	out := s.bdevs[:0]
	for _, b := range s.bdevs {
		if !gone[b.name] {
			out = append(out, b)
		}
	}
	s.bdevs = out
	for _, ss := range s.subsys {
		keep := ss.namespaces[:0]
		for _, ns := range ss.namespaces {
			if !gone[ns.BdevName] {
				keep = append(keep, ns)
			}
		}
		ss.namespaces = keep
	}
}

func canonTrtype(s string) (string, bool) {
	switch strings.ToUpper(s) {
	case "TCP":
		return "TCP", true
	case "RDMA":
		return "RDMA", true
	case "PCIE":
		return "PCIe", true
	case "VFIOUSER":
		return "VFIOUSER", true
	}
	return s, false
}

func canonAdrfam(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "ipv4":
		return "IPv4", true
	case "ipv6":
		return "IPv6", true
	case "ib":
		return "IB", true
	case "fc":
		return "FC", true
	case "intra_host":
		return "INTRA_HOST", true
	}
	return s, false
}

// ---- bdev_nvme ----

type attachParams struct {
	Name                    *string `json:"name"`
	Trtype                  *string `json:"trtype"`
	Traddr                  *string `json:"traddr"`
	Adrfam                  string  `json:"adrfam"`
	Trsvcid                 string  `json:"trsvcid"`
	Priority                string  `json:"priority"`
	Subnqn                  string  `json:"subnqn"`
	Hostnqn                 *string `json:"hostnqn"`
	Hostaddr                string  `json:"hostaddr"`
	Hostsvcid               string  `json:"hostsvcid"`
	PrchkReftag             bool    `json:"prchk_reftag"`
	PrchkGuard              bool    `json:"prchk_guard"`
	Hdgst                   bool    `json:"hdgst"`
	Ddgst                   bool    `json:"ddgst"`
	FabricsConnectTimeoutUs uint64  `json:"fabrics_connect_timeout_us"`
	Multipath               *string `json:"multipath"`
	NumIOQueues             uint32  `json:"num_io_queues"`
	CtrlrLossTimeoutSec     *int32  `json:"ctrlr_loss_timeout_sec"`
	ReconnectDelaySec       *uint32 `json:"reconnect_delay_sec"`
	FastIOFailTimeoutSec    *uint32 `json:"fast_io_fail_timeout_sec"`
	Psk                     string  `json:"psk"`
	MaxBdevs                uint32  `json:"max_bdevs"`
	DhchapKey               string  `json:"dhchap_key"`
	DhchapCtrlrKey          string  `json:"dhchap_ctrlr_key"`
	AllowUnrecognizedCSI    bool    `json:"allow_unrecognized_csi"`
}

// resilient applies bdev_nvme's rule on the reconnect knobs.
func resilient(loss int32, delay, fast uint32) bool {
	if delay == 0 {
		return loss == 0 && fast == 0
	}
	if loss != -1 && int64(loss) < int64(delay) {
		return false
	}
	if fast != 0 {
		if fast < delay {
			return false
		}
		if loss != -1 && int64(fast) >= int64(loss) {
			return false
		}
	}
	return true
}

// remoteView looks up trid among the reachable targets: reachable reports
// whether anything listens on the address, sub the subsystem if it exists there.
func (e *Emulator) remoteView(t trid, peersOnly bool) (reachable bool, sub *RemoteSubsystem) {
	match := func(ls []Listener) bool {
		for _, l := range ls {
			tt, _ := canonTrtype(l.Trtype)
			if tt == t.Trtype && l.Traddr == t.Traddr && l.Trsvcid == t.Trsvcid {
				return true
			}
		}
		return false
	}
	var all []RemoteSubsystem
	if !peersOnly {
		e.mu.Lock()
		all = append(all, e.remotes...)
		all = append(all, e.st.exportedTCP()...)
		e.mu.Unlock()
	}
	for _, p := range e.opts.Peers {
		p.mu.Lock()
		all = append(all, p.st.exportedTCP()...)
		p.mu.Unlock()
	}
	for i := range all {
		if match(all[i].Listeners) {
			reachable = true
			if all[i].NQN == t.Subnqn {
				s := all[i]
				sub = &s
			}
		}
	}
	return reachable, sub
}

// followRemotes makes every NVMe bdev follow the remote namespace behind it,
// as real SPDK does through the NVMe namespace-change notice within ms and
// with no RPC (c-resize.jsonl): a resize shows at once; a namespace removed
// on the target hot-removes the bdev (and any local namespace exporting it)
// while the controller stays; a namespace added back reappears as a bdev,
// but no local subsystem exports it again by itself. Unreachable targets
// change nothing (path states are faults.go's). Locks are taken one at a
// time (own, then each peer), never nested.
func (e *Emulator) followRemotes() {
	type ctl struct {
		name string
		t    trid
	}
	var all []ctl
	e.mu.Lock()
	for _, c := range e.st.ctrlrs {
		if len(c.paths) > 0 {
			all = append(all, ctl{c.name, c.paths[0].trid})
		}
	}
	e.mu.Unlock()
	for _, c := range all {
		_, sub := e.remoteView(c.t, false)
		if sub == nil {
			continue
		}
		e.mu.Lock()
		e.st.follow(c.name, sub.Namespaces)
		e.mu.Unlock()
	}
}

// follow brings controller name's bdevs in line with the remote namespaces.
func (s *state) follow(name string, remote []RemoteNamespace) {
	c := s.ctrlr(name)
	if c == nil {
		return
	}
	want := map[int]RemoteNamespace{}
	for _, ns := range remote {
		want[ns.NSID] = ns
	}
	have := map[int]bool{}
	var gone []string
	for _, b := range s.bdevs {
		if b.kind != "nvme" || b.ctrlr != name {
			continue
		}
		have[b.nsid] = true
		ns, ok := want[b.nsid]
		switch {
		case !ok:
			gone = append(gone, b.name)
		case ns.NumBlocks > 0:
			b.numBlocks = ns.NumBlocks
		}
	}
	if len(gone) > 0 {
		s.removeBdevs(gone)
		keep := c.bdevs[:0]
		for _, n := range c.bdevs {
			if !slices.Contains(gone, n) {
				keep = append(keep, n)
			}
		}
		c.bdevs = keep
	}
	for _, ns := range remote {
		if !have[ns.NSID] {
			s.addNVMeBdev(c, ns)
		}
	}
}

// addNVMeBdev registers the bdev of remote namespace ns under controller c
// ("<ctrl>n<nsid>"), unless a bdev already holds its uuid: SPDK then logs
// "Unable to add uuid:... alias ... already exists" and creates none (an
// instance attaching its own export without an explicit uuid, research §2.4).
func (s *state) addNVMeBdev(c *nvmeCtrlr, ns RemoteNamespace) {
	bs, nb := ns.BlockSize, ns.NumBlocks
	if bs == 0 {
		bs = 512
	}
	if nb == 0 {
		nb = 131072
	}
	if ns.UUID != "" && s.bdev(ns.UUID) != nil {
		return
	}
	b := &bdev{name: fmt.Sprintf("%sn%d", c.name, ns.NSID), uuid: ns.UUID, product: "NVMe disk",
		blockSize: bs, numBlocks: nb, kind: "nvme", ctrlr: c.name, nsid: ns.NSID}
	if ns.UUID != "" {
		b.aliases = []string{ns.UUID}
	}
	s.bdevs = append(s.bdevs, b)
	c.bdevs = append(c.bdevs, b.name)
}

// exportedTCP presents this emulator's nvmf subsystems with TCP listeners as
// remote subsystems (this instance acting as the Cinder target).
func (s *state) exportedTCP() []RemoteSubsystem {
	var out []RemoteSubsystem
	for _, ss := range s.subsys {
		var ls []Listener
		for _, l := range ss.listeners {
			if l.Trtype == "TCP" {
				ls = append(ls, l)
			}
		}
		if len(ls) == 0 {
			continue
		}
		r := RemoteSubsystem{NQN: ss.nqn, Serial: ss.serial, Model: ss.model, Listeners: ls, AllowAnyHost: ss.allowAnyHost, Hosts: ss.hosts}
		for _, ns := range ss.namespaces {
			rn := RemoteNamespace{NSID: ns.NSID, UUID: ns.UUID, NGUID: ns.NGUID}
			if b := s.bdev(ns.BdevName); b != nil {
				rn.BlockSize, rn.NumBlocks = b.blockSize, b.numBlocks
			}
			r.Namespaces = append(r.Namespaces, rn)
		}
		out = append(out, r)
	}
	return out
}

func bdevNVMeAttach(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p attachParams
	if err := decodeStrict(params, &p); err != nil || p.Name == nil || p.Trtype == nil || p.Traddr == nil {
		return nil, errDecode
	}
	mode := "failover" // v24.09 default
	if p.Multipath != nil {
		switch *p.Multipath {
		case "disable", "failover", "multipath":
			mode = *p.Multipath
		default:
			return nil, errDecode
		}
	}
	var loss int32
	var delay, fast uint32
	if p.CtrlrLossTimeoutSec != nil {
		loss = *p.CtrlrLossTimeoutSec
	}
	if p.ReconnectDelaySec != nil {
		delay = *p.ReconnectDelaySec
	}
	if p.FastIOFailTimeoutSec != nil {
		fast = *p.FastIOFailTimeoutSec
	}
	if !resilient(loss, delay, fast) {
		return nil, errEINVAL
	}
	hostnqn := ""
	if p.Hostnqn != nil {
		hostnqn = *p.Hostnqn
	} else {
		// SPDK makes up a random per-process host NQN.
		hostnqn = "nqn.2014-08.org.nvmexpress:uuid:" + uuid.NewString()
	}
	tt, known := canonTrtype(*p.Trtype)
	t := trid{Trtype: tt, Traddr: *p.Traddr, Trsvcid: p.Trsvcid, Subnqn: p.Subnqn}
	if p.Adrfam != "" {
		af, ok := canonAdrfam(p.Adrfam)
		if !ok {
			return nil, errEINVAL
		}
		t.Adrfam = af
	}
	name := *p.Name

	// check runs the synchronous part; it is repeated when the asynchronous
	// connect completes, since the state may have moved meanwhile.
	check := func() (*nvmeCtrlr, error) {
		c := e.st.ctrlr(name)
		if c != nil {
			if mode == "disable" {
				return nil, errf(-114, "A controller named %s already exists and multipath is disabled", name)
			}
			first := c.paths[0].trid
			if first.Traddr == t.Traddr && first.Trsvcid == t.Trsvcid {
				return nil, errf(-114, "A controller named %s already exists with the specified network path", name)
			}
			if c.subnqn != t.Subnqn {
				return nil, errf(-22, "A controller named %s already exists, but uses a different subnqn (%s)", name, c.subnqn)
			}
			if c.hostnqn != hostnqn {
				return nil, errf(-22, "A controller named %s already exists, but uses a different hostnqn (%s)", name, c.hostnqn)
			}
		}
		if !known || tt == "VFIOUSER" {
			return nil, errENODEV // "NVMe trtype ... not available"
		}
		for _, o := range e.st.ctrlrs {
			if o.hostnqn != hostnqn {
				continue
			}
			for _, pa := range o.paths {
				for _, x := range append([]trid{pa.trid}, pa.alternates...) {
					if x.Trtype == t.Trtype && x.Traddr == t.Traddr && x.Trsvcid == t.Trsvcid && x.Subnqn == t.Subnqn {
						return nil, errEEXIST
					}
				}
			}
		}
		return c, nil
	}
	e.mu.Lock()
	_, err := check()
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	reachable, sub := e.remoteView(t, false)
	if !reachable {
		return nil, errENODEV
	}
	if sub == nil {
		return nil, errEIO // unknown subnqn: connect rejected
	}
	allowed := sub.AllowAnyHost
	for _, h := range sub.Hosts {
		allowed = allowed || h == hostnqn
	}
	if !allowed {
		return nil, errEIO
	}
	remote := *sub
	return async(func(stop <-chan struct{}) (any, error) {
		if d := e.opts.AttachLatency; d > 0 {
			select {
			case <-time.After(d):
			case <-stop:
				return nil, errENODEV
			}
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		c, err := check()
		if err != nil {
			return nil, err
		}
		e.st.cntlids[t.Subnqn]++
		path := &nvmePath{trid: t, cntlid: e.st.cntlids[t.Subnqn], state: "enabled", loss: loss, delay: delay}
		if c != nil {
			if mode == "failover" {
				c.paths[0].alternates = append(c.paths[0].alternates, t)
				return []string{}, nil
			}
			c.paths = append(c.paths, path)
			return append([]string{}, c.bdevs...), nil
		}
		c = &nvmeCtrlr{name: name, subnqn: t.Subnqn, hostnqn: hostnqn, paths: []*nvmePath{path}, remote: remote}
		e.st.ctrlrs = append(e.st.ctrlrs, c)
		for _, ns := range remote.Namespaces {
			e.st.addNVMeBdev(c, ns)
		}
		return append([]string{}, c.bdevs...), nil
	}), nil
}

type ctrlrJSON struct {
	State          string `json:"state"`
	Trid           trid   `json:"trid"`
	AlternateTrids []trid `json:"alternate_trids,omitempty"`
	Cntlid         int    `json:"cntlid"`
	Host           struct {
		NQN   string `json:"nqn"`
		Addr  string `json:"addr"`
		Svcid string `json:"svcid"`
	} `json:"host"`
}

type controllerJSON struct {
	Name   string      `json:"name"`
	Ctrlrs []ctrlrJSON `json:"ctrlrs"`
}

func (c *nvmeCtrlr) json() controllerJSON {
	out := controllerJSON{Name: c.name, Ctrlrs: []ctrlrJSON{}}
	for _, p := range c.paths {
		j := ctrlrJSON{State: p.state, Trid: p.trid, AlternateTrids: p.alternates, Cntlid: p.cntlid}
		j.Host.NQN = c.hostnqn
		out.Ctrlrs = append(out.Ctrlrs, j)
	}
	return out
}

func bdevNVMeGetControllers(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []controllerJSON{}
	if p.Name != nil {
		c := e.st.ctrlr(*p.Name)
		if c == nil {
			// v24.09 sends +22 here (HEAD fixed it to -22).
			return nil, errf(22, "Controller %s does not exist", *p.Name)
		}
		return append(out, c.json()), nil
	}
	for _, c := range e.st.ctrlrs {
		out = append(out, c.json())
	}
	return out, nil
}

func bdevNVMeDetach(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name      *string `json:"name"`
		Trtype    string  `json:"trtype"`
		Traddr    string  `json:"traddr"`
		Adrfam    string  `json:"adrfam"`
		Trsvcid   string  `json:"trsvcid"`
		Subnqn    string  `json:"subnqn"`
		Hostaddr  string  `json:"hostaddr"`
		Hostsvcid string  `json:"hostsvcid"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Name == nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.st.ctrlr(*p.Name)
	if c == nil {
		return nil, errENODEV
	}
	matches := func(t trid) bool {
		tt, _ := canonTrtype(p.Trtype)
		af, _ := canonAdrfam(p.Adrfam)
		return (p.Trtype == "" || tt == t.Trtype) && (p.Traddr == "" || p.Traddr == t.Traddr) &&
			(p.Adrfam == "" || af == t.Adrfam) && (p.Trsvcid == "" || p.Trsvcid == t.Trsvcid) &&
			(p.Subnqn == "" || p.Subnqn == t.Subnqn)
	}
	whole := p.Trtype == "" && p.Traddr == "" && p.Adrfam == "" && p.Trsvcid == "" && p.Subnqn == ""
	if !whole {
		found := false
		var keep []*nvmePath
		for _, pa := range c.paths {
			var alts []trid
			for _, a := range pa.alternates {
				if matches(a) {
					found = true
				} else {
					alts = append(alts, a)
				}
			}
			pa.alternates = alts
			if matches(pa.trid) {
				found = true
				if len(pa.alternates) == 0 {
					continue
				}
				pa.trid, pa.alternates = pa.alternates[0], pa.alternates[1:]
				e.st.cntlids[pa.trid.Subnqn]++
				pa.cntlid = e.st.cntlids[pa.trid.Subnqn]
			}
			keep = append(keep, pa)
		}
		if !found {
			return nil, errENXIO
		}
		c.paths = keep
		if len(keep) > 0 {
			return true, nil
		}
	}
	e.st.removeBdevs(c.bdevs)
	out := e.st.ctrlrs[:0]
	for _, o := range e.st.ctrlrs {
		if o != c {
			out = append(out, o)
		}
	}
	e.st.ctrlrs = out
	return true, nil
}

// ---- generic bdevs ----

type rateLimits struct {
	RwIOs uint64 `json:"rw_ios_per_sec"`
	RwMB  uint64 `json:"rw_mbytes_per_sec"`
	RMB   uint64 `json:"r_mbytes_per_sec"`
	WMB   uint64 `json:"w_mbytes_per_sec"`
}

type ioTypes struct {
	Read            bool `json:"read"`
	Write           bool `json:"write"`
	Unmap           bool `json:"unmap"`
	Flush           bool `json:"flush"`
	Reset           bool `json:"reset"`
	NVMeAdmin       bool `json:"nvme_admin"`
	NVMeIO          bool `json:"nvme_io"`
	NVMeIOMD        bool `json:"nvme_io_md"`
	WriteZeroes     bool `json:"write_zeroes"`
	Zcopy           bool `json:"zcopy"`
	GetZoneInfo     bool `json:"get_zone_info"`
	ZoneManagement  bool `json:"zone_management"`
	ZoneAppend      bool `json:"zone_append"`
	Compare         bool `json:"compare"`
	CompareAndWrite bool `json:"compare_and_write"`
	Abort           bool `json:"abort"`
	SeekHole        bool `json:"seek_hole"`
	SeekData        bool `json:"seek_data"`
	Copy            bool `json:"copy"`
	NVMeIOVMD       bool `json:"nvme_iov_md"`
}

type memDomain struct {
	ID   string `json:"dma_device_id"`
	Type int    `json:"dma_device_type"`
}

type bdevJSON struct {
	Name           string      `json:"name"`
	Aliases        []string    `json:"aliases"`
	ProductName    string      `json:"product_name"`
	BlockSize      int         `json:"block_size"`
	NumBlocks      int64       `json:"num_blocks"`
	UUID           string      `json:"uuid"`
	NumaID         *int        `json:"numa_id,omitempty"`
	RateLimits     rateLimits  `json:"assigned_rate_limits"`
	Claimed        bool        `json:"claimed"`
	ClaimType      string      `json:"claim_type,omitempty"`
	Zoned          bool        `json:"zoned"`
	IOTypes        ioTypes     `json:"supported_io_types"`
	MemoryDomains  []memDomain `json:"memory_domains,omitempty"`
	DriverSpecific any         `json:"driver_specific"`
}

type oacs struct {
	Security int `json:"security"`
	Format   int `json:"format"`
	Firmware int `json:"firmware"`
	NSManage int `json:"ns_manage"`
}

type ctrlrData struct {
	Cntlid       int    `json:"cntlid"`
	VendorID     string `json:"vendor_id"`
	ModelNumber  string `json:"model_number"`
	SerialNumber string `json:"serial_number"`
	FirmwareRev  string `json:"firmware_revision"`
	Subnqn       string `json:"subnqn"`
	OACS         oacs   `json:"oacs"`
	MultiCtrlr   bool   `json:"multi_ctrlr"`
	AnaReporting bool   `json:"ana_reporting"`
}

type nvmeInfo struct {
	Trid      trid      `json:"trid"`
	CtrlrData ctrlrData `json:"ctrlr_data"`
	VS        struct {
		NVMeVersion string `json:"nvme_version"`
	} `json:"vs"`
	NSData struct {
		ID       int  `json:"id"`
		CanShare bool `json:"can_share"`
	} `json:"ns_data"`
}

func (s *state) bdevJSON(b *bdev) bdevJSON {
	j := bdevJSON{Name: b.name, Aliases: append([]string{}, b.aliases...), ProductName: b.product,
		BlockSize: b.blockSize, NumBlocks: b.numBlocks, UUID: b.uuid, RateLimits: b.qos}
	if s.claimed(b.name) {
		j.Claimed, j.ClaimType = true, "exclusive_write"
	}
	switch b.kind {
	case "nvme":
		n := -1
		j.NumaID = &n
		j.IOTypes = ioTypes{Read: true, Write: true, Unmap: true, Flush: true, Reset: true, NVMeAdmin: true, NVMeIO: true,
			WriteZeroes: true, Compare: true, CompareAndWrite: true, Abort: true, Copy: true}
		var infos []nvmeInfo
		if c := s.ctrlr(b.ctrlr); c != nil {
			for _, p := range c.paths {
				var in nvmeInfo
				in.Trid = p.trid
				in.CtrlrData = ctrlrData{Cntlid: p.cntlid, VendorID: "0x8086", ModelNumber: c.remote.Model,
					SerialNumber: c.remote.Serial, FirmwareRev: "24.09", Subnqn: c.subnqn, MultiCtrlr: true}
				in.VS.NVMeVersion = "1.3"
				in.NSData.ID, in.NSData.CanShare = b.nsid, true
				infos = append(infos, in)
				j.MemoryDomains = append(j.MemoryDomains, memDomain{"system", 1})
			}
		}
		j.DriverSpecific = struct {
			NVMe     []nvmeInfo `json:"nvme"`
			MPPolicy string     `json:"mp_policy"`
		}{infos, "active_passive"}
	case "malloc":
		j.IOTypes = ioTypes{Read: true, Write: true, Unmap: true, Flush: true, Reset: true, WriteZeroes: true,
			Zcopy: true, Abort: true, Copy: true}
		j.MemoryDomains = []memDomain{{"system", 1}, {"SPDK_ACCEL_DMA_DEVICE", 2}}
		j.DriverSpecific = struct{}{}
	case "lvol":
		// c-resize.jsonl: no flush; the base malloc's memory domains.
		j.IOTypes = ioTypes{Read: true, Write: true, Unmap: true, Reset: true, WriteZeroes: true, SeekHole: true, SeekData: true}
		j.MemoryDomains = []memDomain{{"system", 1}, {"SPDK_ACCEL_DMA_DEVICE", 2}}
		j.DriverSpecific = s.lvolDriverSpecific(b)
	case "aio":
		j.IOTypes = ioTypes{Read: true, Write: true, Flush: true, Reset: true, WriteZeroes: true}
		j.DriverSpecific = map[string]any{"aio": struct {
			Filename          string `json:"filename"`
			BlockSizeOverride bool   `json:"block_size_override"`
			Readonly          bool   `json:"readonly"`
			Fallocate         bool   `json:"fallocate"`
		}{b.filename, b.bsOverride, b.readonly, false}}
	}
	return j
}

func bdevGetBdevs(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name    *string `json:"name"`
		Timeout *uint64 `json:"timeout"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errDecode
	}
	lookup := func() (any, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		out := []bdevJSON{}
		if p.Name == nil {
			for _, b := range e.st.bdevs {
				out = append(out, e.st.bdevJSON(b))
			}
			return out, nil
		}
		b := e.st.bdev(*p.Name)
		if b == nil {
			return nil, errENODEV
		}
		return append(out, e.st.bdevJSON(b)), nil
	}
	res, err := lookup()
	if err == nil || p.Timeout == nil || *p.Timeout == 0 {
		return res, err
	}
	// bdev_get_bdevs with timeout waits for the bdev and answers
	// asynchronously (-110 when it never appears).
	deadline := time.Now().Add(time.Duration(*p.Timeout) * time.Millisecond)
	return async(func(stop <-chan struct{}) (any, error) {
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return nil, errETIMEDOUT
			case <-time.After(5 * time.Millisecond):
			}
			if res, err := lookup(); err == nil {
				return res, nil
			}
		}
		return nil, errETIMEDOUT
	}), nil
}

func bdevMallocCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name      string `json:"name"`
		NumBlocks *int64 `json:"num_blocks"`
		BlockSize *int   `json:"block_size"`
		UUID      string `json:"uuid"`
		MDSize    int    `json:"md_size"`
		Optimal   int    `json:"optimal_io_boundary"`
		PhysBS    int    `json:"physical_block_size"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NumBlocks == nil || p.BlockSize == nil {
		return nil, errDecode
	}
	if *p.BlockSize%512 != 0 || *p.NumBlocks <= 0 {
		return nil, errEINVAL
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.Name == "" {
		for i := 0; ; i++ {
			if n := fmt.Sprintf("Malloc%d", i); e.st.bdev(n) == nil {
				p.Name = n
				break
			}
		}
	}
	if e.st.bdev(p.Name) != nil {
		return nil, errEEXIST
	}
	if p.UUID == "" {
		p.UUID = uuid.NewString()
	}
	e.st.bdevs = append(e.st.bdevs, &bdev{name: p.Name, uuid: p.UUID, aliases: []string{p.UUID}, product: "Malloc disk",
		blockSize: *p.BlockSize, numBlocks: *p.NumBlocks, kind: "malloc"})
	return p.Name, nil
}

func bdevDelete(kind string) handler {
	return func(e *Emulator, params json.RawMessage, _ bool) (any, error) {
		var p struct {
			Name *string `json:"name"`
		}
		if err := decodeStrict(params, &p); err != nil || p.Name == nil {
			return nil, errDecode
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		b := e.st.bdev(*p.Name)
		if b == nil || b.kind != kind {
			return nil, errENODEV
		}
		e.st.removeBdevs([]string{b.name})
		return true, nil
	}
}

func bdevAIOCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Filename  *string `json:"filename"`
		Name      *string `json:"name"`
		BlockSize *int    `json:"block_size"`
		Readonly  bool    `json:"readonly"`
		Fallocate bool    `json:"fallocate"`
		UUID      string  `json:"uuid"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Filename == nil || p.Name == nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.bdev(*p.Name) != nil {
		return nil, errEEXIST
	}
	fi, err := os.Stat(*p.Filename)
	if err != nil {
		return nil, errENOENT
	}
	// c-configdrive.jsonl: a regular file has no block size to detect; the
	// given one must be a power of 2, at least 512, and divide the file size.
	bs := 0
	if p.BlockSize != nil {
		bs = *p.BlockSize
	}
	if bs < 512 || bs&(bs-1) != 0 || fi.Size()%int64(bs) != 0 {
		return nil, errEINVAL
	}
	id := p.UUID
	if id == "" {
		id = uuid.NewString()
	}
	e.st.bdevs = append(e.st.bdevs, &bdev{name: *p.Name, uuid: id, aliases: []string{id}, product: "AIO disk",
		blockSize: bs, numBlocks: fi.Size() / int64(bs), kind: "aio", filename: *p.Filename,
		bsOverride: p.BlockSize != nil, readonly: p.Readonly})
	return *p.Name, nil
}

// bdevAIORescan re-reads the file size (c-configdrive.jsonl): a partial last
// block is ignored; shrinking an exported bdev is refused with a plain -16.
func bdevAIORescan(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Name == nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.st.bdev(*p.Name)
	if b == nil || b.kind != "aio" {
		return nil, errENODEV
	}
	fi, err := os.Stat(b.filename)
	if err != nil {
		return nil, errENOENT
	}
	n := fi.Size() / int64(b.blockSize)
	if n < b.numBlocks && e.st.claimed(b.name) {
		return nil, errEBUSY
	}
	b.numBlocks = n
	return true, nil
}

func spdkGetVersion(_ *Emulator, _ json.RawMessage, hasParams bool) (any, error) {
	if hasParams {
		return nil, errf(-32602, "spdk_get_version method requires no parameters")
	}
	type fields struct {
		Major  int    `json:"major"`
		Minor  int    `json:"minor"`
		Patch  int    `json:"patch"`
		Suffix string `json:"suffix"`
	}
	return struct {
		Version string `json:"version"`
		Fields  fields `json:"fields"`
	}{"SPDK v24.09", fields{24, 9, 0, ""}}, nil
}

func rpcGetMethods(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Current        bool `json:"current"`
		IncludeAliases bool `json:"include_aliases"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errDecode
	}
	return e.methods, nil
}
