package storage

// nsidRequest is one item asking for a namespace id on a host function.
type nsidRequest struct {
	Key  string // remembered-nsid key: "<volume id or config-drive>/<function>"
	Fn   string // function name (nodestate.Function.String)
	Boot bool   // the boot volume: nsid 1 of PF 0
	Have int    // the nsid of a namespace kept as it is (0: none)
}

// assignNSIDs decides every item's nsid, without side effects: kept ones
// stay; then each item gets the nsid remembered for it (the one the host
// knew, before an SPDK restart) if free; then the boot volume gets 1 and the
// others the lowest free nsid (from 2 on pf0, whose 1 is the boot disk's, from
// 1 elsewhere). used lists the nsids in use per function; a function missing
// from used has no host controller, and its items get 0. The result is in
// the order of reqs.
func assignNSIDs(reqs []nsidRequest, used map[string][]int, remembered map[string]int, pf0 string) []int {
	taken := map[string]map[int]bool{}
	for fn, ns := range used {
		taken[fn] = map[int]bool{}
		for _, n := range ns {
			taken[fn][n] = true
		}
	}
	out := make([]int, len(reqs))
	for i, q := range reqs {
		out[i] = q.Have
	}
	for i, q := range reqs {
		n := remembered[q.Key]
		if out[i] != 0 || taken[q.Fn] == nil || n == 0 || taken[q.Fn][n] {
			continue
		}
		if q.Boot == (n == 1) || q.Fn != pf0 {
			out[i] = n
			taken[q.Fn][n] = true
		}
	}
	for i, q := range reqs {
		if out[i] != 0 || taken[q.Fn] == nil {
			continue
		}
		n := 1 // the boot volume's, whoever holds it
		if !q.Boot && q.Fn == pf0 {
			n = 2 // nsid 1 of pf0 is the boot disk's
		}
		for !q.Boot && taken[q.Fn][n] {
			n++
		}
		out[i] = n
		taken[q.Fn][n] = true
	}
	return out
}
