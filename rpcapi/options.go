package rpcapi

// RabbitOptions tune the broker connection and the queues like oslo.messaging
// 14's [oslo_messaging_rabbit] options of the same names; each field's oslo
// tag is the name a transport_url query sets it by (ApplyQuery). The daemon
// maps its configuration onto these.
type RabbitOptions struct {
	AMQPDurableQueues        bool    `oslo:"amqp_durable_queues"`
	AMQPAutoDelete           bool    `oslo:"amqp_auto_delete"`
	RabbitQuorumQueue        bool    `oslo:"rabbit_quorum_queue"`
	RabbitHAQueues           bool    `oslo:"rabbit_ha_queues"`
	RabbitTransientQueuesTTL int     `oslo:"rabbit_transient_queues_ttl"` // seconds; 0: no x-expires
	SSL                      bool    `oslo:"ssl"`
	SSLVersion               string  `oslo:"ssl_version"`
	SSLCAFile                string  `oslo:"ssl_ca_file"`
	SSLCertFile              string  `oslo:"ssl_cert_file"`
	SSLKeyFile               string  `oslo:"ssl_key_file"`
	SSLEnforceHostname       bool    `oslo:"ssl_enforce_hostname_verification"`
	HeartbeatTimeout         int     `oslo:"heartbeat_timeout_threshold"` // seconds; 0: no AMQP heartbeats
	RetryInterval            float64 `oslo:"rabbit_retry_interval"`       // seconds
	RetryBackoff             float64 `oslo:"rabbit_retry_backoff"`        // seconds
	IntervalMax              float64 `oslo:"rabbit_interval_max"`         // seconds
	KombuFailoverStrategy    string  `oslo:"kombu_failover_strategy"`     // round-robin or shuffle
	QosPrefetchCount         int     `oslo:"rabbit_qos_prefetch_count"`   // 0: unlimited
}

// DefaultRabbitOptions are oslo.messaging 14's defaults, which are also the
// agent configuration's (agent/daemon's tests check they agree).
func DefaultRabbitOptions() RabbitOptions {
	return RabbitOptions{
		RabbitTransientQueuesTTL: 1800,
		HeartbeatTimeout:         60,
		RetryInterval:            1,
		RetryBackoff:             2,
		IntervalMax:              30,
		KombuFailoverStrategy:    "round-robin",
		QosPrefetchCount:         8,
	}
}
