package ironicsync_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/ironicsync"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

// A recorded Ironic node GET (noauth), trimmed to the fields that matter.
const nodeJSON = `{"uuid":"` + node + `","driver":"dpu","provision_state":"active",
 "driver_internal_info":{"dpu_generation":1700000000123,"dpu_desired_state":{"generation":1700000000123,"node_uuid":"` + node + `",
  "volumes":[{"volume_id":"6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11","boot_index":0,"connection_info":{"driver_volume_type":"nvmeof","data":{"nqn":"nqn.2010-10.org.openstack:volume-6f1c5e0a","target_portal":"127.0.0.1","target_port":4420,"transport_type":"tcp","ns_id":1}}}],
  "vifs":[{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"vf":3}}]}}}`

func TestFetch(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		switch r.URL.Path {
		case "/v1/nodes/" + node:
			// Like Ironic: driver_internal_info only from microversion 1.3.
			if r.Header.Get("X-OpenStack-Ironic-API-Version") != "1.3" {
				_, _ = w.Write([]byte(`{"uuid":"` + node + `","driver":"dpu"}`))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(nodeJSON))
		default:
			http.Error(w, `{"error_message":"not found"}`, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	src, err := ironicsync.New(context.Background(), config.IronicOpts{APIURL: srv.URL, AuthType: "none"}, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 1700000000123 || len(d.Volumes) != 1 || *d.Volumes[0].BootIndex != 0 || *d.VIFs[0].Function.VF != 3 {
		t.Fatalf("decoded %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	other, _ := ironicsync.New(context.Background(), config.IronicOpts{APIURL: srv.URL}, "00000000-0000-4000-8000-000000000000", nil)
	if _, err := other.Fetch(context.Background()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
}

// Fields a newer conductor recorded are reported and ignored; a known
// field of the wrong type is still refused.
func TestDecodeIgnoresUnknownFieldsAndKeepsKnownOnesStrict(t *testing.T) {
	d, unknown, err := ironicsync.Decode(map[string]any{"generation": 1, "disks": []any{},
		"vifs": []any{map[string]any{"port_id": "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", "mac": "fa:16:3e:00:00:01", "trunk": true}}})
	if err != nil || d.Generation != 1 || len(d.VIFs) != 1 || strings.Join(unknown, ",") != "disks,vifs[0].trunk" {
		t.Fatalf("got %+v %v %v", d, unknown, err)
	}
	if _, _, err := ironicsync.Decode(map[string]any{"generation": "one"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("got %v", err)
	}
}

// Fetch logs what it ignored.
func TestFetchLogsUnknownFields(t *testing.T) {
	body := strings.Replace(nodeJSON, `"generation"`, `"priority": 3, "generation"`, 1)
	if body == nodeJSON {
		t.Fatal("fixture has no generation key")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	core, logs := observer.New(zap.WarnLevel)
	src, _ := ironicsync.New(context.Background(), config.IronicOpts{APIURL: srv.URL}, node, zap.New(core))
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := logs.All(); len(l) != 1 || fmt.Sprint(l[0].ContextMap()["fields"]) != "[priority]" {
		t.Fatalf("logged %+v", l)
	}
}

// Keystone being down when the agent starts must not stop it from starting:
// New contacts nobody, Fetch fails (and is retried), and succeeds once
// Keystone is back.
func TestPasswordAuthIsLazy(t *testing.T) {
	var keystoneUp atomic.Bool
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/identity/v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		if !keystoneUp.Load() {
			http.Error(w, `{"error":{"code":503}}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Subject-Token", "tok")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","methods":["password"],
		 "catalog":[{"type":"baremetal","name":"ironic","id":"x","endpoints":[{"id":"e","interface":"public","region":"RegionOne","region_id":"RegionOne","url":"` + srv.URL + `/baremetal"}]}]}}`))
	})
	mux.HandleFunc("/baremetal/", func(w http.ResponseWriter, r *http.Request) { // version discovery
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"name":"OpenStack Ironic API","versions":[{"id":"v1","status":"CURRENT","version":"1.81","min_version":"1.1","links":[{"href":"` + srv.URL + `/baremetal/v1/","rel":"self"}]}],"default_version":{"id":"v1","status":"CURRENT","version":"1.81","min_version":"1.1","links":[{"href":"` + srv.URL + `/baremetal/v1/","rel":"self"}]}}`))
	})
	mux.HandleFunc("/baremetal/v1/nodes/"+node, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "tok" {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(nodeJSON))
	})
	src, err := ironicsync.New(context.Background(), config.IronicOpts{APIURL: srv.URL + "/baremetal", AuthType: "password",
		AuthURL: srv.URL + "/identity/v3", Username: "ironic", Password: "pw", ProjectName: "service",
		UserDomainName: "Default", ProjectDomainName: "Default"}, node, nil)
	if err != nil {
		t.Fatalf("New must not need Keystone: %v", err)
	}
	if _, err := src.Fetch(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Fetch with Keystone down: %v", err)
	}
	keystoneUp.Store(true)
	d, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 1700000000123 {
		t.Fatalf("decoded %+v", d)
	}
}
