package spdktest

// DOCA SNAP 4 methods. No transcript of a real SNAP exists; names and
// parameter keys follow research/spdk.md §3.1 (NVIDIA's DPF Go client), and
// the error codes are the emulator's choice: decode errors -32602, missing
// objects -19, duplicates -17, objects in use -16.

import (
	"encoding/json"
	"fmt"
	"sort"
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
	nsids     []int
}

func (e *Emulator) snapBDF(pf int, vf *int) string {
	if vf == nil {
		return fmt.Sprintf("0000:3b:00.%d", pf)
	}
	n := 1 + pf*e.opts.SNAPVFs + *vf
	return fmt.Sprintf("0000:3b:%02x.%d", n/8, n%8)
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
		if c.pf == pf && (c.vf == nil) == (vf == nil) && (vf == nil || *c.vf == *vf) {
			return c
		}
	}
	return nil
}

func snapFunctionList(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		All bool `json:"all"`
	}
	if err := decodeStrict(params, &p); err != nil {
		return nil, errInvalidParams
	}
	type vfJSON struct {
		VFIndex int    `json:"vf_index"`
		PCIBDF  string `json:"pci_bdf"`
		VhcaID  int    `json:"vhca_id"`
		VUID    string `json:"vuid"`
		CtrlID  string `json:"ctrl_id"`
	}
	type pfJSON struct {
		EmulationType string   `json:"emulation_type"`
		PFIndex       int      `json:"pf_index"`
		PCIBDF        string   `json:"pci_bdf"`
		VhcaID        int      `json:"vhca_id"`
		VUID          string   `json:"vuid"`
		Hotplugged    bool     `json:"hotplugged"`
		CtrlID        string   `json:"ctrl_id"`
		VFs           []vfJSON `json:"vfs"`
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []pfJSON{}
	for pf := 0; pf < e.opts.SNAPPFs; pf++ {
		j := pfJSON{EmulationType: "NVME", PFIndex: pf, PCIBDF: e.snapBDF(pf, nil), VhcaID: 0x100 + pf,
			VUID: fmt.Sprintf("EMUVUID%02dPF", pf), VFs: []vfJSON{}}
		if c := e.st.snapCtrlOn(pf, nil); c != nil {
			j.CtrlID = c.id
		}
		for vf := 0; vf < e.opts.SNAPVFs; vf++ {
			v := vf
			vj := vfJSON{VFIndex: vf, PCIBDF: e.snapBDF(pf, &v), VhcaID: 0x200 + pf*e.opts.SNAPVFs + vf,
				VUID: fmt.Sprintf("EMUVUID%02dVF%03d", pf, vf)}
			if c := e.st.snapCtrlOn(pf, &v); c != nil {
				vj.CtrlID = c.id
			}
			j.VFs = append(j.VFs, vj)
		}
		out = append(out, j)
	}
	return out, nil
}

func snapSubsystemCreate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN          *string `json:"nqn"`
		SerialNumber string  `json:"serial_number"`
		ModelNumber  string  `json:"model_number"`
		NN           int     `json:"nn"`
		MNAN         int     `json:"mnan"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || *p.NQN == "" {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.st.snapSubs[*p.NQN]; dup {
		return nil, errEEXIST
	}
	s := &snapSubsystem{nqn: *p.NQN, sn: p.SerialNumber, mn: p.ModelNumber, nn: p.NN, mnan: p.MNAN}
	if s.nn == 0 {
		s.nn = 1024
	}
	if s.mnan == 0 {
		s.mnan = s.nn
	}
	e.st.snapSubs[s.nqn] = s
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
	NGUID       string       `json:"nguid,omitempty"`
	NQN         string       `json:"nqn"`
	Ready       bool         `json:"ready"`
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
		j := snapNSJSON{NSID: ns.nsid, Bdev: ns.bdev, UUID: ns.uuid, NGUID: ns.nguid, NQN: sub.nqn, Ready: true, Controllers: []ctrlIDJSON{}}
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
		PCIBDF             string  `json:"pci_bdf"`
		VUID               string  `json:"vuid"`
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
	// The emulator addresses functions by pf_id[/vf_id] only.
	if p.PFID == nil || p.PCIBDF != "" || p.VUID != "" || p.VhcaID != nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.st.snapSubs[*p.NQN]; !ok {
		return nil, errENODEV
	}
	if *p.PFID < 0 || *p.PFID >= e.opts.SNAPPFs || (p.VFID != nil && (*p.VFID < 0 || *p.VFID >= e.opts.SNAPVFs)) {
		return nil, errENODEV
	}
	if e.st.snapCtrlOn(*p.PFID, p.VFID) != nil {
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
	e.st.snapCtrls = append(e.st.snapCtrls, &snapCtrl{id: id, nqn: *p.NQN, pf: *p.PFID, vf: p.VFID, suspended: p.Suspended})
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
	type ctrlJSON struct {
		CtrlID     string  `json:"ctrl_id"`
		NQN        string  `json:"nqn"`
		PFIndex    int     `json:"pf_index"`
		VFIndex    *int    `json:"vf_index,omitempty"`
		PCIBDF     string  `json:"pci_bdf"`
		Suspended  bool    `json:"suspended"`
		Namespaces []nsRef `json:"namespaces"`
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []ctrlJSON{}
	for _, c := range e.st.snapCtrls {
		if p.NQN != "" && p.NQN != c.nqn {
			continue
		}
		j := ctrlJSON{CtrlID: c.id, NQN: c.nqn, PFIndex: c.pf, VFIndex: c.vf, PCIBDF: e.snapBDF(c.pf, c.vf), Suspended: c.suspended, Namespaces: []nsRef{}}
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
