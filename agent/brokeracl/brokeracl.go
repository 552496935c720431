// Package brokeracl computes the RabbitMQ permissions of one DPU's own broker
// user: what its agent needs on the DPU vhost and nothing else, so that one
// compromised DPU cannot read, steal, delete or inject another node's RPC.
//
// Facts it rests on (RabbitMQ 3.10, checked on a real broker; see
// docs/broker-acl.md for the whole table and the attacks it was tested with):
//   - a permission is three regexes matched against resource names of any
//     kind (queue or exchange): configure (declare, delete), write (publish
//     to an exchange; bind to a queue), read (consume a queue; bind from an
//     exchange);
//   - topic permissions limit routing keys on one topic exchange: write for
//     publishing, read for binding; an exchange without an entry allows
//     every key, and the default exchange ignores them;
//   - write on the default exchange (needed to reply) reaches every queue of
//     the vhost by name: the DPU vhost must not be the one Ironic's own RPC
//     uses, every queue on it is bounded by a reject-publish policy, and the
//     agent drops whatever did not come through the control exchange.
package brokeracl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// HelloTopic is the routing key prefix a DPU announces itself with on the
// control exchange; only <HelloTopic>.<its node uuid> is writable by its user,
// so the broker authenticates the announcement's node.
const HelloTopic = "ironic-dpu-conductor.hello"

// PolicyName names the vhost-wide queue policy Commands prints.
const PolicyName = "ironic-dpu-limits"

// HelloRoutingKey is the only key node's user may publish to the control exchange.
func HelloRoutingKey(node string) string { return HelloTopic + "." + node }

// Options describes one DPU's user.
type Options struct {
	Node     string // Ironic node UUID (canonical, lower case)
	User     string // its RabbitMQ user
	VHost    string // the DPUs' vhost (never Ironic's own)
	Exchange string // [agent] exchange
	Topic    string // [agent] topic
	// MaxMessageBytes bounds every queue of the vhost (max-length-bytes
	// with reject-publish): a larger message is nacked by the broker.
	MaxMessageBytes int
	MaxConnections  int
	MaxChannels     int
}

// Grant is what set_permissions and set_topic_permissions receive.
type Grant struct {
	Configure, Write, Read string
	// on the control exchange
	TopicWrite, TopicRead string
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (o Options) validate() error {
	bad := func(what string) error { return fmt.Errorf("broker-acl: %s: %w", what, errdefs.ErrInvalidArgument) }
	switch {
	case !uuidRE.MatchString(o.Node):
		return bad(fmt.Sprintf("node %q is not a lower-case UUID", o.Node))
	case o.User == "" || strings.ContainsFunc(o.User, isControl):
		return bad(fmt.Sprintf("user %q is empty or has control characters", o.User))
	case o.VHost == "" || strings.ContainsFunc(o.VHost, isControl):
		return bad(fmt.Sprintf("vhost %q is empty or has control characters", o.VHost))
	case o.Exchange == "" || o.Topic == "":
		return bad("exchange and topic are required")
	case o.Exchange == "amq.default" || strings.HasPrefix(o.Exchange, "amq."):
		return bad(fmt.Sprintf("exchange %q is a broker built-in", o.Exchange))
	case o.MaxMessageBytes < 1:
		return bad("max message bytes must be positive")
	case o.MaxConnections < 1 || o.MaxChannels < 1:
		return bad("max connections and channels must be positive")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// alt is ^(a|b|...)$ of the names, each quoted.
func alt(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}

// Permissions is the grant of o.User. Every regex is anchored and names
// exact resources; a node UUID has no regex metacharacters but is quoted
// like everything else.
func Permissions(o Options) (Grant, error) {
	if err := o.validate(); err != nil {
		return Grant{}, err
	}
	serverQ := o.Topic + "." + o.Node                  // <topic>.<node>: requests for this node
	fanoutQ := rpcapi.FanoutQueueName(o.Topic, o.Node) // its fanout queue
	fanoutX := o.Topic + "_fanout"                     // oslo's fanout exchange (shared)
	return Grant{
		// Declare (and on shutdown delete) its own two queues. No exchange:
		// the shared ones could be deleted or redeclared by whoever may
		// configure them, so the agent declares them passively.
		Configure: alt(serverQ, fanoutQ),
		// amq.default: replies go to the caller's reply_<hex> queue through
		// the default exchange (oslo); the control exchange: the hello
		// announcement (keys limited below); its own queues: queue.bind
		// needs write on the bound queue.
		Write: alt("amq.default", o.Exchange, serverQ, fanoutQ),
		// The control and fanout exchanges: binding from them needs read
		// (keys limited below); its own queues: consume.
		Read: alt(o.Exchange, fanoutX, serverQ, fanoutQ),
		// Publish only its own announcement; bind only its own key (no
		// wildcard, no other node's key).
		TopicWrite: alt(HelloRoutingKey(o.Node)),
		TopicRead:  alt(serverQ),
	}, nil
}

// Commands are the rabbitmqctl command lines (and # comments) that create
// o.User's grant, its connection limits and the vhost's message size policy.
func Commands(o Options) ([]string, error) {
	g, err := Permissions(o)
	if err != nil {
		return nil, err
	}
	def := fmt.Sprintf(`{"max-length-bytes": %d, "overflow": "reject-publish"}`, o.MaxMessageBytes)
	lim := fmt.Sprintf(`{"max-connections": %d, "max-channels": %d}`, o.MaxConnections, o.MaxChannels)
	lines := []string{
		fmt.Sprintf("# broker user %s of node %s on vhost %s: its own queues, its replies and its announcement, nothing else", o.User, o.Node, o.VHost),
	}
	if o.VHost == "/" {
		lines = append(lines, "# WARNING: vhost / is usually Ironic's own RPC vhost; write on amq.default (needed for replies) reaches every queue there, ironic-conductor's too: give the DPUs a vhost of their own")
	}
	lines = append(lines,
		cmd("set_permissions", "-p", o.VHost, o.User, g.Configure, g.Write, g.Read),
		cmd("set_topic_permissions", "-p", o.VHost, o.User, o.Exchange, g.TopicWrite, g.TopicRead),
		cmd("set_user_limits", o.User, lim),
		"# every queue of the DPU vhost (agents', conductor reply and announcement queues): the broker nacks a message over "+strconv.Itoa(o.MaxMessageBytes)+" bytes; one policy applies per queue, so merge other keys (ha-mode...) into this one",
		cmd("set_policy", "-p", o.VHost, "--apply-to", "queues", "--priority", "1", PolicyName, ".*", def),
		fmt.Sprintf("# advice, whole broker (rabbitmq.conf, restart): max_message_size = %d refuses larger messages at the channel before any routing (default 128 MiB)", o.MaxMessageBytes),
	)
	return lines, nil
}

func cmd(args ...string) string {
	q := []string{"rabbitmqctl"}
	for _, a := range args {
		q = append(q, shellQuote(a))
	}
	return strings.Join(q, " ")
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
