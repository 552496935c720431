package storage

import (
	"reflect"
	"testing"
)

func TestAssignNSIDs(t *testing.T) {
	const pf0, vf1 = "pf0", "pf0vf1"
	cases := []struct {
		name       string
		reqs       []nsidRequest
		used       map[string][]int
		remembered map[string]int
		want       []int
	}{
		{"boot first, data from 2", []nsidRequest{{Key: "b/pf0", Fn: pf0, Boot: true}, {Key: "d1/pf0", Fn: pf0}, {Key: "d2/pf0", Fn: pf0}},
			map[string][]int{pf0: nil}, nil, []int{1, 2, 3}},
		{"data only: 1 stays free for a boot disk", []nsidRequest{{Key: "d1/pf0", Fn: pf0}},
			map[string][]int{pf0: nil}, nil, []int{2}},
		{"kept stay, lowest free filled", []nsidRequest{{Key: "d1/pf0", Fn: pf0, Have: 3}, {Key: "d2/pf0", Fn: pf0}},
			map[string][]int{pf0: {3}}, nil, []int{3, 2}},
		{"remembered first, even when listed after a new one", []nsidRequest{{Key: "new/pf0", Fn: pf0}, {Key: "old/pf0", Fn: pf0}},
			map[string][]int{pf0: nil}, map[string]int{"old/pf0": 2}, []int{3, 2}},
		{"remembered nsid taken: next free", []nsidRequest{{Key: "old/pf0", Fn: pf0}},
			map[string][]int{pf0: {4}}, map[string]int{"old/pf0": 4}, []int{2}},
		{"data volume never gets a remembered 1 on pf0", []nsidRequest{{Key: "d/pf0", Fn: pf0}},
			map[string][]int{pf0: nil}, map[string]int{"d/pf0": 1}, []int{2}},
		{"boot ignores a remembered nsid other than 1", []nsidRequest{{Key: "b/pf0", Fn: pf0, Boot: true}},
			map[string][]int{pf0: nil}, map[string]int{"b/pf0": 5}, []int{1}},
		{"other functions from 1, remembered kept", []nsidRequest{{Key: "a/vf1", Fn: vf1}, {Key: "b/vf1", Fn: vf1}},
			map[string][]int{vf1: nil}, map[string]int{"b/vf1": 1}, []int{2, 1}},
		{"function without a controller: none", []nsidRequest{{Key: "a/vf1", Fn: vf1}},
			map[string][]int{}, map[string]int{"a/vf1": 1}, []int{0}},
		{"config drive keeps its nsid after a new image", []nsidRequest{{Key: "b/pf0", Fn: pf0, Boot: true, Have: 1}, {Key: "config-drive/pf0", Fn: pf0}},
			map[string][]int{pf0: {1}}, map[string]int{"config-drive/pf0": 4}, []int{1, 4}},
	}
	for _, c := range cases {
		used := map[string][]int{}
		for k, v := range c.used {
			used[k] = append([]int(nil), v...)
		}
		if got := assignNSIDs(c.reqs, c.used, c.remembered, pf0); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
		if !reflect.DeepEqual(used, c.used) {
			t.Errorf("%s: inputs changed", c.name)
		}
	}
}
