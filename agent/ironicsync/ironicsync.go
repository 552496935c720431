// Package ironicsync pulls a node's desired state from the Ironic API, so an
// agent that starts after a DPU reboot catches up with what the conductor
// decided while it was away (casts lost, attach-before-power-on ordering)
// without the conductor having to retry.
package ironicsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// StateKey is where the dpu driver records the node's desired state in
// driver_internal_info (ironic_dpu/desired.py).
const StateKey = "dpu_desired_state"

// Source reads one node's desired state from Ironic.
type Source struct {
	node string
	// connect builds the client; with password auth it contacts Keystone,
	// so it runs on the first Fetch, not in New: Keystone being down at
	// DPU boot must not keep the agent (RPC, reconciles) from starting.
	connect func(ctx context.Context) (*gophercloud.ServiceClient, error)

	log *zap.Logger

	mu     sync.Mutex
	client *gophercloud.ServiceClient
}

// New builds a client for cfg; it contacts neither Ironic nor Keystone yet.
// log (nil: none) reports recorded fields this agent does not know.
func New(ctx context.Context, cfg config.IronicOpts, node string, log *zap.Logger) (*Source, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.APIURL == "" {
		return nil, fmt.Errorf("%w: [ironic] api_url is not set", errdefs.ErrInvalidArgument)
	}
	endpoint := strings.TrimSuffix(cfg.APIURL, "/") + "/v1"
	var connect func(ctx context.Context) (*gophercloud.ServiceClient, error)
	switch cfg.AuthType {
	case "none", "noauth", "":
		connect = func(context.Context) (*gophercloud.ServiceClient, error) {
			return noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: endpoint})
		}
	case "password":
		connect = func(ctx context.Context) (*gophercloud.ServiceClient, error) {
			provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
				IdentityEndpoint: cfg.AuthURL, Username: cfg.Username, Password: cfg.Password,
				TenantName: cfg.ProjectName, DomainName: cfg.UserDomainName, AllowReauth: true,
				Scope: &gophercloud.AuthScope{ProjectName: cfg.ProjectName, DomainName: cfg.ProjectDomainName},
			})
			if err != nil {
				return nil, err
			}
			client, err := openstack.NewBareMetalV1(provider, gophercloud.EndpointOpts{})
			if err != nil {
				return nil, err
			}
			client.Endpoint = endpoint + "/"
			return client, nil
		}
	default:
		return nil, fmt.Errorf("%w: [ironic] auth_type %q: want none or password", errdefs.ErrInvalidArgument, cfg.AuthType)
	}
	return &Source{node: node, connect: connect, log: log}, nil
}

func (s *Source) serviceClient(ctx context.Context) (*gophercloud.ServiceClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	client, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: ironic client: %v", errdefs.ErrUnavailable, err)
	}
	// Ironic hides driver_internal_info below API microversion 1.3.
	client.Microversion = "1.3"
	s.client = client
	return client, nil
}

// Fetch returns the node's recorded desired state, or nil if the driver has
// recorded none.
func (s *Source) Fetch(ctx context.Context) (*nodestate.Desired, error) {
	client, err := s.serviceClient(ctx)
	if err != nil {
		return nil, err
	}
	n, err := nodes.Get(ctx, client, s.node).Extract()
	if err != nil {
		if gophercloud.ResponseCodeIs(err, 404) {
			return nil, fmt.Errorf("%w: node %s is not known to Ironic", errdefs.ErrNotFound, s.node)
		}
		return nil, fmt.Errorf("%w: get node %s from Ironic: %v", errdefs.ErrUnavailable, s.node, err)
	}
	raw, ok := n.DriverInternalInfo[StateKey]
	if !ok || raw == nil {
		return nil, nil
	}
	d, unknown, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		s.log.Warn("ignoring fields of the state recorded in Ironic that this agent does not know (from a newer conductor)",
			zap.Strings("fields", unknown))
	}
	return d, nil
}

// Decode turns the recorded value (a JSON object) into a desired state. It
// is apply_state's argument as the conductor recorded it, read by the same
// policy (README "RPC API"): fields this agent does not know were added by
// a newer conductor, are returned in unknown for the caller to log, and are
// ignored; known fields stay strictly typed.
func Decode(raw any) (d *nodestate.Desired, unknown []string, err error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, err
	}
	d = &nodestate.Desired{}
	unknown, err = jsonx.Decode(b, d)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: driver_internal_info.%s: %v", errdefs.ErrInvalidArgument, StateKey, err)
	}
	return d, unknown, nil
}
