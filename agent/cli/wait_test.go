package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConvergedJudgesGenerationItemsAndComponents(t *testing.T) {
	for name, c := range map[string]struct {
		view      string
		gen       int64
		component string
		done      bool
		pending   string
		err       string
	}{
		// SPDK hung: the network converged, storage is at 0.
		"plug with storage behind":     {view: `{"observed":{"generation":0,"volumes":[{"volume_id":"v","state":"pending"}],"vifs":[{"port_id":"p","state":"plugged"}],"components":{"storage":{"generation":0},"network":{"generation":4}}}}`, gen: 4, component: "network", done: true},
		"all with storage behind":      {view: `{"observed":{"generation":0,"volumes":[{"volume_id":"v","state":"pending"}],"vifs":[{"port_id":"p","state":"plugged"}],"components":{"storage":{"generation":0},"network":{"generation":4}}}}`, gen: 4, pending: "observed generation 0 < 4"},
		"attach ignores network error": {view: `{"observed":{"generation":4,"volumes":[{"volume_id":"v","state":"attached"}],"vifs":[{"port_id":"p","state":"error","last_error":"ovsdb"}],"components":{"storage":{"generation":4},"network":{"generation":4,"last_error":"ovsdb"}}}}`, gen: 4, component: "storage", done: true},
		"older generation":             {view: `{"observed":{"generation":3,"volumes":[],"vifs":[]}}`, gen: 4, pending: "observed generation 3 < 4"},
		"converged":                    {view: `{"observed":{"generation":4,"volumes":[{"volume_id":"v","state":"attached"}],"vifs":[{"port_id":"p","state":"plugged"}]}}`, gen: 4, done: true},
		"vif pending":                  {view: `{"observed":{"generation":5,"volumes":[],"vifs":[{"port_id":"p","state":"pending"}]}}`, gen: 4, pending: "vif p pending"},
		"volume error":                 {view: `{"observed":{"generation":4,"volumes":[{"volume_id":"v","state":"error","last_error":"connect refused"}],"vifs":[]}}`, gen: 4, err: "volume v: connect refused"},
		"config drive pending":         {view: `{"observed":{"generation":4,"volumes":[],"vifs":[],"config_drive":{"sha256":"ab","state":"pending"}}}`, gen: 4, pending: "config drive pending"},
		"config drive error":           {view: `{"observed":{"generation":4,"volumes":[],"vifs":[],"config_drive":{"sha256":"ab","state":"error","last_error":"EIO"}}}`, gen: 4, err: "config drive: EIO"},
		"component error":              {view: `{"observed":{"generation":4,"volumes":[],"vifs":[],"components":{"storage":{"generation":4,"last_error":"spdk down"}}}}`, gen: 4, err: "storage: spdk down"},
	} {
		var v stateView
		if err := json.Unmarshal([]byte(c.view), &v); err != nil {
			t.Fatal(err)
		}
		done, pending, err := converged(&v, c.gen, c.component)
		if done != c.done || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) ||
			!strings.Contains(strings.Join(pending, ","), c.pending) {
			t.Errorf("%s: done=%v pending=%v err=%v", name, done, pending, err)
		}
	}
}
