// Package rpcapi speaks the oslo.messaging 14.x (Zed) rabbit driver wire
// protocol on github.com/rabbitmq/amqp091-go, so ironic-conductor's Python
// RPCClient can call the agent and the agent's CLI can call any oslo server.
//
// Server: topic exchange (default "ironic_dpu"), queue <topic>.<server>
// (optionally the shared <topic>), fanout exchange <topic>_fanout with a
// private <topic>_fanout_<server> queue deleted on clean shutdown. Shared
// exchanges are declared passively first, so a broker user without the
// right to create them still serves. Only requests that came through the
// control exchange with this server's key, or the fanout exchange, and were
// not dead-lettered are served; anything published straight into the queue
// (default exchange) is dropped with a log line. Requests
// are acked on receipt (at-most-once, like oslo), deduplicated by
// _unique_id, checked against oslo's version/namespace rules and answered
// with one ending=true reply on the default exchange, mandatory, retried
// while the reply queue is missing. Call-monitor heartbeats are sent only
// when the caller set _timeout. The connection is supervised: failover
// across transport_url hosts, jittered backoff, full redeclaration after a
// reconnect, publisher confirms, and publishing paused while the broker
// signals connection.blocked.
//
// Client: one reply_<32hex> queue per Client, Call/Cast/fanout Cast,
// at-least-once publishing (ErrMessageUndeliverable), call-monitor
// timeouts, and remote failures as *RemoteError.
//
// Wire facts and their sources: /work/shared/research/oslo-ironic.md §1.
package rpcapi
