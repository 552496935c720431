package spdktest

// DOCA SNAP 4 methods. No transcript of a real SNAP exists: the method names,
// parameter keys and result shapes follow docs/bluefield-snap.md (NVIDIA's
// SNAP JSON-RPC client in NVIDIA/doca-platform and NVIDIA's published SNAP
// configuration); every key not listed there is refused like SPDK refuses an
// unknown key (-32602). Error codes are the emulator's choice (SNAP's are not
// published): decode errors -32602, missing objects -19, duplicates -17,
// objects in use -16.
//
// The card it emulates: SNAPPFs static NVMe PFs (not hot-plugged), each with
// up to SNAPVFs VFs that exist only once the host enabled SR-IOV on the PF
// (EnableSRIOV), and, unless SNAPNoInitConfig, the controller NVIDIA's
// published snap_rpc_init.conf pre-creates: subsystem
// nqn.2022-10.io.nvda.nvme:0 with the admin-only controller NVMeCtrl1 on PF 0.

import (
	"encoding/json"
	"fmt"
	"sort"
)

const (
	// SNAPInitNQN and SNAPInitCtrl are the subsystem and controller of
	// NVIDIA's published SNAP init configuration.
	SNAPInitNQN  = "nqn.2022-10.io.nvda.nvme:0"
	SNAPInitCtrl = "NVMeCtrl1"
	// snapDefaultNN is the maximal nsid of a subsystem created without nn
	// (NVIDIA's client relies on it being 0xFFFFFFFE).
	snapDefaultNN = 0xFFFFFFFE
	snapTypeNVMe  = "NVME"
	// snapTypeVirtioBlk marks the virtio-blk PFs of SNAPVirtioBlkPFs. The
	// exact string SNAP uses is not published; the agent only relies on
	// NVMe functions being "NVME".
	snapTypeVirtioBlk = "VIRTIO_BLK"
)

type snapNS struct {
	nsid              int
	bdev, uuid, nguid string
}

type snapSubsystem struct {
	nqn, sn, mn string
	nn, mnan    int
	namespaces  []*snapNS
}

type snapCtrl struct {
	id        string
	nqn       string
	pf        int
	vf        *int
	suspended bool
	adminOnly bool
	nsids     []int
}

// snapFn is one emulated PCIe function.
type snapFn struct {
	typ    string
	pf     int
	vf     *int
	bdf    string
	vuid   string
	vhcaID int
}

// snapFunctions lists the functions the host has now: the static PFs and
// the VFs SR-IOV enabled. Called with e.mu held.
func (e *Emulator) snapFunctions() []snapFn {
	var out []snapFn
	for pf := 0; pf < e.opts.SNAPPFs; pf++ {
		out = append(out, snapFn{typ: snapTypeNVMe, pf: pf, bdf: fmt.Sprintf("3b:00.%d", 2+pf),
			vuid: fmt.Sprintf("MT0000EMU0NVMES0D0F%d", 2+pf), vhcaID: 2 + pf})
		for vf := 0; vf < e.sriov[pf]; vf++ {
			v, n := vf, pf*e.opts.SNAPVFs+vf
			out = append(out, snapFn{typ: snapTypeNVMe, pf: pf, vf: &v, bdf: fmt.Sprintf("3b:%02x.%d", 4+n/8, n%8),
				vuid: fmt.Sprintf("MT0000EMU0NVMES0D0F%dVF%d", 2+pf, vf+1), vhcaID: 100 + n})
		}
	}
	for i := 0; i < e.opts.SNAPVirtioBlkPFs; i++ {
		out = append(out, snapFn{typ: snapTypeVirtioBlk, pf: i, bdf: fmt.Sprintf("3b:00.%d", 2+e.opts.SNAPPFs+i),
			vuid: fmt.Sprintf("MT0000EMU0VRTBLKS0D0F%d", 2+e.opts.SNAPPFs+i), vhcaID: 50 + i})
	}
	return out
}

func sameFn(pf int, vf *int, pf2 int, vf2 *int) bool {
	return pf == pf2 && (vf == nil) == (vf2 == nil) && (vf == nil || *vf == *vf2)
}

func (s *state) snapCtrl(id string) *snapCtrl {
	for _, c := range s.snapCtrls {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (s *state) snapCtrlOn(pf int, vf *int) *snapCtrl {
	for _, c := range s.snapCtrls {
		if sameFn(c.pf, c.vf, pf, vf) {
			return c
		}
	}
	return nil
}

// snapInit applies the published init configuration to a fresh state.
func (e *Emulator) snapInit(s *state) {
	if e.opts.SNAPNoInitConfig || e.opts.SNAPPFs == 0 {
		return
	}
	s.snapSubs[SNAPInitNQN] = &snapSubsystem{nqn: SNAPInitNQN, sn: "SNAPEMU0", mn: "SNAP emulated NVMe", nn: snapDefaultNN, mnan: 1024}
	s.snapCtrls = append(s.snapCtrls, &snapCtrl{id: SNAPInitCtrl, nqn: SNAPInitNQN, pf: 0, adminOnly: true})
	s.snapNextID = 1
}

// EnableSRIOV is the host writing n to sriov_numvfs of NVMe PF pf: its VFs
// 0..n-1 appear in emulation_function_list (0 removes them). SR-IOV is host
// state: it survives a SNAP restart. A VF that holds a controller cannot go.
func (e *Emulator) EnableSRIOV(pf, n int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if pf < 0 || pf >= e.opts.SNAPPFs || n < 0 || n > e.opts.SNAPVFs {
		return fmt.Errorf("spdktest: sriov_numvfs %d on NVMe PF %d: the card has %d PFs with at most %d VFs", n, pf, e.opts.SNAPPFs, e.opts.SNAPVFs)
	}
	for _, c := range e.st.snapCtrls {
		if c.pf == pf && c.vf != nil && *c.vf >= n {
			return fmt.Errorf("spdktest: VF %d of PF %d holds controller %s", *c.vf, pf, c.id)
		}
	}
	e.sriov[pf] = n
	return nil
}

// SNAPPFs is the number of static NVMe emulation PFs.
func (e *Emulator) SNAPPFs() int { return e.opts.SNAPPFs }

// SNAPHostFunction is what the host sees on one emulated NVMe function that
// has a controller.
type SNAPHostFunction struct {
	PF        int    `json:"pf"`
	VF        *int   `json:"vf,omitempty"`
	CtrlID    string `json:"ctrl_id"`
	NQN       string `json:"nqn"`
	AdminOnly bool   `json:"admin_only"`
	// Running is false while the controller is suspended: the host sees
	// none of its namespaces.
	Running bool  `json:"running"`
	NSIDs   []int `json:"nsids"`
}

// SNAPHost lists the functions with a controller, PFs first.
func (e *Emulator) SNAPHost() []SNAPHostFunction {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []SNAPHostFunction
	for _, c := range e.st.snapCtrls {
		out = append(out, SNAPHostFunction{PF: c.pf, VF: c.vf, CtrlID: c.id, NQN: c.nqn, AdminOnly: c.adminOnly,
			Running: !c.suspended, NSIDs: append([]int(nil), c.nsids...)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.PF != b.PF {
			return a.PF < b.PF
		}
		return a.VF == nil || (b.VF != nil && *a.VF < *b.VF)
	})
	return out
}

func snapFunctionList(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		All bool `json:"all"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	type fnJSON struct {
		Hotplugged    bool      `json:"hotplugged"`
		EmulationType string    `json:"emulation_type"`
		PFIndex       int       `json:"pf_index"`
		VFIndex       *int      `json:"vf_index,omitempty"`
		PCIBDF        string    `json:"pci_bdf"`
		VhcaID        int       `json:"vhca_id"`
		VUID          string    `json:"vuid"`
		CtrlID        string    `json:"ctrl_id,omitempty"`
		VFs           *[]fnJSON `json:"vfs,omitempty"`
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []fnJSON{}
	for _, f := range e.snapFunctions() {
		j := fnJSON{EmulationType: f.typ, PFIndex: f.pf, VFIndex: f.vf, PCIBDF: f.bdf, VhcaID: f.vhcaID, VUID: f.vuid}
		if c := e.st.snapCtrlOn(f.pf, f.vf); c != nil && f.typ == snapTypeNVMe {
			j.CtrlID = c.id
		}
		if f.vf == nil {
			j.VFs = &[]fnJSON{}
			out = append(out, j)
			continue
		}
		for i := range out {
			if out[i].VFIndex == nil && out[i].PFIndex == f.pf && out[i].EmulationType == f.typ {
				*out[i].VFs = append(*out[i].VFs, j)
			}
		}
	}
	return out, nil
}

func snapSubsystemCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	// Only nqn: the JSON keys of the CLI's -sn/-mn/-nn/-mnan are not
	// published, and NVIDIA's own client sends nqn alone.
	var p struct {
		NQN *string `json:"nqn"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || *p.NQN == "" {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.st.snapSubs[*p.NQN]; dup {
		return nil, errEEXIST
	}
	e.st.snapSubs[*p.NQN] = &snapSubsystem{nqn: *p.NQN, sn: fmt.Sprintf("SNAPEMU%d", len(e.st.snapSubs)), mn: "SNAP emulated NVMe", nn: snapDefaultNN, mnan: 1024}
	return true, nil
}

func snapSubsystemDestroy(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN *string `json:"nqn"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.snapSubs[*p.NQN]
	if !ok {
		return nil, errENODEV
	}
	for _, c := range e.st.snapCtrls {
		if c.nqn == s.nqn {
			return nil, errEBUSY
		}
	}
	if len(s.namespaces) > 0 { // strict: namespaces are destroyed first
		return nil, errEBUSY
	}
	delete(e.st.snapSubs, s.nqn)
	return true, nil
}

type snapNSJSON struct {
	NSID        int          `json:"nsid"`
	Bdev        string       `json:"bdev"`
	UUID        string       `json:"uuid,omitempty"`
	NQN         string       `json:"nqn"`
	Controllers []ctrlIDJSON `json:"controllers"`
}

type ctrlIDJSON struct {
	CtrlID string `json:"ctrl_id"`
}

func (s *state) snapNSJSON(sub *snapSubsystem) []snapNSJSON {
	out := []snapNSJSON{}
	nss := append([]*snapNS{}, sub.namespaces...)
	sort.Slice(nss, func(i, j int) bool { return nss[i].nsid < nss[j].nsid })
	for _, ns := range nss {
		j := snapNSJSON{NSID: ns.nsid, Bdev: ns.bdev, UUID: ns.uuid, NQN: sub.nqn, Controllers: []ctrlIDJSON{}}
		for _, c := range s.snapCtrls {
			for _, n := range c.nsids {
				if c.nqn == sub.nqn && n == ns.nsid {
					j.Controllers = append(j.Controllers, ctrlIDJSON{c.id})
				}
			}
		}
		out = append(out, j)
	}
	return out
}

func (s *state) sortedSnapSubs() []*snapSubsystem {
	out := make([]*snapSubsystem, 0, len(s.snapSubs))
	for _, ss := range s.snapSubs {
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nqn < out[j].nqn })
	return out
}

func snapSubsystemList(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	if err := decodeStrict(params, &struct{}{}); err != nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	type subJSON struct {
		NQN         string       `json:"nqn"`
		SN          string       `json:"sn"`
		MN          string       `json:"mn"`
		NN          int          `json:"nn"`
		MNAN        int          `json:"mnan"`
		Controllers []ctrlIDJSON `json:"controllers"`
		Namespaces  []snapNSJSON `json:"namespaces"`
	}
	out := []subJSON{}
	for _, ss := range e.st.sortedSnapSubs() {
		j := subJSON{NQN: ss.nqn, SN: ss.sn, MN: ss.mn, NN: ss.nn, MNAN: ss.mnan, Controllers: []ctrlIDJSON{}, Namespaces: e.st.snapNSJSON(ss)}
		for _, c := range e.st.snapCtrls {
			if c.nqn == ss.nqn {
				j.Controllers = append(j.Controllers, ctrlIDJSON{c.id})
			}
		}
		out = append(out, j)
	}
	return out, nil
}

func snapNamespaceCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN      *string `json:"nqn"`
		NSID     *int    `json:"nsid"`
		BdevName *string `json:"bdev_name"`
		BdevType string  `json:"bdev_type"`
		UUID     string  `json:"uuid"`
		NGUID    string  `json:"nguid"`
		EUI64    string  `json:"eui64"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.NSID == nil || p.BdevName == nil {
		return nil, errInvalidParams
	}
	if p.BdevType != "" && p.BdevType != "spdk" {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.snapSubs[*p.NQN]
	if !ok {
		return nil, errENODEV
	}
	if *p.NSID < 1 || *p.NSID > s.nn {
		return nil, errEINVAL
	}
	for _, ns := range s.namespaces {
		if ns.nsid == *p.NSID {
			return nil, errEEXIST
		}
	}
	b := e.st.bdev(*p.BdevName)
	if b == nil {
		return nil, errENODEV
	}
	if e.st.claimed(b.name) {
		return nil, errEBUSY
	}
	s.namespaces = append(s.namespaces, &snapNS{nsid: *p.NSID, bdev: b.name, uuid: p.UUID, nguid: p.NGUID})
	return true, nil
}

func snapNamespaceDestroy(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN  *string `json:"nqn"`
		NSID *int    `json:"nsid"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.NSID == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.snapSubs[*p.NQN]
	if !ok {
		return nil, errENODEV
	}
	for _, c := range e.st.snapCtrls {
		for _, n := range c.nsids {
			if c.nqn == s.nqn && n == *p.NSID {
				return nil, errEBUSY
			}
		}
	}
	for i, ns := range s.namespaces {
		if ns.nsid == *p.NSID {
			s.namespaces = append(s.namespaces[:i], s.namespaces[i+1:]...)
			return true, nil
		}
	}
	return nil, errENODEV
}

func snapNamespaceList(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN string `json:"nqn"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []snapNSJSON{}
	for _, ss := range e.st.sortedSnapSubs() {
		if p.NQN == "" || p.NQN == ss.nqn {
			out = append(out, e.st.snapNSJSON(ss)...)
		}
	}
	return out, nil
}

func snapControllerCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN                *string `json:"nqn"`
		PFID               *int    `json:"pf_id"`
		VFID               *int    `json:"vf_id"`
		PCIBDF             *string `json:"pci_bdf"`
		VUID               *string `json:"vuid"`
		VhcaID             *int    `json:"vhca_id"`
		Ctrl               string  `json:"ctrl"`
		NumQueues          int     `json:"num_queues"`
		MDTS               int     `json:"mdts"`
		Suspended          bool    `json:"suspended"`
		AdminOnly          bool    `json:"admin_only"`
		LiveUpdateListener bool    `json:"live_update_listener"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil {
		return nil, errInvalidParams
	}
	// Exactly one way of naming the function (vf_id only with pf_id).
	selectors := 0
	for _, set := range []bool{p.PFID != nil, p.PCIBDF != nil, p.VUID != nil, p.VhcaID != nil} {
		if set {
			selectors++
		}
	}
	if selectors != 1 || (p.VFID != nil && p.PFID == nil) {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.st.snapSubs[*p.NQN]; !ok {
		return nil, errENODEV
	}
	var fn *snapFn
	for _, f := range e.snapFunctions() {
		if f.typ != snapTypeNVMe {
			continue
		}
		if (p.PFID != nil && sameFn(f.pf, f.vf, *p.PFID, p.VFID)) || (p.PCIBDF != nil && f.bdf == *p.PCIBDF) ||
			(p.VUID != nil && f.vuid == *p.VUID) || (p.VhcaID != nil && f.vhcaID == *p.VhcaID) {
			fn = &f
			break
		}
	}
	if fn == nil {
		return nil, errENODEV
	}
	if e.st.snapCtrlOn(fn.pf, fn.vf) != nil {
		return nil, errEEXIST
	}
	id := p.Ctrl
	if id == "" {
		e.st.snapNextID++
		id = fmt.Sprintf("NVMeCtrl%d", e.st.snapNextID)
	}
	if e.st.snapCtrl(id) != nil {
		return nil, errEEXIST
	}
	e.st.snapCtrls = append(e.st.snapCtrls, &snapCtrl{id: id, nqn: *p.NQN, pf: fn.pf, vf: fn.vf, suspended: p.Suspended, adminOnly: p.AdminOnly})
	return struct {
		CtrlID string `json:"ctrl_id"`
	}{id}, nil
}

func snapControllerDestroy(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		CtrlID *string `json:"ctrl_id"`
		Force  bool    `json:"force"`
	}
	if err := decodeStrict(params, &p); err != nil || p.CtrlID == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.st.snapCtrls {
		if c.id == *p.CtrlID {
			if len(c.nsids) > 0 && !p.Force {
				return nil, errEBUSY
			}
			e.st.snapCtrls = append(e.st.snapCtrls[:i], e.st.snapCtrls[i+1:]...)
			return true, nil
		}
	}
	return nil, errENODEV
}

func snapControllerList(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN string `json:"nqn"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	type nsRef struct {
		NSID int    `json:"nsid"`
		Bdev string `json:"bdev"`
	}
	// No suspended/running field: none is published (the agent tracks
	// activation itself).
	type ctrlJSON struct {
		CtrlID     string  `json:"ctrl_id"`
		NQN        string  `json:"nqn"`
		VhcaID     int     `json:"vhca_id"`
		Namespaces []nsRef `json:"namespaces"`
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fns := e.snapFunctions()
	out := []ctrlJSON{}
	for _, c := range e.st.snapCtrls {
		if p.NQN != "" && p.NQN != c.nqn {
			continue
		}
		j := ctrlJSON{CtrlID: c.id, NQN: c.nqn, Namespaces: []nsRef{}}
		for _, f := range fns {
			if f.typ == snapTypeNVMe && sameFn(f.pf, f.vf, c.pf, c.vf) {
				j.VhcaID = f.vhcaID
			}
		}
		sub := e.st.snapSubs[c.nqn]
		for _, n := range c.nsids {
			r := nsRef{NSID: n}
			if sub != nil {
				for _, ns := range sub.namespaces {
					if ns.nsid == n {
						r.Bdev = ns.bdev
					}
				}
			}
			j.Namespaces = append(j.Namespaces, r)
		}
		out = append(out, j)
	}
	return out, nil
}

func snapControllerNS(attach bool) handler {
	return func(e *Emulator, params json.RawMessage, _ bool) (any, error) {
		var p struct {
			CtrlID *string `json:"ctrl_id"`
			NSID   *int    `json:"nsid"`
		}
		if err := decodeStrict(params, &p); err != nil || p.CtrlID == nil || p.NSID == nil {
			return nil, errInvalidParams
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		c := e.st.snapCtrl(*p.CtrlID)
		if c == nil {
			return nil, errENODEV
		}
		idx := -1
		for i, n := range c.nsids {
			if n == *p.NSID {
				idx = i
			}
		}
		if !attach {
			if idx < 0 {
				return nil, errENODEV
			}
			c.nsids = append(c.nsids[:idx], c.nsids[idx+1:]...)
			return true, nil
		}
		if idx >= 0 {
			return nil, errEEXIST
		}
		found := false
		for _, ns := range e.st.snapSubs[c.nqn].namespaces {
			found = found || ns.nsid == *p.NSID
		}
		if !found {
			return nil, errENODEV
		}
		// SNAP does not share a namespace between controllers.
		for _, o := range e.st.snapCtrls {
			for _, n := range o.nsids {
				if o.nqn == c.nqn && n == *p.NSID {
					return nil, errEBUSY
				}
			}
		}
		c.nsids = append(c.nsids, *p.NSID)
		sort.Ints(c.nsids)
		return true, nil
	}
}

// snapControllerSuspend serves nvme_controller_suspend and _resume; both are
// idempotent here (resuming a running controller succeeds: assumed, see
// docs/bluefield-snap.md).
func snapControllerSuspend(suspend bool) handler {
	return func(e *Emulator, params json.RawMessage, _ bool) (any, error) {
		var p struct {
			CtrlID             *string `json:"ctrl_id"`
			AdminOnly          bool    `json:"admin_only"`
			LiveUpdateNotifier bool    `json:"live_update_notifier"`
			TimeoutMS          int     `json:"timeout_ms"`
		}
		if err := decodeStrict(params, &p); err != nil || p.CtrlID == nil {
			return nil, errInvalidParams
		}
		if !suspend && (p.AdminOnly || p.LiveUpdateNotifier || p.TimeoutMS != 0) {
			return nil, errInvalidParams // suspend-only flags
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		c := e.st.snapCtrl(*p.CtrlID)
		if c == nil {
			return nil, errENODEV
		}
		c.suspended = suspend
		return true, nil
	}
}
